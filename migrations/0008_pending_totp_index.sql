-- The retention job deletes enrollments never confirmed (an abandoned QR code) a day after they
-- began; this partial index finds them without scanning the confirmed devices.
CREATE INDEX totp_devices_pending ON totp_devices(created_at) WHERE confirmed_at IS NULL;
