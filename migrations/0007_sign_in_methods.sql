-- How each session was signed in: the factors its sign-in passed with their times
-- (`password:1800000000 totp:1800000030`; `flow::plan::parse_passed`), so a step-up keeps what
-- was passed and `max_age` judges each factor by its own time. Empty for sessions from before this
-- migration: a password at auth_time. Grants carry the RFC 8176 `amr` values derived from it
-- (space-separated) into ID and access tokens; client_credentials grants have none.
ALTER TABLE sessions ADD COLUMN factors TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN amr TEXT;
