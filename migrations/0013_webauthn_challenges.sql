-- WebAuthn challenges (issue 13): one outstanding challenge per owner and ceremony. The owner is
-- what the challenge is bound to: a sign-in flow (`flow:<id>`, itself bound to one browser) or
-- an account-page session (`session:<hash>`). A new challenge replaces the owner's last one; a
-- finished ceremony deletes it with a compare-and-set, so each works once.
CREATE TABLE webauthn_challenges (
    owner      TEXT NOT NULL,
    -- `register`, `sign_in` (usernameless) or `second_factor`.
    ceremony   TEXT NOT NULL,
    -- 32 random bytes, base64url: public (the browser is sent it), so stored as it is.
    challenge  TEXT NOT NULL,
    -- The user the ceremony is for (registration, second factor); NULL for usernameless.
    user_id    TEXT,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (owner, ceremony)
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges(expires_at);
