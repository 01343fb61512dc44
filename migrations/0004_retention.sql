-- Indexes for the retention job (crates/core/src/store/retention.rs): each of its deletes finds
-- one batch of dead rows through an index instead of scanning the table. Partial indexes leave
-- out rows the job keeps (rotated refresh tokens, used codes) or never looks at (live sessions,
-- unrevoked grants), so they stay small.

CREATE INDEX auth_requests_expiry ON auth_requests(expires_at);

-- Unused codes go at expiry; a used one stays with its grant so a late replay is still seen.
CREATE INDEX authorization_codes_unused_expiry ON authorization_codes(expires_at) WHERE used_at IS NULL;
-- A grant's code: the job deletes it before the grant, and deleting a grant checks for it.
CREATE INDEX authorization_codes_grant ON authorization_codes(grant_id);

CREATE INDEX gateway_codes_expiry ON gateway_codes(expires_at);

-- Rotated refresh tokens stay until their grant goes (reuse detection), so they are left out.
CREATE INDEX tokens_unrotated_expiry ON tokens(expires_at) WHERE rotated_at IS NULL;

CREATE INDEX grants_expiry ON grants(expires_at);
CREATE INDEX grants_revoked ON grants(revoked_at) WHERE revoked_at IS NOT NULL;

CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE INDEX sessions_ended ON sessions(ended_at) WHERE ended_at IS NOT NULL;

CREATE INDEX app_sessions_expiry ON app_sessions(expires_at);

CREATE INDEX events_time ON events(created_at);
