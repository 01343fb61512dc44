//! Second factors as pure logic: the TOTP algorithm with its replay rule, recovery codes, emailed
//! codes, WebAuthn verification, and the sealing of secrets Gatehouse must read back. The sign-in stages that ask for them, and the
//! tables that keep them, build on these; nothing here reads the clock or a random source itself.

pub mod amr;
pub mod email;
pub mod qr;
pub mod recovery_codes;
pub mod sealed;
pub mod totp;
pub mod webauthn;
