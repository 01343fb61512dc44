-- The gateway: protected applications, their sessions on the app host, and the one-time codes
-- that carry a login from Gatehouse's host to an app's host. User groups gate access to apps.

ALTER TABLE users ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';   -- JSON array of group names

CREATE TABLE apps (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    host          TEXT NOT NULL,          -- exact host[:port], lower case, as in the Host header
    path_prefix   TEXT NOT NULL,          -- starts and ends with '/'
    origin        TEXT NOT NULL,          -- scheme://host[:port] of the app behind Gatehouse
    require_login INTEGER NOT NULL DEFAULT 1,
    allowed_users TEXT NOT NULL DEFAULT '[]',   -- JSON: usernames or user ids; empty = any user
    allowed_groups TEXT NOT NULL DEFAULT '[]',  -- JSON: group names; empty = any user
    headers       TEXT NOT NULL DEFAULT '{}',   -- JSON header policy
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (host, path_prefix)
);

-- A login on an app's host: bound to the SSO session, so ending that ends this too.
CREATE TABLE app_sessions (
    id_hash       TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sso_session_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX app_sessions_sso ON app_sessions(sso_session_hash);

CREATE TABLE gateway_codes (
    code_hash     TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sso_session_hash TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
);
