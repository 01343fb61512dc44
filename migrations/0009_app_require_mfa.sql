-- An app behind the gateway may require a second factor of everyone who uses it: the sign-in
-- flow asks for one (a session without one steps up), and a request whose session has none is
-- sent to sign in again.
ALTER TABLE apps ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0;
