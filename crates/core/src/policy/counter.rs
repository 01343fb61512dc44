//! What a counter store keeps per key, and the operations on it.
//!
//! A key is a subject: `ip:203.0.113.7` (rate-limit buckets and the IP's reputation) or
//! `user:alice` (lockout and the username's reputation). Each key is its own record: in the
//! Worker, its own Durable Object (one per key, so no object is a hot spot); in tests, an entry
//! in a map. Stores run [`apply`] on a record as one atomic read-modify-write; everything with a
//! decision in it is here, so the Durable Object and the test double cannot disagree.
//! Every operation carries the policy it needs, so a store holds no configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::InternalError;
use crate::policy::lockout::{Admission, LockState, LockoutPolicy};
use crate::policy::rate_limit::{self, Decision, Tier};
use crate::policy::reputation::{RepState, ReputationPolicy};
use crate::ports::Counters;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// GCRA theoretical arrival time per tier slot, µs.
    #[serde(default)]
    pub tat_us: BTreeMap<String, i64>,
    /// Whether the last request was refused (so "started refusing" is logged once, not per request).
    #[serde(default)]
    pub limited: bool,
}

/// Everything a counter store keeps for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub buckets: BTreeMap<String, Bucket>,
    #[serde(default)]
    pub lock: LockState,
    #[serde(default)]
    pub rep: RepState,
    /// From this time on the record means the same as no record: the store may delete it.
    #[serde(default)]
    pub forget_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// One request against `bucket`'s tiers: admitted and counted in every tier, or in none.
    RateLimit { bucket: String, tiers: Vec<Tier> },
    /// Reads the lock and the reputation without changing them.
    Peek {
        lockout: LockoutPolicy,
        reputation: ReputationPolicy,
    },
    /// Starts an attempt at this username's secret (counted now; see `lockout`).
    BeginAttempt { lockout: LockoutPolicy },
    /// The attempt failed: lowers the reputation, and (for a username) may lock.
    Failure {
        lockout: Option<LockoutPolicy>,
        reputation: ReputationPolicy,
    },
    /// The attempt succeeded: raises the reputation, and (for a username) clears failures.
    Success {
        lockout: Option<LockoutPolicy>,
        reputation: ReputationPolicy,
    },
    /// The secret was right but the sign-in is not over (a second factor follows): the attempt
    /// stops counting, and nothing earlier is forgiven.
    Release,
    /// An admin unlocked the account: no lock, no failures, no bad reputation.
    Unlock { reputation: ReputationPolicy },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    RateLimit {
        allowed: bool,
        retry_after_ms: i64,
        /// The first refusal after an admitted request.
        newly_limited: bool,
    },
    Status {
        locked_until_ms: Option<i64>,
        attempts: u32,
        score: i64,
    },
    Attempt {
        admission: Admission,
    },
    Recorded {
        newly_locked: bool,
        score: i64,
    },
    Released,
    Unlocked,
}

/// Applies `op` to `record` at `now_ms`. Pure: the store does the reading and writing.
pub fn apply(record: &mut Record, op: &Op, now_ms: i64) -> Reply {
    match op {
        Op::RateLimit { bucket, tiers } => {
            let b = record.buckets.entry(bucket.clone()).or_default();
            let slots: Vec<String> = tiers.iter().map(|t| t.slot(bucket)).collect();
            let tats: Vec<Option<i64>> = slots.iter().map(|s| b.tat_us.get(s).copied()).collect();
            match rate_limit::check(tiers, &tats, now_ms) {
                Decision::Allow { new_tats_us } => {
                    let mut latest = 0;
                    for (slot, tat) in slots.into_iter().zip(new_tats_us) {
                        latest = latest.max(tat);
                        b.tat_us.insert(slot, tat);
                    }
                    b.limited = false;
                    // A bucket whose TATs have all passed is a fresh bucket.
                    record.forget_at_ms = record.forget_at_ms.max((latest + 999) / 1000);
                    Reply::RateLimit {
                        allowed: true,
                        retry_after_ms: 0,
                        newly_limited: false,
                    }
                }
                Decision::Deny { retry_after_ms } => {
                    let newly_limited = !b.limited;
                    b.limited = true;
                    Reply::RateLimit {
                        allowed: false,
                        retry_after_ms,
                        newly_limited,
                    }
                }
            }
        }
        Op::Peek { lockout, reputation } => {
            // Peeking changes nothing: expire on a copy to report what counts now.
            let mut lock = record.lock;
            lock.expire(lockout, now_ms);
            Reply::Status {
                locked_until_ms: lock.is_locked(now_ms).then_some(lock.locked_until_ms),
                attempts: lock.attempts,
                score: record.rep.score(reputation, now_ms),
            }
        }
        Op::BeginAttempt { lockout } => {
            let admission = record.lock.begin(lockout, now_ms);
            record.forget_at_ms = record.forget_at_ms.max(record.lock.forget_at(lockout));
            Reply::Attempt { admission }
        }
        Op::Failure { lockout, reputation } => {
            let newly_locked = lockout.as_ref().is_some_and(|l| {
                let locked = record.lock.fail(l, now_ms);
                record.forget_at_ms = record.forget_at_ms.max(record.lock.forget_at(l));
                locked
            });
            let score = record.rep.adjust(reputation, -1, now_ms);
            record.forget_at_ms = record.forget_at_ms.max(record.rep.forget_at(reputation));
            Reply::Recorded { newly_locked, score }
        }
        Op::Success { lockout, reputation } => {
            if lockout.is_some() {
                record.lock.succeed();
            }
            let score = record.rep.adjust(reputation, 1, now_ms);
            record.forget_at_ms = record.forget_at_ms.max(record.rep.forget_at(reputation));
            Reply::Recorded {
                newly_locked: false,
                score,
            }
        }
        Op::Release => {
            record.lock.release();
            Reply::Released
        }
        Op::Unlock { reputation } => {
            record.lock = LockState::default();
            record.rep.clear_penalty(reputation, now_ms);
            Reply::Unlocked
        }
    }
}

/// Whether the store may delete `record` at `now_ms` (it has come to mean nothing).
pub fn forgettable(record: &Record, now_ms: i64) -> bool {
    now_ms >= record.forget_at_ms
}

/// When a store that deletes records by alarm must look at `record` next: `None` when it may be
/// deleted now (no row is written, so no alarm is needed). A store sets this alarm before it
/// writes a record that has none, so no record is ever left without one; when the alarm fires
/// on a record that still matters, it sets the next one from `forget_at_ms`. Never sooner than
/// a second away, so short-lived records do not cost an alarm each.
pub fn alarm_at(record: &Record, now_ms: i64) -> Option<i64> {
    (!forgettable(record, now_ms)).then(|| record.forget_at_ms.max(now_ms + 1000))
}

fn unexpected(reply: Reply) -> InternalError {
    InternalError::new(format!("counter store answered {reply:?}"))
}

/// The typed calls the endpoints make.
impl<'x> dyn Counters + 'x {
    /// Counts one request from `key` against `bucket`; `(allowed, retry_after_ms, newly_limited)`.
    pub async fn rate_limit(
        &self,
        key: &str,
        bucket: &str,
        tiers: &[Tier],
    ) -> Result<(bool, i64, bool), InternalError> {
        let op = Op::RateLimit {
            bucket: bucket.to_owned(),
            tiers: tiers.to_vec(),
        };
        match self.apply(key, &op).await? {
            Reply::RateLimit {
                allowed,
                retry_after_ms,
                newly_limited,
            } => Ok((allowed, retry_after_ms, newly_limited)),
            r => Err(unexpected(r)),
        }
    }

    /// `(locked, score)` now, without changing anything.
    pub async fn peek(
        &self,
        key: &str,
        lockout: &LockoutPolicy,
        reputation: &ReputationPolicy,
    ) -> Result<(bool, i64), InternalError> {
        let op = Op::Peek {
            lockout: *lockout,
            reputation: *reputation,
        };
        match self.apply(key, &op).await? {
            Reply::Status {
                locked_until_ms, score, ..
            } => Ok((locked_until_ms.is_some(), score)),
            r => Err(unexpected(r)),
        }
    }

    pub async fn begin_attempt(&self, key: &str, lockout: &LockoutPolicy) -> Result<Admission, InternalError> {
        match self.apply(key, &Op::BeginAttempt { lockout: *lockout }).await? {
            Reply::Attempt { admission } => Ok(admission),
            r => Err(unexpected(r)),
        }
    }

    /// Records a failed (`success == false`) or successful attempt; `(newly_locked, score)`.
    pub async fn record_attempt(
        &self,
        key: &str,
        success: bool,
        lockout: Option<&LockoutPolicy>,
        reputation: &ReputationPolicy,
    ) -> Result<(bool, i64), InternalError> {
        let (lockout, reputation) = (lockout.copied(), *reputation);
        let op = if success {
            Op::Success { lockout, reputation }
        } else {
            Op::Failure { lockout, reputation }
        };
        match self.apply(key, &op).await? {
            Reply::Recorded { newly_locked, score } => Ok((newly_locked, score)),
            r => Err(unexpected(r)),
        }
    }

    /// A right secret with more to come: its attempt stops counting (see [`Op::Release`]).
    pub async fn release_attempt(&self, key: &str) -> Result<(), InternalError> {
        match self.apply(key, &Op::Release).await? {
            Reply::Released => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    pub async fn unlock(&self, key: &str, reputation: &ReputationPolicy) -> Result<(), InternalError> {
        match self
            .apply(
                key,
                &Op::Unlock {
                    reputation: *reputation,
                },
            )
            .await?
        {
            Reply::Unlocked => Ok(()),
            r => Err(unexpected(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn ops_and_replies_survive_the_json_trip_to_the_durable_object() {
        let ops = [
            Op::RateLimit {
                bucket: "login".into(),
                tiers: vec![Tier::per_second(5, 10), Tier::per_minute(20, 20)],
            },
            Op::Peek {
                lockout: LockoutPolicy::default(),
                reputation: ReputationPolicy::default(),
            },
            Op::BeginAttempt {
                lockout: LockoutPolicy::default(),
            },
            Op::Failure {
                lockout: None,
                reputation: ReputationPolicy::default(),
            },
            Op::Release,
            Op::Unlock {
                reputation: ReputationPolicy::default(),
            },
        ];
        for op in ops {
            let json = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), op, "{json}");
        }
        let mut rec = Record::default();
        let reply = apply(
            &mut rec,
            &Op::BeginAttempt {
                lockout: LockoutPolicy::default(),
            },
            T0,
        );
        let json = serde_json::to_string(&reply).unwrap();
        assert_eq!(json, r#"{"reply":"attempt","admission":"admitted"}"#);
        let stored = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&stored).unwrap(), rec);
        // A record written by an older version (fields missing) still reads.
        assert_eq!(serde_json::from_str::<Record>("{}").unwrap(), Record::default());
    }

    #[test]
    fn rate_limit_reports_the_first_refusal_once() {
        let mut rec = Record::default();
        let op = Op::RateLimit {
            bucket: "login".into(),
            tiers: vec![Tier::per_second(1, 1)],
        };
        let flags: Vec<bool> = (0..4)
            .map(|_| match apply(&mut rec, &op, T0) {
                Reply::RateLimit { newly_limited, .. } => newly_limited,
                r => panic!("{r:?}"),
            })
            .collect();
        assert_eq!(flags, vec![false, true, false, false]);
        assert_eq!(rec.forget_at_ms, T0 + 1000);
        assert!(!forgettable(&rec, T0 + 999));
        assert!(forgettable(&rec, T0 + 1000));
    }

    #[test]
    fn buckets_are_separate_per_endpoint() {
        let mut rec = Record::default();
        let tiers = vec![Tier::per_second(1, 1)];
        let login = Op::RateLimit {
            bucket: "login".into(),
            tiers: tiers.clone(),
        };
        let token = Op::RateLimit {
            bucket: "token".into(),
            tiers,
        };
        assert!(matches!(
            apply(&mut rec, &login, T0),
            Reply::RateLimit { allowed: true, .. }
        ));
        assert!(matches!(
            apply(&mut rec, &login, T0),
            Reply::RateLimit { allowed: false, .. }
        ));
        assert!(matches!(
            apply(&mut rec, &token, T0),
            Reply::RateLimit { allowed: true, .. }
        ));
    }

    #[test]
    fn peek_changes_nothing() {
        let mut rec = Record::default();
        let l = LockoutPolicy::default();
        let r = ReputationPolicy::default();
        apply(&mut rec, &Op::BeginAttempt { lockout: l }, T0);
        apply(
            &mut rec,
            &Op::Failure {
                lockout: Some(l),
                reputation: r,
            },
            T0,
        );
        let before = rec.clone();
        let reply = apply(
            &mut rec,
            &Op::Peek {
                lockout: l,
                reputation: r,
            },
            T0 + 1,
        );
        assert_eq!(rec, before);
        assert_eq!(
            reply,
            Reply::Status {
                locked_until_ms: None,
                attempts: 1,
                score: -1
            }
        );
    }

    #[test]
    fn an_alarm_is_never_sooner_than_a_second_away_and_none_for_a_forgettable_record() {
        let soon = Record {
            forget_at_ms: T0 + 10,
            ..Record::default()
        };
        assert_eq!(alarm_at(&soon, T0), Some(T0 + 1000));
        let later = Record {
            forget_at_ms: T0 + 5000,
            ..Record::default()
        };
        assert_eq!(alarm_at(&later, T0), Some(T0 + 5000));
        let due = Record {
            forget_at_ms: T0,
            ..Record::default()
        };
        assert_eq!(alarm_at(&due, T0), None);
        assert_eq!(alarm_at(&due, T0 - 1), Some(T0 - 1 + 1000));
    }

    #[test]
    fn a_record_worth_keeping_always_gets_an_alarm_that_will_delete_it() {
        let tiers = vec![Tier::per_second(1, 1)];
        let op = Op::RateLimit {
            bucket: "login".into(),
            tiers,
        };
        let mut rec = Record::default();
        // A clean key that was only peeked at: no row, so no alarm.
        let peek = Op::Peek {
            lockout: LockoutPolicy::default(),
            reputation: ReputationPolicy::default(),
        };
        apply(&mut rec, &peek, T0);
        assert_eq!(alarm_at(&rec, T0), None);
        // A counted request: the record matters until its forget time, and the alarm is there.
        apply(&mut rec, &op, T0);
        let at = alarm_at(&rec, T0).expect("a record that matters needs an alarm");
        assert!(at >= rec.forget_at_ms && at >= T0 + 1000, "{at}");
        assert!(forgettable(&rec, at), "the alarm finds the record deletable");
        // A lockout lasts longer: the alarm follows the record's own forget time.
        let l = LockoutPolicy::default();
        apply(&mut rec, &Op::BeginAttempt { lockout: l }, T0);
        assert_eq!(alarm_at(&rec, T0), Some(rec.forget_at_ms));
        assert!(rec.forget_at_ms > T0 + 1000);
        assert_eq!(alarm_at(&rec, rec.forget_at_ms), None);
    }

    #[test]
    fn forget_at_lets_a_store_delete_only_records_that_mean_nothing_anymore() {
        let mut rec = Record::default();
        let l = LockoutPolicy::default();
        let r = ReputationPolicy::default();
        for _ in 0..5 {
            apply(&mut rec, &Op::BeginAttempt { lockout: l }, T0);
            apply(
                &mut rec,
                &Op::Failure {
                    lockout: Some(l),
                    reputation: r,
                },
                T0,
            );
        }
        assert!(rec.lock.is_locked(T0));
        // The reputation outlives the lock (24 h against 15 min).
        assert_eq!(rec.forget_at_ms, T0 + r.expiry_ms);
        assert!(!forgettable(&rec, T0 + l.duration_ms));
        assert!(forgettable(&rec, T0 + r.expiry_ms));
    }
}
