//! The core's `PwnedPasswords` port: one GET to the Pwned Passwords range API (or the URL in
//! `GATEHOUSE_HIBP_URL`), with a timeout. The URL holds only a 5-character hash prefix; the core
//! builds it and searches the answer (`gatehouse_core::policy::password::pwned`).

use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::InternalError;
use gatehouse_core::ports::PwnedPasswords;

/// How long setting a password waits for the API before it counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct FetchPwned;

#[async_trait(?Send)]
impl PwnedPasswords for FetchPwned {
    async fn range(&self, url: &str, headers: &[(&str, &str)]) -> Result<(u16, Vec<u8>), InternalError> {
        crate::fetch::get("pwned passwords", url, headers, TIMEOUT).await
    }
}
