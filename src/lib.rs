//! The Worker adapter: converts `worker` types to and from the core's, and implements the core's
//! ports on D1, a Durable Object, `Date.now()`, `crypto.getRandomValues` and WebCrypto.
//! Everything with a decision in it lives in `gatehouse-core`.

#[cfg(target_arch = "wasm32")]
pub mod adapter;
#[cfg(all(target_arch = "wasm32", feature = "bench"))]
pub mod bench;
#[cfg(target_arch = "wasm32")]
pub mod captcha;
#[cfg(target_arch = "wasm32")]
pub mod counters;
#[cfg(target_arch = "wasm32")]
pub mod d1;
#[cfg(target_arch = "wasm32")]
pub mod fetch;
#[cfg(target_arch = "wasm32")]
pub mod mail;
#[cfg(target_arch = "wasm32")]
pub mod notify;
#[cfg(target_arch = "wasm32")]
pub mod proxy;
#[cfg(target_arch = "wasm32")]
pub mod pwned;
#[cfg(target_arch = "wasm32")]
pub mod scheduled;
#[cfg(target_arch = "wasm32")]
pub mod signing;
#[cfg(target_arch = "wasm32")]
pub mod strength;
#[cfg(target_arch = "wasm32")]
pub mod webauthn;
