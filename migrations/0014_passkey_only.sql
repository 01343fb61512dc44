-- Passkey-only accounts (issue 13): the password form is not shown to them and password sign-in,
-- resets and changes are refused; they sign in with a passkey that verifies the user. Set by an
-- administrator (or for everyone with GATEHOUSE_PASSKEY_ONLY=on, or per group).
ALTER TABLE users ADD COLUMN passkey_only INTEGER NOT NULL DEFAULT 0;
