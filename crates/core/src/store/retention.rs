//! The retention job: deletes rows that can never be used again, so storage does not grow with
//! every login, token and request for ever. The Worker's Cron Trigger calls [`run`].
//!
//! What goes, and when:
//! - pending authorization requests, gateway codes and app sessions: at `expires_at`;
//! - authorization codes: an unused one at `expires_at`; a used one stays with its grant, so a
//!   late replay still revokes the family (RFC 6749 §4.1.2);
//! - tokens: at `expires_at`, except a rotated refresh token, which stays with its grant so that
//!   replaying it revokes the family for as long as the family lives (OAuth 2.0 Security BCP
//!   §4.14.2). Without it, a thief who rotated a stolen token keeps the family when the victim
//!   comes back after the old token's idle expiry: the victim's replay would be "unknown" instead
//!   of "reused";
//! - grants (with the tokens and code they hold): at `expires_at`, the family's absolute
//!   lifetime, or [`REVOKED_GRANT_KEPT`] after revocation. During that day a replay from the
//!   revoked family is still recorded as a reuse event; afterwards it gets `invalid_grant` with no
//!   event, which changes nothing for the user: the family was already dead;
//! - SSO sessions: once ended or expired, and only when no app session refers to them (app
//!   sessions point at them without a foreign key). App sessions of an ended SSO session go first;
//!   an app session never outlives its SSO session's expiry (it is created with it), so none is
//!   left behind;
//! - TOTP enrollments never confirmed (a QR code shown, no code typed): [`PENDING_ENROLLMENT_KEPT`]
//!   after they began;
//! - WebAuthn challenges: at `expires_at` (a used one is deleted when it is used);
//! - events: after `settings.event_retention_days`; CSP reports (sent by anyone's browser) after
//!   [`CSP_REPORT_KEPT`], whatever that setting says.
//!
//! Every delete takes at most [`ROWS_PER_BATCH`] rows found through an index
//! (migrations/0004_retention.sql), and each step runs at most [`BATCHES_PER_STEP`] times per
//! run; what is left waits for the next run. A grant goes only after its tokens and code, and an
//! SSO session only after its app sessions, so no delete cascades: no statement touches more than
//! the batch, and the counts are exact (D1 would count cascaded rows, SQLite would not).

use std::fmt;

use crate::config::Settings;
use crate::db::Value;
use crate::ports::Db;

/// Rows one statement may delete.
pub const ROWS_PER_BATCH: i64 = 1000;
/// Statements per step and run. With the steps below a run makes at most 42 D1 queries, under
/// the 50 a Workers Free invocation may make.
pub const BATCHES_PER_STEP: u32 = 3;
/// Seconds a revoked grant is kept, so replays right after a revocation are still recorded.
pub const REVOKED_GRANT_KEPT: i64 = 24 * 3600;
/// Seconds a CSP report is kept: enough to trial a policy, short because anyone's browser can
/// send them.
pub const CSP_REPORT_KEPT: i64 = 7 * 24 * 3600;
/// Seconds an unconfirmed TOTP enrollment is kept: a day to come back to the QR code.
pub const PENDING_ENROLLMENT_KEPT: i64 = 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    AuthRequests,
    AuthorizationCodes,
    GatewayCodes,
    Tokens,
    Grants,
    AppSessions,
    Sessions,
    TotpDevices,
    EmailTokens,
    WebauthnChallenges,
    Events,
}

/// A point in time a step compares with.
#[derive(Debug, Clone, Copy)]
pub enum Cutoff {
    Now,
    /// `now - REVOKED_GRANT_KEPT`: grants revoked before it are dead.
    RevokedGrantKept,
    /// `now - event_retention_days`: events created before it go.
    EventRetention,
    /// `now - CSP_REPORT_KEPT`: CSP reports received before it go.
    CspReportKept,
    /// `now - PENDING_ENROLLMENT_KEPT`: enrollments begun before it and never confirmed go.
    PendingEnrollmentKept,
}

/// One kind of dead row: a DELETE of at most `?1` rows; `?2`, `?3` are the `cutoffs` in order.
/// Where a step unites two conditions, the second excludes the first, so no row is counted twice
/// against the limit.
#[derive(Debug)]
pub struct Step {
    pub name: &'static str,
    pub table: Table,
    pub cutoffs: &'static [Cutoff],
    pub sql: &'static str,
}

/// In order: children before parents (tokens and codes before grants, app sessions before
/// sessions).
pub const STEPS: &[Step] = &[
    Step {
        name: "expired auth_requests",
        table: Table::AuthRequests,
        cutoffs: &[Cutoff::Now],
        sql: "DELETE FROM auth_requests WHERE rowid IN \
              (SELECT rowid FROM auth_requests WHERE expires_at <= ?2 LIMIT ?1)",
    },
    Step {
        name: "expired unused authorization_codes",
        table: Table::AuthorizationCodes,
        cutoffs: &[Cutoff::Now],
        sql: "DELETE FROM authorization_codes WHERE rowid IN \
              (SELECT rowid FROM authorization_codes WHERE used_at IS NULL AND expires_at <= ?2 LIMIT ?1)",
    },
    Step {
        name: "expired gateway_codes",
        table: Table::GatewayCodes,
        cutoffs: &[Cutoff::Now],
        sql: "DELETE FROM gateway_codes WHERE rowid IN \
              (SELECT rowid FROM gateway_codes WHERE expires_at <= ?2 LIMIT ?1)",
    },
    Step {
        name: "expired tokens",
        table: Table::Tokens,
        cutoffs: &[Cutoff::Now],
        sql: "DELETE FROM tokens WHERE rowid IN \
              (SELECT rowid FROM tokens WHERE rotated_at IS NULL AND expires_at <= ?2 LIMIT ?1)",
    },
    Step {
        name: "tokens of dead grants",
        table: Table::Tokens,
        cutoffs: &[Cutoff::Now, Cutoff::RevokedGrantKept],
        sql: "DELETE FROM tokens WHERE rowid IN (\
              SELECT t.rowid FROM grants g JOIN tokens t ON t.grant_id = g.id WHERE g.expires_at <= ?2 \
              UNION ALL SELECT t.rowid FROM grants g JOIN tokens t ON t.grant_id = g.id \
              WHERE g.revoked_at <= ?3 AND g.expires_at > ?2 LIMIT ?1)",
    },
    Step {
        name: "codes of dead grants",
        table: Table::AuthorizationCodes,
        cutoffs: &[Cutoff::Now, Cutoff::RevokedGrantKept],
        sql: "DELETE FROM authorization_codes WHERE rowid IN (\
              SELECT c.rowid FROM grants g JOIN authorization_codes c ON c.grant_id = g.id WHERE g.expires_at <= ?2 \
              UNION ALL SELECT c.rowid FROM grants g JOIN authorization_codes c ON c.grant_id = g.id \
              WHERE g.revoked_at <= ?3 AND g.expires_at > ?2 LIMIT ?1)",
    },
    Step {
        name: "dead grants",
        table: Table::Grants,
        cutoffs: &[Cutoff::Now, Cutoff::RevokedGrantKept],
        sql: "DELETE FROM grants WHERE rowid IN (\
              SELECT g.rowid FROM grants g WHERE g.expires_at <= ?2 \
              AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.grant_id = g.id) \
              AND NOT EXISTS (SELECT 1 FROM authorization_codes c WHERE c.grant_id = g.id) \
              UNION ALL SELECT g.rowid FROM grants g WHERE g.revoked_at <= ?3 AND g.expires_at > ?2 \
              AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.grant_id = g.id) \
              AND NOT EXISTS (SELECT 1 FROM authorization_codes c WHERE c.grant_id = g.id) LIMIT ?1)",
    },
    Step {
        name: "expired app_sessions",
        table: Table::AppSessions,
        cutoffs: &[Cutoff::Now],
        sql: "DELETE FROM app_sessions WHERE rowid IN \
              (SELECT rowid FROM app_sessions WHERE expires_at <= ?2 LIMIT ?1)",
    },
    Step {
        name: "app_sessions of ended sessions",
        table: Table::AppSessions,
        cutoffs: &[Cutoff::Now],
        sql: "DELETE FROM app_sessions WHERE rowid IN (SELECT a.rowid FROM sessions s \
              JOIN app_sessions a ON a.sso_session_hash = s.id_hash WHERE s.ended_at <= ?2 LIMIT ?1)",
    },
    Step {
        name: "dead sessions",
        table: Table::Sessions,
        cutoffs: &[Cutoff::Now],
        sql: "DELETE FROM sessions WHERE rowid IN (\
              SELECT s.rowid FROM sessions s WHERE s.ended_at <= ?2 \
              AND NOT EXISTS (SELECT 1 FROM app_sessions a WHERE a.sso_session_hash = s.id_hash) \
              UNION ALL SELECT s.rowid FROM sessions s WHERE s.expires_at <= ?2 \
              AND (s.ended_at IS NULL OR s.ended_at > ?2) \
              AND NOT EXISTS (SELECT 1 FROM app_sessions a WHERE a.sso_session_hash = s.id_hash) LIMIT ?1)",
    },
    Step {
        name: "abandoned totp enrollments",
        table: Table::TotpDevices,
        cutoffs: &[Cutoff::PendingEnrollmentKept],
        sql: "DELETE FROM totp_devices WHERE rowid IN \
              (SELECT rowid FROM totp_devices WHERE confirmed_at IS NULL AND created_at < ?2 LIMIT ?1)",
    },
    Step {
        name: "expired email_tokens",
        table: Table::EmailTokens,
        cutoffs: &[Cutoff::Now],
        sql: "DELETE FROM email_tokens WHERE rowid IN \
              (SELECT rowid FROM email_tokens WHERE expires_at <= ?2 LIMIT ?1)",
    },
    Step {
        name: "expired webauthn_challenges",
        table: Table::WebauthnChallenges,
        cutoffs: &[Cutoff::Now],
        sql: "DELETE FROM webauthn_challenges WHERE rowid IN \
              (SELECT rowid FROM webauthn_challenges WHERE expires_at <= ?2 LIMIT ?1)",
    },
    Step {
        name: "old events",
        table: Table::Events,
        cutoffs: &[Cutoff::EventRetention],
        sql: "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE created_at < ?2 LIMIT ?1)",
    },
    Step {
        name: "old csp reports",
        table: Table::Events,
        cutoffs: &[Cutoff::CspReportKept],
        sql: "DELETE FROM events WHERE rowid IN \
              (SELECT rowid FROM events WHERE kind = 'csp_report' AND created_at < ?2 LIMIT ?1)",
    },
];

/// Rows deleted by one run, per table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub auth_requests: u64,
    pub authorization_codes: u64,
    pub gateway_codes: u64,
    pub tokens: u64,
    pub grants: u64,
    pub app_sessions: u64,
    pub sessions: u64,
    pub totp_devices: u64,
    pub email_tokens: u64,
    pub webauthn_challenges: u64,
    pub events: u64,
    /// Steps that used their whole budget: rows may be left for the next run.
    pub unfinished: Vec<&'static str>,
    /// Steps that failed, with the error. The other steps still ran.
    pub failed: Vec<(&'static str, String)>,
}

impl Report {
    fn deleted_mut(&mut self, table: Table) -> &mut u64 {
        match table {
            Table::AuthRequests => &mut self.auth_requests,
            Table::AuthorizationCodes => &mut self.authorization_codes,
            Table::GatewayCodes => &mut self.gateway_codes,
            Table::Tokens => &mut self.tokens,
            Table::Grants => &mut self.grants,
            Table::AppSessions => &mut self.app_sessions,
            Table::Sessions => &mut self.sessions,
            Table::TotpDevices => &mut self.totp_devices,
            Table::EmailTokens => &mut self.email_tokens,
            Table::WebauthnChallenges => &mut self.webauthn_challenges,
            Table::Events => &mut self.events,
        }
    }
}

/// One log line: counts, then what is left for the next run, then failures.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retention: deleted auth_requests={} authorization_codes={} gateway_codes={} tokens={} grants={} \
             app_sessions={} sessions={} totp_devices={} email_tokens={} webauthn_challenges={} events={}",
            self.auth_requests,
            self.authorization_codes,
            self.gateway_codes,
            self.tokens,
            self.grants,
            self.app_sessions,
            self.sessions,
            self.totp_devices,
            self.email_tokens,
            self.webauthn_challenges,
            self.events
        )?;
        if !self.unfinished.is_empty() {
            write!(
                f,
                "; budget used up, next run continues: {}",
                self.unfinished.join(", ")
            )?;
        }
        for (step, e) in &self.failed {
            write!(f, "; {step} failed: {e}")?;
        }
        Ok(())
    }
}

/// Runs every step within its budget. A failing step is reported and the others still run, so
/// one broken table does not stop the clean-up of the rest.
pub async fn run(db: &dyn Db, now: i64, settings: &Settings) -> Report {
    let mut report = Report::default();
    for step in STEPS {
        let mut params = vec![Value::Int(ROWS_PER_BATCH)];
        params.extend(step.cutoffs.iter().map(|c| {
            Value::Int(match c {
                Cutoff::Now => now,
                Cutoff::RevokedGrantKept => now - REVOKED_GRANT_KEPT,
                Cutoff::EventRetention => now - settings.event_retention_days * 86_400,
                Cutoff::CspReportKept => now - CSP_REPORT_KEPT,
                Cutoff::PendingEnrollmentKept => now - PENDING_ENROLLMENT_KEPT,
            })
        }));
        for batch in 1..=BATCHES_PER_STEP {
            match db.execute(step.sql, &params).await {
                Ok(n) => {
                    *report.deleted_mut(step.table) += n;
                    if n < ROWS_PER_BATCH as u64 {
                        break;
                    }
                    if batch == BATCHES_PER_STEP {
                        report.unfinished.push(step.name);
                    }
                }
                Err(e) => {
                    report.failed.push((step.name, e.to_string()));
                    break;
                }
            }
        }
    }
    report
}
