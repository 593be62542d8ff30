//! A strict subset of TOML 1.0, enough for the forwarder's three documents
//! (init-data, `forwarder.toml`, the settings file) and nothing more.
//!
//! Read: comments; bare and quoted keys; `[table]` headers of one key; the
//! four string forms with every TOML 1.0 escape; decimal integers;
//! booleans; arrays (over several lines, with a trailing comma). Refused,
//! with an error that names the construct: dotted keys, inline tables,
//! arrays of tables, floats, dates and times, other integer bases, the
//! TOML 1.1 escapes. So a document this module accepts means the same as
//! in any TOML 1.0 parser, or it is refused: never a guess.
//!
//! It replaces the `toml` crate and serde, which cost about 180 KB of the
//! static forwarder (docs/decisions/forwarder.md). Never panics; array
//! nesting is bounded, so recursion is too.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Deepest array nesting accepted.
const MAX_DEPTH: usize = 16;

/// A value: what this subset can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A basic, literal or multi-line string.
    String(String),
    /// A decimal integer.
    Integer(i64),
    /// `true` or `false`.
    Boolean(bool),
    /// `[ ... ]`, values of one line or many.
    Array(Vec<Value>),
    /// Only at the top level, from a `[name]` header.
    Table(Table),
}

impl Value {
    /// What the value is, for "expected a string, found an integer" errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::String(_) => "a string",
            Self::Integer(_) => "an integer",
            Self::Boolean(_) => "a boolean",
            Self::Array(_) => "an array",
            Self::Table(_) => "a table",
        }
    }
}

impl Value {
    /// The string, or an error naming `key` and what it holds instead.
    pub fn into_string(self, key: &str) -> Result<String, String> {
        match self {
            Self::String(s) => Ok(s),
            other => Err(wrong_type(key, "a string", &other)),
        }
    }

    /// An array of strings.
    pub fn into_strings(self, key: &str) -> Result<Vec<String>, String> {
        match self {
            Self::Array(items) => items.into_iter().map(|v| v.into_string(key)).collect(),
            other => Err(wrong_type(key, "an array of strings", &other)),
        }
    }

    /// The boolean, or an error naming `key` and the type found.
    pub fn into_bool(self, key: &str) -> Result<bool, String> {
        match self {
            Self::Boolean(b) => Ok(b),
            other => Err(wrong_type(key, "a boolean", &other)),
        }
    }

    /// The integer, or an error naming `key` and the type found.
    pub fn into_integer(self, key: &str) -> Result<i64, String> {
        match self {
            Self::Integer(n) => Ok(n),
            other => Err(wrong_type(key, "an integer", &other)),
        }
    }

    /// The table, or an error naming `key` and the type found.
    pub fn into_table(self, key: &str) -> Result<Table, String> {
        match self {
            Self::Table(t) => Ok(t),
            other => Err(wrong_type(key, "a table", &other)),
        }
    }
}

fn wrong_type(key: &str, expected: &str, found: &Value) -> String {
    format!("`{key}` must be {expected}, not {}", found.kind())
}

/// The error for a key the document type does not have.
pub fn unknown_key(key: &str, expected: &str) -> String {
    format!("unknown key `{key}`, expected {expected}")
}

/// A table: its keys in document order, each exactly once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    entries: Vec<(String, Value)>,
}

impl Table {
    /// The keys and values in document order.
    pub fn into_entries(self) -> Vec<(String, Value)> {
        self.entries
    }

    fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }
}

/// Why a document was refused: the 1-based line and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The line (1-based).
    pub line: usize,
    /// What was wrong there.
    pub what: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Parses a whole document into its top-level table.
pub fn parse(text: &str) -> Result<Table, Error> {
    let mut p = Parser {
        rest: text,
        line: 1,
    };
    let mut root = Table::default();
    // Where `key = value` lines go: the root, or the table of the last header.
    let mut current: Option<Table> = None;
    let mut current_name = String::new();
    loop {
        p.skip_blank()?;
        let Some(c) = p.peek() else { break };
        let line = p.line;
        if c == '[' {
            p.bump();
            if p.peek() == Some('[') {
                return Err(p.error("arrays of tables ([[name]]) are not supported"));
            }
            p.skip_ws();
            let name = p.key()?;
            p.skip_ws();
            if p.peek() == Some('.') {
                return Err(p.error("dotted table names are not supported"));
            }
            p.expect(']', "expected ] to end the table header")?;
            p.end_of_line()?;
            if let Some(table) = current.take() {
                root.entries
                    .push((core::mem::take(&mut current_name), Value::Table(table)));
            }
            if root.contains(&name) {
                return Err(Error {
                    line,
                    what: "the table name is already used",
                });
            }
            current = Some(Table::default());
            current_name = name;
        } else {
            let key = p.key()?;
            p.skip_ws();
            match p.bump() {
                Some('=') => {}
                Some('.') => return Err(p.error("dotted keys are not supported")),
                _ => return Err(p.error("expected = after the key")),
            }
            p.skip_ws();
            let value = p.value(0)?;
            p.end_of_line()?;
            let table = current.as_mut().unwrap_or(&mut root);
            if table.contains(&key) {
                return Err(Error {
                    line,
                    what: "the key is defined twice",
                });
            }
            table.entries.push((key, value));
        }
    }
    if let Some(table) = current {
        root.entries.push((current_name, Value::Table(table)));
    }
    Ok(root)
}

struct Parser<'a> {
    rest: &'a str,
    line: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> Error {
        Error {
            line: self.line,
            what,
        }
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.rest = self.rest.get(c.len_utf8()..).unwrap_or("");
        if c == '\n' {
            self.line = self.line.saturating_add(1);
        }
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        match self.rest.strip_prefix(s) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char, what: &'static str) -> Result<(), Error> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// A newline, LF or CRLF.
    fn newline(&mut self) -> Result<bool, Error> {
        if self.eat("\r") && self.peek() != Some('\n') {
            return Err(self.error("a carriage return not followed by a line feed"));
        }
        Ok(self.peek() == Some('\n') && self.bump().is_some())
    }

    fn comment(&mut self) -> Result<(), Error> {
        if self.peek() != Some('#') {
            return Ok(());
        }
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            if is_control(c) {
                return Err(self.error("a control character in a comment"));
            }
            self.bump();
        }
        Ok(())
    }

    /// Skips whitespace, comments and newlines.
    fn skip_blank(&mut self) -> Result<(), Error> {
        loop {
            self.skip_ws();
            self.comment()?;
            if !self.newline()? {
                return Ok(());
            }
        }
    }

    /// After a value or a header: only whitespace and a comment before the
    /// newline or the end.
    fn end_of_line(&mut self) -> Result<(), Error> {
        self.skip_ws();
        self.comment()?;
        if self.peek().is_none() || self.newline()? {
            Ok(())
        } else {
            Err(self.error("unexpected text after the value"))
        }
    }

    fn key(&mut self) -> Result<String, Error> {
        match self.peek() {
            Some('"') => self.basic_string(),
            Some('\'') => self.literal_string(),
            _ => {
                let len = self
                    .rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(self.rest.len());
                let (key, rest) = self.rest.split_at(len);
                if key.is_empty() {
                    return Err(self.error("expected a key"));
                }
                self.rest = rest;
                Ok(String::from(key))
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        match self.peek() {
            Some('"') if self.rest.starts_with("\"\"\"") => {
                self.multi_line_basic_string().map(Value::String)
            }
            Some('"') => self.basic_string().map(Value::String),
            Some('\'') if self.rest.starts_with("'''") => {
                self.multi_line_literal_string().map(Value::String)
            }
            Some('\'') => self.literal_string().map(Value::String),
            Some('[') => self.array(depth),
            Some('{') => Err(self.error("inline tables are not supported")),
            _ if self.eat("true") => Ok(Value::Boolean(true)),
            _ if self.eat("false") => Ok(Value::Boolean(false)),
            Some(c) if c.is_ascii_digit() || c == '+' || c == '-' => self.integer(),
            Some('i' | 'n') => Err(self.error("floats are not supported")),
            _ => Err(self.error("expected a value")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        if depth >= MAX_DEPTH {
            return Err(self.error("arrays are nested too deeply"));
        }
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_blank()?;
            if self.peek() == Some(']') {
                break;
            }
            items.push(self.value(depth.saturating_add(1))?);
            self.skip_blank()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => break,
                _ => return Err(self.error("expected , or ] in the array")),
            }
        }
        self.bump();
        Ok(Value::Array(items))
    }

    fn integer(&mut self) -> Result<Value, Error> {
        let len = self
            .rest
            .find(|c: char| {
                !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.' | ':'))
            })
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(len);
        let unsigned = token.strip_prefix(['+', '-']).unwrap_or(token);
        if unsigned.contains(['.', ':', 'e', 'E', 'i', 'n', 'T', 'Z']) || unsigned.contains('-') {
            return Err(self.error("floats, dates and times are not supported"));
        }
        if unsigned.starts_with("0x") || unsigned.starts_with("0o") || unsigned.starts_with("0b") {
            return Err(self.error("only decimal integers are supported"));
        }
        let well_formed = unsigned.starts_with(|c: char| c.is_ascii_digit())
            && unsigned.ends_with(|c: char| c.is_ascii_digit())
            && !unsigned.contains("__")
            && unsigned.chars().all(|c| c.is_ascii_digit() || c == '_')
            && (unsigned == "0" || !unsigned.starts_with('0'));
        if !well_formed {
            return Err(self.error("malformed integer"));
        }
        let digits: String = token.chars().filter(|&c| c != '_').collect();
        let n = digits
            .parse::<i64>()
            .map_err(|_| self.error("the integer is out of range"))?;
        self.rest = rest;
        Ok(Value::Integer(n))
    }

    fn basic_string(&mut self) -> Result<String, Error> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error("unterminated string")),
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape()?),
                Some('\n' | '\r') => return Err(self.error("a newline in a one-line string")),
                Some(c) if is_control(c) => {
                    return Err(self.error("a control character in a string"));
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn literal_string(&mut self) -> Result<String, Error> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error("unterminated string")),
                Some('\'') => return Ok(out),
                Some('\n' | '\r') => return Err(self.error("a newline in a one-line string")),
                Some(c) if is_control(c) => {
                    return Err(self.error("a control character in a string"));
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn multi_line_basic_string(&mut self) -> Result<String, Error> {
        self.multi_line(r#"""""#, true)
    }

    fn multi_line_literal_string(&mut self) -> Result<String, Error> {
        self.multi_line("'''", false)
    }

    /// `"""…"""` (with escapes) or `'''…'''`: a newline right after the
    /// opening delimiter is dropped; one or two quotes may end the content.
    fn multi_line(&mut self, delimiter: &str, escapes: bool) -> Result<String, Error> {
        self.eat(delimiter);
        self.newline()?;
        let quote = delimiter.chars().next().unwrap_or('"');
        let mut out = String::new();
        loop {
            if self.rest.starts_with(delimiter) {
                let run = self
                    .rest
                    .len()
                    .saturating_sub(self.rest.trim_start_matches(quote).len());
                if run > 5 {
                    return Err(self.error("too many quotes at the end of the string"));
                }
                for _ in 0..run {
                    self.bump();
                }
                // The delimiter matched, so run >= 3.
                out.extend(core::iter::repeat_n(quote, run.saturating_sub(3)));
                return Ok(out);
            }
            match self.bump() {
                None => return Err(self.error("unterminated string")),
                Some('\\') if escapes => {
                    let after_ws = self.rest.trim_start_matches([' ', '\t']);
                    if after_ws.starts_with(['\n', '\r']) {
                        // A line-ending backslash: drop every blank up to the next text.
                        self.skip_ws();
                        while self.newline()? {
                            self.skip_ws();
                        }
                    } else {
                        out.push(self.escape()?);
                    }
                }
                Some('\r') => {
                    if self.peek() != Some('\n') {
                        return Err(self.error("a carriage return not followed by a line feed"));
                    }
                    out.push('\r');
                }
                Some(c) if c != '\n' && is_control(c) => {
                    return Err(self.error("a control character in a string"));
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// The character after a backslash (already consumed).
    fn escape(&mut self) -> Result<char, Error> {
        let c = match self.bump() {
            Some('b') => '\u{8}',
            Some('t') => '\t',
            Some('n') => '\n',
            Some('f') => '\u{c}',
            Some('r') => '\r',
            Some('"') => '"',
            Some('\\') => '\\',
            Some('u') => return self.unicode(4),
            Some('U') => return self.unicode(8),
            _ => return Err(self.error("an unknown escape in a string")),
        };
        Ok(c)
    }

    fn unicode(&mut self, digits: usize) -> Result<char, Error> {
        let hex = self.rest.get(..digits).unwrap_or("");
        let code = if hex.len() == digits && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            u32::from_str_radix(hex, 16).ok()
        } else {
            None
        };
        let c = code
            .and_then(char::from_u32)
            .ok_or_else(|| self.error("a bad \\u or \\U escape in a string"))?;
        self.rest = self.rest.get(digits..).unwrap_or("");
        Ok(c)
    }
}

/// Control characters TOML forbids in strings and comments (tab is allowed).
fn is_control(c: char) -> bool {
    (c < ' ' && c != '\t') || c == '\u{7f}'
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    fn entries(text: &str) -> Vec<(String, Value)> {
        parse(text).unwrap().into_entries()
    }

    #[test]
    fn the_init_data_shape_parses() {
        let text = "# init-data\r\nversion = \"0.1.0\"\nalgorithm = 'sha384' # comment\n\n[data]\n\"aa.toml\" = '''\n[token_configs]\nx = \"y\"\n'''\n'b.txt' = \"\"\"\nl1\\\n   l2 \\u00e9\\U0001F600\\t\"\"\"\n";
        let table = Table {
            entries: vec![
                ("aa.toml".to_string(), s("[token_configs]\nx = \"y\"\n")),
                ("b.txt".to_string(), s("l1l2 é😀\t")),
            ],
        };
        assert_eq!(
            entries(text),
            vec![
                ("version".to_string(), s("0.1.0")),
                ("algorithm".to_string(), s("sha384")),
                ("data".to_string(), Value::Table(table)),
            ]
        );
    }

    #[test]
    fn arrays_integers_and_booleans() {
        assert_eq!(
            entries(
                "a = [\n  \"x\", # one\n  'y',\n]\nb = -1_000\nc = true\nd = []\ne = [[1], [+0]]\n"
            ),
            vec![
                ("a".to_string(), Value::Array(vec![s("x"), s("y")])),
                ("b".to_string(), Value::Integer(-1000)),
                ("c".to_string(), Value::Boolean(true)),
                ("d".to_string(), Value::Array(vec![])),
                (
                    "e".to_string(),
                    Value::Array(vec![
                        Value::Array(vec![Value::Integer(1)]),
                        Value::Array(vec![Value::Integer(0)])
                    ])
                ),
            ]
        );
    }

    #[test]
    fn quotes_may_end_multi_line_strings() {
        assert_eq!(entries("a = \"\"\"x\"\"\"\"\"")[0].1, s("x\"\""));
        assert_eq!(entries("a = ''''x''''")[0].1, s("'x'"));
        assert!(parse("a = \"\"\"x\"\"\"\"\"\"").is_err());
    }

    #[test]
    fn what_the_subset_leaves_out_is_refused_by_name() {
        for (text, what) in [
            ("a.b = 1", "dotted keys"),
            ("[a.b]", "dotted table"),
            ("[[a]]", "arrays of tables"),
            ("a = {b = 1}", "inline tables"),
            ("a = 1.5", "floats"),
            ("a = inf", "floats"),
            ("a = 1979-05-27", "dates"),
            ("a = 0x10", "decimal"),
            ("a = \"\\e\"", "escape"),
            ("a = \"\"\"\\ t\"\"\"", "escape"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(what), "{text}: {error}");
        }
    }

    #[test]
    fn malformed_documents_are_refused() {
        for text in [
            "a = 1\na = 2",
            "[t]\n[t]",
            "a = 1\n[a]",
            "a = ",
            "a = 01",
            "a = 1__0",
            "a = _1",
            "a = 99999999999999999999",
            "a = \"x",
            "a = 'x\ny'",
            "a = \"\\uD800\"",
            "a = \"\u{1}\"",
            "a = [1,,2]",
            "a = [1 2]",
            "a = 1 b = 2",
            "a = truex",
            "= 1",
            "a = 1\r",
            "a = 1 # \u{0}",
            "[t",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let error = parse("a = 1\n\nb = [\n1,\n2\n3]").unwrap_err();
        assert_eq!(error.line, 6);
    }

    #[test]
    fn no_panic_on_any_prefix_or_deep_nesting() {
        let text = "v = \"0.1.0\"\n[data]\n\"f\" = '''\nx\n'''\ng = \"\"\"a\\\n b\\u00e9\"\"\"\nh = [1, [2], 'x']\n";
        for end in 0..=text.len() {
            if let Some(prefix) = text.get(..end) {
                let _ = parse(prefix);
            }
        }
        let deep = "a = ".to_string() + &"[".repeat(10_000);
        assert!(parse(&deep).is_err());
    }
}
