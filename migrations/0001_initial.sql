-- Gatehouse initial schema. D1 rules: TEXT ids, times in Unix seconds (well inside 2^53),
-- booleans as 0/1. Tokens, codes, session ids and client secrets are stored only as hashes.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    email         TEXT NOT NULL,
    email_verified INTEGER NOT NULL DEFAULT 0,
    name          TEXT,
    password_hash TEXT NOT NULL,          -- PHC string (argon2id with its parameters)
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE clients (
    client_id     TEXT PRIMARY KEY,
    secret_hash   TEXT,                   -- SHA-256 (base64url) of the secret; NULL for public clients
    metadata      TEXT NOT NULL,          -- JSON, RFC 7591 member names
    first_party   INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- SSO sessions; the cookie carries the id, the table its hash.
CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    auth_time     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    ended_at      INTEGER
);
CREATE INDEX sessions_user ON sessions(user_id);

-- Authorization requests waiting for the user to log in or consent.
CREATE TABLE auth_requests (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    params        TEXT NOT NULL,          -- JSON of the validated request
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);

-- A grant: what one authorization (or client_credentials call) produced. Revoking it revokes
-- every token of the family (code reuse, refresh reuse).
CREATE TABLE grants (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    user_id       TEXT,
    session_hash  TEXT,
    scope         TEXT NOT NULL,
    auth_time     INTEGER,
    nonce         TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,       -- absolute lifetime of the family
    revoked_at    INTEGER
);
CREATE INDEX grants_client ON grants(client_id);
CREATE INDEX grants_user ON grants(user_id);
CREATE INDEX grants_session ON grants(session_hash);

CREATE TABLE authorization_codes (
    code_hash     TEXT PRIMARY KEY,
    grant_id      TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    client_id     TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    code_challenge TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
);

-- Access and refresh tokens. A refresh token is used once (rotated_at set), then refused.
CREATE TABLE tokens (
    token_hash    TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id      TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    client_id     TEXT NOT NULL,
    user_id       TEXT,
    scope         TEXT NOT NULL,
    jti           TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    rotated_at    INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX tokens_grant ON tokens(grant_id);
CREATE UNIQUE INDEX tokens_jti ON tokens(jti) WHERE jti IS NOT NULL;

-- Scopes a user granted a client (consent is asked again only for new scopes).
CREATE TABLE consents (
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id     TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    scope         TEXT NOT NULL,
    granted_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE events (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    user_id       TEXT,
    client_id     TEXT,
    ip            TEXT,
    detail        TEXT,                   -- JSON
    created_at    INTEGER NOT NULL
);
CREATE INDEX events_kind_time ON events(kind, created_at);
CREATE INDEX events_user_time ON events(user_id, created_at);
