-- A sign-in flow in progress names its user once it has identified one, so that ending a
-- user's sessions (a password change, signing out the other sessions, an administrator's
-- reset or disable) also ends the sign-ins in progress for that user: a flow that passed the
-- old password must not go on to enroll a second factor or set a password afterwards.
ALTER TABLE auth_requests ADD COLUMN user_id TEXT;
CREATE INDEX auth_requests_user ON auth_requests(user_id) WHERE user_id IS NOT NULL;
