//! The cluster DNS resolver TEST DOUBLE (a stand-in for CoreDNS at the
//! cluster's `kube-dns` address): answers DNS queries over UDP in the real
//! wire format of RFC 1035, for the records it was given, so that a query
//! sent through a UDP tunnel can be checked end to end.
//!
//! What it does like a real resolver: one question per query; the answer
//! echoes the query's ID, question, opcode and RD bit, sets QR and AA; an
//! `A` question for a known name gets one `A` record (name as a
//! compression pointer to the question, class IN, TTL 30); an unknown
//! name gets NXDOMAIN; another type for a known name gets NOERROR with no
//! answer (NODATA); a query it cannot read but whose header it can gets
//! FORMERR; fewer than 12 bytes, or a response, is dropped. Names match
//! case-insensitively, without the trailing dot. What it does not do:
//! recursion, TCP, EDNS, AAAA records, truncation.
//!
//! [`build_query`] and [`parse_answer`] are the client side of the same
//! format, for tests. Contract: no function here panics on any bytes.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use tokio::net::UdpSocket;

/// Record type `A` (RFC 1035 3.2.2).
pub const TYPE_A: u16 = 1;
/// Class `IN`.
pub const CLASS_IN: u16 = 1;
/// The TTL of every answer.
pub const ANSWER_TTL: u32 = 30;
/// Response code: no error.
pub const RCODE_NOERROR: u8 = 0;
/// Response code: the query could not be read.
pub const RCODE_FORMERR: u8 = 1;
/// Response code: no such name.
pub const RCODE_NXDOMAIN: u8 = 3;

const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_RD: u16 = 0x0100;
const OPCODE_MASK: u16 = 0x7800;
/// Longest name in wire form (RFC 1035 2.3.4).
const MAX_NAME_WIRE: usize = 255;
/// Compression pointers followed while reading one name, at most.
const MAX_POINTERS: usize = 16;

/// Why bytes are not the DNS message expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsError(pub String);

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a valid DNS message: {}", self.0)
    }
}

impl std::error::Error for DnsError {}

fn bad(what: &str) -> DnsError {
    DnsError(what.to_owned())
}

/// The one question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Lowercase, dot-separated, no trailing dot (`""` for the root).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

/// What a client reads from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub id: u16,
    pub rcode: u8,
    pub authoritative: bool,
    /// The addresses of the `A` records of the answer section.
    pub addresses: Vec<Ipv4Addr>,
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, DnsError> {
    match bytes.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(bad("message ends inside a field")),
    }
}

/// Reads the name at `at`; returns it and the offset after it (after the
/// first pointer, if the name used one).
fn read_name(message: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut labels: Vec<String> = Vec::new();
    let mut wire_len = 0usize;
    let mut after: Option<usize> = None;
    let mut pointers = 0usize;
    loop {
        let len = *message
            .get(at)
            .ok_or_else(|| bad("name runs past the end"))?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                let end = after.unwrap_or(at + 1);
                return Ok((labels.join("."), end));
            }
            0x00 => {
                let len = usize::from(len);
                wire_len += len + 1;
                if wire_len > MAX_NAME_WIRE {
                    return Err(bad("name longer than 255 bytes"));
                }
                let label = message
                    .get(at + 1..at + 1 + len)
                    .ok_or_else(|| bad("label runs past the end"))?;
                labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
                at += 1 + len;
            }
            0xC0 => {
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(bad("too many compression pointers (a loop?)"));
                }
                let target = usize::from(u16_at(message, at)? & 0x3FFF);
                after.get_or_insert(at + 2);
                at = target;
            }
            _ => return Err(bad("reserved label type")),
        }
    }
}

/// Writes `name` in wire form (no compression).
fn write_name(out: &mut Vec<u8>, name: &str) -> Result<(), DnsError> {
    let mut wire_len = 1usize;
    for label in name.split('.').filter(|label| !label.is_empty()) {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|len| *len <= 63)
            .ok_or_else(|| bad("label longer than 63 bytes"))?;
        wire_len += label.len() + 1;
        if wire_len > MAX_NAME_WIRE {
            return Err(bad("name longer than 255 bytes"));
        }
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// A standard query (RD set) with ID `id` for the `A` records of `name`.
pub fn build_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    write_name(&mut out, name)?;
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// Reads the question of a query: exactly one, QR clear.
pub fn parse_query(message: &[u8]) -> Result<Question, DnsError> {
    question_of(message).map(|(question, _)| question)
}

/// The question and the offset just after it.
fn question_of(message: &[u8]) -> Result<(Question, usize), DnsError> {
    let flags = u16_at(message, 2)?;
    if flags & FLAG_QR != 0 {
        return Err(bad("a response, not a query"));
    }
    if u16_at(message, 4)? != 1 {
        return Err(bad("QDCOUNT is not 1"));
    }
    let (name, at) = read_name(message, HEADER_LEN)?;
    let question = Question {
        name,
        qtype: u16_at(message, at)?,
        qclass: u16_at(message, at + 2)?,
    };
    Ok((question, at + 4))
}

/// The response to `query` from `records` (name → address), or `None`
/// when the query is too short or a response (dropped, as a resolver does).
pub fn respond(query: &[u8], records: &HashMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    let id = u16_at(query, 0).ok()?;
    let flags = u16_at(query, 2).ok()?;
    if query.len() < HEADER_LEN || flags & FLAG_QR != 0 {
        return None;
    }
    let reply_flags =
        |rcode: u8| FLAG_QR | FLAG_AA | (flags & (OPCODE_MASK | FLAG_RD)) | u16::from(rcode);
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&id.to_be_bytes());
    let (question, end) = match question_of(query) {
        Ok(read) => read,
        Err(_) => {
            out.extend_from_slice(&reply_flags(RCODE_FORMERR).to_be_bytes());
            out.extend_from_slice(&[0; 8]);
            return Some(out);
        }
    };
    let address = records.get(&question.name);
    let rcode = if address.is_some() {
        RCODE_NOERROR
    } else {
        RCODE_NXDOMAIN
    };
    let answer = address.filter(|_| question.qtype == TYPE_A && question.qclass == CLASS_IN);
    out.extend_from_slice(&reply_flags(rcode).to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::from(answer.is_some()).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    // The question exactly as asked (letter case included).
    out.extend_from_slice(query.get(HEADER_LEN..end)?);
    if let Some(address) = answer {
        // The name as a pointer to the question's (offset 12).
        out.extend_from_slice(&[0xC0, 0x0C]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ANSWER_TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&address.octets());
    }
    Some(out)
}

/// Reads a response: its ID, RCODE, AA bit and the `A` records answered.
pub fn parse_answer(message: &[u8]) -> Result<Answer, DnsError> {
    let id = u16_at(message, 0)?;
    let flags = u16_at(message, 2)?;
    if flags & FLAG_QR == 0 {
        return Err(bad("a query, not a response"));
    }
    let questions = u16_at(message, 4)?;
    let answers = u16_at(message, 6)?;
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = read_name(message, at)?.1 + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        at = read_name(message, at)?.1;
        let rtype = u16_at(message, at)?;
        let rdlength = usize::from(u16_at(message, at + 8)?);
        let rdata = message
            .get(at + 10..at + 10 + rdlength)
            .ok_or_else(|| bad("record data runs past the end"))?;
        if let (TYPE_A, &[a, b, c, d]) = (rtype, rdata) {
            addresses.push(Ipv4Addr::new(a, b, c, d));
        }
        at += 10 + rdlength;
    }
    Ok(Answer {
        id,
        rcode: (flags & 0x000F) as u8,
        authoritative: flags & FLAG_AA != 0,
        addresses,
    })
}

/// Answers every query arriving on `socket` from `records`, forever;
/// returns only when the socket fails.
pub async fn serve(socket: UdpSocket, records: HashMap<String, Ipv4Addr>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, peer) = socket.recv_from(&mut buf).await?;
        let query = &buf[..len];
        match respond(query, &records) {
            Some(reply) => {
                let name = parse_query(query).map(|q| q.name).unwrap_or_default();
                println!("dns-double (TEST DOUBLE): {peer} asked for {name:?}");
                socket.send_to(&reply, peer).await?;
            }
            None => println!("dns-double (TEST DOUBLE): dropped {len} bytes from {peer}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> HashMap<String, Ipv4Addr> {
        HashMap::from([(
            "kubernetes.default.svc.cluster.local".to_owned(),
            Ipv4Addr::new(10, 96, 0, 1),
        )])
    }

    #[test]
    fn a_known_name_gets_its_a_record_with_the_query_id() {
        let query = build_query(0x1234, "Kubernetes.default.svc.cluster.local.").unwrap();
        let reply = respond(&query, &records()).unwrap();
        let answer = parse_answer(&reply).unwrap();
        assert_eq!(
            answer,
            Answer {
                id: 0x1234,
                rcode: RCODE_NOERROR,
                authoritative: true,
                addresses: vec![Ipv4Addr::new(10, 96, 0, 1)],
            }
        );
        // The question is echoed byte for byte after the header.
        assert_eq!(reply[12..query.len()], query[12..]);
    }

    #[test]
    fn an_unknown_name_is_nxdomain_and_another_type_is_nodata() {
        let query = build_query(7, "nowhere.example").unwrap();
        let answer = parse_answer(&respond(&query, &records()).unwrap()).unwrap();
        assert_eq!((answer.rcode, answer.addresses.len()), (RCODE_NXDOMAIN, 0));
        let mut aaaa = build_query(8, "kubernetes.default.svc.cluster.local").unwrap();
        let len = aaaa.len();
        aaaa[len - 4..len - 2].copy_from_slice(&28u16.to_be_bytes());
        let answer = parse_answer(&respond(&aaaa, &records()).unwrap()).unwrap();
        assert_eq!((answer.rcode, answer.addresses.len()), (RCODE_NOERROR, 0));
    }

    #[test]
    fn unreadable_queries_get_formerr_and_responses_or_scraps_are_dropped() {
        let mut query = build_query(9, "a.b").unwrap();
        query.truncate(query.len() - 3);
        let answer = parse_answer(&respond(&query, &records()).unwrap()).unwrap();
        assert_eq!(answer.rcode, RCODE_FORMERR);
        assert!(respond(&[1, 2, 3], &records()).is_none());
        let reply = respond(&build_query(1, "a").unwrap(), &records()).unwrap();
        assert!(respond(&reply, &records()).is_none());
    }

    #[test]
    fn a_pointer_loop_is_refused_and_no_input_panics() {
        let mut message = build_query(1, "x").unwrap();
        message.truncate(12);
        message.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        assert!(parse_query(&message).is_err());
        let mut seed = 0x2545_f491_u32;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let _ = respond(&bytes, &records());
            let _ = parse_answer(&bytes);
        }
    }

    #[tokio::test]
    async fn it_answers_over_udp() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let server = tokio::spawn(serve(socket, records()));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client
            .send_to(
                &build_query(42, "kubernetes.default.svc.cluster.local").unwrap(),
                address,
            )
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let len = client.recv(&mut buf).await.unwrap();
        let answer = parse_answer(&buf[..len]).unwrap();
        assert_eq!(answer.id, 42);
        assert_eq!(answer.addresses, vec![Ipv4Addr::new(10, 96, 0, 1)]);
        server.abort();
    }
}
