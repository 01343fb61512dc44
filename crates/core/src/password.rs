//! Password hashing: Argon2id at OWASP's minimum (m = 19 MiB, t = 2, p = 1), stored as a PHC
//! string that records the parameters, so they can be raised later and old hashes rehashed on
//! the next successful login.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::InternalError;
use crate::ports::Rng;

pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;
/// The most bytes of a password Argon2 is given: a bound on the work a request can ask for. The
/// password policy's maximum (`policy::password::rules`) is at most this.
pub const MAX_LENGTH: usize = 1024;

fn hasher(memory_kib: u32, iterations: u32) -> Result<Argon2<'static>, InternalError> {
    let params = Params::new(memory_kib, iterations, PARALLELISM, None)
        .map_err(|e| InternalError::new(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes with the current parameters and a fresh 16-byte salt.
/// A password as typed into a form: redacted in `Debug`, so it never reaches a log or an error.
#[derive(Clone, Copy)]
pub struct Password<'a>(&'a str);

impl<'a> Password<'a> {
    pub fn new(typed: &'a str) -> Password<'a> {
        Password(typed)
    }
    pub fn expose(&self) -> &'a str {
        self.0
    }
}

impl std::fmt::Debug for Password<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

pub fn hash(password: &str, rng: &dyn Rng) -> Result<String, InternalError> {
    hash_with(password, rng, MEMORY_KIB, ITERATIONS)
}

pub fn hash_with(password: &str, rng: &dyn Rng, memory_kib: u32, iterations: u32) -> Result<String, InternalError> {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| InternalError::new(format!("salt: {e}")))?;
    hasher(memory_kib, iterations)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| InternalError::new(format!("argon2: {e}")))
}

/// Verifies against a stored PHC string (parameters are read from it). A malformed stored hash
/// is an internal error, not a wrong password.
pub fn verify(password: &str, stored: &str) -> Result<bool, InternalError> {
    let parsed = PasswordHash::new(stored).map_err(|e| InternalError::new(format!("stored hash: {e}")))?;
    // The verifier takes the algorithm and parameters from the PHC string itself.
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(InternalError::new(format!("argon2 verify: {e}"))),
    }
}

/// Whether a stored hash uses weaker parameters than today's and should be rehashed.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => p.m_cost() < MEMORY_KIB || p.t_cost() < ITERATIONS,
        Err(_) => true,
    }
}

/// A valid hash of a password nobody knows, verified for unknown usernames so that a wrong
/// username costs the same time as a wrong password.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Z2F0ZWhvdXNlLWR1bW15$QkVdZ2VnYl5Hd0S3E1KZ8nC8m4vjXl6dM3Gv9l2cQ8Y";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;

    #[test]
    fn a_typed_password_never_prints() {
        let p = Password::new("hunter2 correct horse");
        assert_eq!(format!("{p:?}"), "Password([redacted])");
        assert_eq!(format!("{:?}", Some(&p)), "Some(Password([redacted]))");
        assert_eq!(p.expose(), "hunter2 correct horse");
    }

    #[test]
    fn hash_is_phc_argon2id_with_owasp_minimum_parameters() {
        let h = hash("correct horse", &SeededRng::new(1)).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h).unwrap());
        assert!(!verify("correct horsf", &h).unwrap());
        assert!(!needs_rehash(&h));
    }

    #[test]
    fn weaker_parameters_are_flagged_for_rehash_on_login() {
        let weak = hash_with("pw", &SeededRng::new(2), 4096, 1).unwrap();
        assert!(verify("pw", &weak).unwrap());
        assert!(needs_rehash(&weak));
    }

    #[test]
    fn dummy_hash_parses_and_never_matches_so_unknown_users_cost_a_full_verification() {
        assert!(!needs_rehash(DUMMY_HASH));
        assert!(!verify("", DUMMY_HASH).unwrap());
        assert!(!verify("password", DUMMY_HASH).unwrap());
    }

    #[test]
    fn salts_differ_per_hash() {
        let rng = SeededRng::new(3);
        assert_ne!(hash("same", &rng).unwrap(), hash("same", &rng).unwrap());
    }
}
