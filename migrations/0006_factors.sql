-- Second factors (issue 11). A TOTP device's secret is stored sealed (AES-256-GCM under a key
-- derived from GATEHOUSE_SEALING_KEY, with the row's user and device ids as associated data), never
-- in plain text; recovery codes only as SHA-256 hashes.
CREATE TABLE totp_devices (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    -- NULL while enrollment waits for the first valid code; only confirmed devices sign in.
    confirmed_at  INTEGER,
    -- The last time step accepted (RFC 6238 §5.2): a code at or before it is a replay. Moved
    -- forward with a compare-and-set, so two requests racing with one code cannot both pass.
    last_step     INTEGER,
    last_used_at  INTEGER,
    created_at    INTEGER NOT NULL
);
CREATE INDEX totp_devices_user ON totp_devices(user_id);

CREATE TABLE recovery_codes (
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash     TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    used_at       INTEGER,
    PRIMARY KEY (user_id, code_hash)
);
