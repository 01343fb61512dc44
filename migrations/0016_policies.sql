-- Expression policies and policy bindings (issue 14; crates/core/src/policy/expression.rs and
-- binding.rs). Policies set in configuration (GATEHOUSE_EXPRESSION_POLICIES) are not stored here:
-- bindings name them as `cfg:<name>`.
CREATE TABLE policies (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- CEL source, at most 2048 bytes, validated when saved.
    expression  TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- One binding: exactly one of policy_id, user_ref, group_name says what is checked; `target` is
-- `flow:authorize`, `stage:mfa`, `client:<client_id>` or `app:<app id>`.
CREATE TABLE policy_bindings (
    id             TEXT PRIMARY KEY,
    target         TEXT NOT NULL,
    policy_id      TEXT,
    user_ref       TEXT,
    group_name     TEXT,
    position       INTEGER NOT NULL DEFAULT 0,
    negate         INTEGER NOT NULL DEFAULT 0,
    failure_result INTEGER NOT NULL DEFAULT 0,
    enabled        INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CHECK ((policy_id IS NOT NULL) + (user_ref IS NOT NULL) + (group_name IS NOT NULL) = 1)
);
CREATE INDEX policy_bindings_by_target ON policy_bindings (target);
CREATE INDEX policy_bindings_by_policy ON policy_bindings (policy_id);

-- How a target's bindings combine when it is not the default `all`.
CREATE TABLE policy_engine_modes (
    target TEXT PRIMARY KEY,
    mode   TEXT NOT NULL CHECK (mode IN ('all', 'any'))
);
