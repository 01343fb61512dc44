//! Test doubles for the ports: a clock the test moves, seeded randomness, in-memory counters,
//! and a RustCrypto signer. Compiled only with the `testing` feature.

use std::cell::Cell;

use async_trait::async_trait;

use crate::crypto::sha256;
use crate::error::InternalError;
use crate::ports::{Clock, Counters, Rng};

pub mod signer;
pub use signer::RustCryptoSigner;

/// A clock that only moves when told to.
pub struct FakeClock(Cell<i64>);

impl FakeClock {
    pub fn at(unix_seconds: i64) -> FakeClock {
        FakeClock(Cell::new(unix_seconds * 1000))
    }
    pub fn advance(&self, seconds: i64) {
        self.0.set(self.0.get() + seconds * 1000);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

/// Deterministic randomness: SHA-256 of a seed and a counter. Never for production.
pub struct SeededRng {
    seed: u64,
    counter: Cell<u64>,
}

impl SeededRng {
    pub fn new(seed: u64) -> SeededRng {
        SeededRng {
            seed,
            counter: Cell::new(0),
        }
    }
}

impl Rng for SeededRng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), InternalError> {
        for chunk in buf.chunks_mut(32) {
            let n = self.counter.get();
            self.counter.set(n + 1);
            let mut input = self.seed.to_le_bytes().to_vec();
            input.extend_from_slice(&n.to_le_bytes());
            let block = sha256(&input);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

/// Counters held in memory; `down` simulates an unreachable Durable Object.
#[derive(Default)]
pub struct MemCounters {
    pub down: Cell<bool>,
}

#[async_trait(?Send)]
impl Counters for MemCounters {
    async fn ping(&self) -> Result<(), InternalError> {
        if self.down.get() {
            Err(InternalError::new("counter store unreachable"))
        } else {
            Ok(())
        }
    }
}
