-- How each session was signed in (RFC 8176 `amr` values, space-separated), carried by the grants
-- made from it into ID and access tokens (`amr`, and the `acr` derived from it). Sessions before
-- this migration were password sign-ins; client_credentials grants have none.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE grants ADD COLUMN amr TEXT;
