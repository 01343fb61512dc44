-- Notification rules and the deliveries that could not be made (README: "Notifications").
-- A rule's criteria and transport are JSON checked by `events::rules::validate` (every field
-- bounded there); a webhook's signing secret is sealed (AES-256-GCM, like TOTP seeds), because
-- it must be read back to sign.
CREATE TABLE notification_rules (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  criteria TEXT NOT NULL,
  transport TEXT NOT NULL,
  secret_sealed TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- No foreign key to the rule: a dead letter outlives the rule it was for. The newest 1000 are
-- kept (`store::dead_letters`).
CREATE TABLE notification_dead_letters (
  id TEXT PRIMARY KEY,
  rule_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_kind TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  reason TEXT NOT NULL,
  message TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX notification_dead_letters_created ON notification_dead_letters (created_at);
