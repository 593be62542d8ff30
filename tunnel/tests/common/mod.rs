//! Helpers shared by the pp-tunnel integration tests: a connected PP/WN
//! pair over an in-memory pipe, an echo service, checksummed payloads.
#![allow(dead_code)] // each test file uses its own subset

use pp_tunnel::{
    IncomingStream, MuxDriver, MuxEvent, MuxEvents, MuxHandle, MuxStream, Phase, Side, start,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

pub const MIB: usize = 1024 * 1024;

pub struct End {
    pub handle: MuxHandle,
    pub events: MuxEvents,
    pub driver: MuxDriver<DuplexStream>,
}

/// A PP (Kubernetes phase) and a WN mux joined by an in-memory pipe.
pub fn pair() -> (End, End) {
    let (pp_io, wn_io) = tokio::io::duplex(64 * 1024);
    let (handle, events, driver) = start(pp_io, Side::Pp(Phase::Kubernetes));
    let pp = End {
        handle,
        events,
        driver,
    };
    let (handle, events, driver) = start(wn_io, Side::Wn);
    (
        pp,
        End {
            handle,
            events,
            driver,
        },
    )
}

/// Deterministic pseudo-random bytes: the same `seed` gives the same data.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// FNV-1a, enough to tell two payloads apart.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Echoes every incoming stream back to its sender until EOF.
pub async fn serve_echo(mut events: MuxEvents) {
    while let Some(event) = events.recv().await {
        if let MuxEvent::Incoming(incoming) = event {
            tokio::spawn(echo(incoming.stream));
        }
    }
}

pub async fn echo(stream: MuxStream) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    tokio::io::copy(&mut reader, &mut writer).await.unwrap();
    writer.shutdown().await.unwrap();
}

/// Writes `len` bytes derived from `seed` into `stream`, half-closes it,
/// and checks that the same bytes come back.
pub async fn round_trip(stream: MuxStream, seed: u64, len: usize) {
    let data = payload(seed, len);
    let expected = checksum(&data);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = async move {
        writer.write_all(&data).await.unwrap();
        writer.shutdown().await.unwrap();
    };
    let read = async move {
        let mut back = Vec::with_capacity(len);
        reader.read_to_end(&mut back).await.unwrap();
        back
    };
    let ((), back) = tokio::join!(write, read);
    assert_eq!(back.len(), len, "stream {seed} returned every byte");
    assert_eq!(
        checksum(&back),
        expected,
        "stream {seed} returned the same bytes"
    );
}

/// The next stream the peer opens, skipping control events.
pub async fn next_incoming(events: &mut MuxEvents) -> IncomingStream {
    loop {
        match events.recv().await {
            Some(MuxEvent::Incoming(incoming)) => return incoming,
            Some(_) => continue,
            None => panic!("the mux ended before the peer opened a stream"),
        }
    }
}
