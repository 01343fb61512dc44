-- Fixes from the first outside security review.

-- The client IP key (`ip:…`) that started a pending authorization request: one IP may hold only
-- a bounded number of them (the oldest are evicted), so nobody can fill the table from one host.
ALTER TABLE auth_requests ADD COLUMN ip_key TEXT NOT NULL DEFAULT '';
CREATE INDEX auth_requests_ip ON auth_requests(ip_key, created_at);

-- The token request that consumed a code or rotated a refresh token (the `jti` of the access
-- token it minted). "Mark used" and "write the new tokens" run in one batch, and the new tokens
-- are written only if this request's mark is the one that landed: a request that fails before
-- the batch leaves the code or refresh token usable, and two concurrent requests cannot both win.
ALTER TABLE authorization_codes ADD COLUMN redeemed_by TEXT;
ALTER TABLE tokens ADD COLUMN rotated_by TEXT;
-- The same for a gateway code and the app session it becomes (the new session's id hash).
ALTER TABLE gateway_codes ADD COLUMN redeemed_by TEXT;
