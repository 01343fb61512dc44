-- Email (issue 12): one-time codes, password-reset links and verification links sent by mail,
-- and the local development outbox.
--
-- A row is one secret sent to one address. Only a hash of the secret is stored: links carry a
-- 256-bit token (SHA-256), codes 6 digits (HMAC-SHA256 under the cookie secret, bound to the
-- flow, so a copy of the database does not let anyone try the million codes offline).
CREATE TABLE email_tokens (
    id          TEXT PRIMARY KEY,
    -- 'sign_in_code' (a second factor), 'reset' (a password-reset link), 'verify' (proves an address)
    kind        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The address it went to: a token for an address the user no longer has proves nothing.
    email       TEXT NOT NULL,
    -- The sign-in flow it belongs to (codes and resets); NULL for verification links.
    flow_id     TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- Wrong codes tried against it; at the limit it stops working.
    failures    INTEGER NOT NULL DEFAULT 0,
    -- Set once, with a compare-and-set: a token works once.
    used_at     INTEGER
);
CREATE INDEX email_tokens_secret ON email_tokens(secret_hash);
CREATE INDEX email_tokens_flow ON email_tokens(flow_id, kind) WHERE flow_id IS NOT NULL;
CREATE INDEX email_tokens_user ON email_tokens(user_id);
CREATE INDEX email_tokens_expires ON email_tokens(expires_at);

-- The user asked for an emailed code at every sign-in (GATEHOUSE_EMAIL_OTP=on, verified address).
ALTER TABLE users ADD COLUMN email_otp INTEGER NOT NULL DEFAULT 0;

-- Mail "sent" in local development (GATEHOUSE_MAILER unset or `outbox`, no issuer, loopback):
-- shown at /dev/outbox and read by the end-to-end tests. Nothing is stored here in production.
CREATE TABLE dev_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    to_address TEXT NOT NULL,
    subject    TEXT NOT NULL,
    text_body  TEXT NOT NULL,
    html_body  TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
