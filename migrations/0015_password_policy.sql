-- Password policy (issue 14): expiry needs to know when each password was set, and uniqueness
-- keeps the hashes of earlier passwords.
--
-- Users from before this migration count their password as set when the account was created:
-- the earliest it can have been, so a deployment that turns expiry on asks them first.
ALTER TABLE users ADD COLUMN password_changed_at INTEGER NOT NULL DEFAULT 0;
UPDATE users SET password_changed_at = created_at;

-- The Argon2id hashes of a user's earlier passwords, exactly as they were stored (never a
-- weaker form), for GATEHOUSE_PASSWORD_HISTORY; at most 9 a user (the current one is in users).
CREATE TABLE password_history (
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    replaced_at   INTEGER NOT NULL
);
CREATE INDEX password_history_by_user ON password_history (user_id, replaced_at DESC);
