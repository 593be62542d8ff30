//! Helpers shared by the unit tests: a tiny deterministic pseudo-random
//! generator and a no-panic driver for parsers.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod keys;

/// An init-data document with a `forwarder.toml` (KBS inbound, a WN key):
/// the seed of the init-data and forwarder-config mutation tests.
pub const SAMPLE_INIT_DATA: &str = include_str!("../testdata/init-data.toml");
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "std")]
pub mod tmpfs;

use alloc::vec::Vec;

/// xorshift64*: deterministic, good enough to pick test inputs.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    #[allow(
        clippy::should_implement_trait,
        reason = "an endless generator for tests, not an iterator"
    )]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// Feeds `parse` a few thousand inputs: random bytes, and mutations of each
/// seed (bit flips, cuts, splices, inserted bytes, repeated slices). The
/// test fails only by panicking inside `parse`.
pub fn feed_mutations(seeds: &[&[u8]], rounds: usize, mut parse: impl FnMut(&[u8])) {
    let mut rng = XorShift::new(0x00c0_ffee);
    for seed in seeds {
        parse(seed);
    }
    for round in 0..rounds {
        let mut input: Vec<u8> = match seeds.get(round % (seeds.len() + 1)) {
            Some(seed) => seed.to_vec(),
            None => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        };
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut input);
        }
        parse(&input);
    }
}

fn mutate(rng: &mut XorShift, input: &mut Vec<u8>) {
    let len = input.len() as u64;
    match rng.below(6) {
        0 if len > 0 => {
            let at = rng.below(len) as usize;
            input[at] ^= 1 << rng.below(8);
        }
        1 => input.truncate(rng.below(len + 1) as usize),
        2 => {
            let at = rng.below(len + 1) as usize;
            input.insert(at, rng.next() as u8);
        }
        3 if len > 0 => {
            let at = rng.below(len) as usize;
            input[at] = [0, 0xff, b':', b'=', b'"', b'\n', b'[', 0x80][rng.below(8) as usize];
        }
        4 if len > 1 => {
            let start = rng.below(len) as usize;
            let end = start + rng.below(len - start as u64) as usize;
            let slice = input[start..end].to_vec();
            let at = rng.below(input.len() as u64 + 1) as usize;
            input.splice(at..at, slice);
        }
        _ => input.push(rng.next() as u8),
    }
}
