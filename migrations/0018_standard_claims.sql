-- OpenID Connect standard claims (OIDC Core §5.1) beyond the columns users already have: one JSON
-- object checked by `types::profile` (every member bounded there; at most about 9 KB).
ALTER TABLE users ADD COLUMN claims TEXT NOT NULL DEFAULT '{}';

-- The `claims` request parameter (OIDC Core §5.5) as the grant keeps it: the names of the claims
-- asked for the ID token and for userinfo, only names Gatehouse knows (`oidc::claims`). NULL when
-- the request named none.
ALTER TABLE grants ADD COLUMN claims TEXT;

-- An access token's share of them: the userinfo claims it may release, narrowed to the client's
-- scopes when it was issued.
ALTER TABLE tokens ADD COLUMN claims TEXT;
