//! The crate's one error type. Every variant names the input it is about
//! (a file role such as "firmware" or "kernel", or an option) and says what
//! is wrong or missing, so a user knows what to check.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// An input file or value does not have the shape we need.
    #[error("{input}: {detail}")]
    BadInput { input: String, detail: String },
    #[error("cannot read {role} {path}: {source}")]
    Read {
        role: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The `sev` crate refused inputs that our own checks accepted.
    #[error("the SEV-SNP digest engine (sev crate) failed: {0}")]
    SnpEngine(String),
}

/// Shorthand for a [`MeasureError::BadInput`].
pub fn bad_input(input: impl Into<String>, detail: impl Into<String>) -> MeasureError {
    MeasureError::BadInput {
        input: input.into(),
        detail: detail.into(),
    }
}

pub type Result<T, E = MeasureError> = std::result::Result<T, E>;

/// Reads a whole file, naming its role in the error.
pub fn read_file(role: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| MeasureError::Read {
        role: role.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a whole file, naming it in the error.
pub fn write_file(path: &std::path::Path, contents: &[u8]) -> Result<()> {
    std::fs::write(path, contents).map_err(|source| MeasureError::Write {
        path: path.to_path_buf(),
        source,
    })
}
