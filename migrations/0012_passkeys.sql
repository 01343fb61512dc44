-- Passkeys (issue 13): WebAuthn credentials a user registered, verified by
-- crates/core/src/factors/webauthn. Public keys only: nothing here signs in by itself.
CREATE TABLE passkeys (
    -- The credential id (1 to 1023 bytes), base64url: the key authenticators name it by.
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The COSE_Key exactly as the authenticator encoded it, base64url, and its algorithm.
    public_key         TEXT NOT NULL,
    alg                INTEGER NOT NULL,
    -- The signature counter last seen; moved forward with a compare-and-set at each use.
    sign_count         INTEGER NOT NULL,
    -- Transport hints for the browser (JSON list of known values).
    transports         TEXT NOT NULL DEFAULT '[]',
    backup_eligible    INTEGER NOT NULL,
    backed_up          INTEGER NOT NULL,
    -- Authenticator model (16 bytes, hex; all zeros for most passkeys) and attestation format,
    -- as the authenticator claims them: unverified beyond a packed self attestation, and nothing
    -- is decided on them.
    aaguid             TEXT NOT NULL,
    attestation_format TEXT NOT NULL,
    name               TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER
);
CREATE INDEX passkeys_user ON passkeys(user_id);

-- The opaque WebAuthn user handle (`user.id` in registration options): 32 random bytes,
-- base64url, made at the user's first registration. Never the username or the address.
ALTER TABLE users ADD COLUMN webauthn_handle TEXT;
CREATE UNIQUE INDEX users_webauthn_handle ON users(webauthn_handle) WHERE webauthn_handle IS NOT NULL;
