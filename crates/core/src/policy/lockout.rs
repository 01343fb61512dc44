//! Account lockout: after `max_attempts` failed attempts on one username, the account is locked
//! for `duration` (../shared/reference/004: keep 5-10 attempts and at least 15 minutes).
//!
//! An attempt is counted when it *starts*, before the password is verified, and forgiven when it
//! succeeds. So concurrent attempts cannot slip past the count: with 4 failures on record, only
//! one more attempt may be in flight at a time, however many arrive at once. (The counter store
//! applies each step atomically per username; see `policy::counter`.) Failures are forgotten
//! `duration` after the last attempt, and a lock ends by itself after `duration`.
//!
//! Pure functions over the stored state, with the time passed in.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutPolicy {
    /// Failed attempts before the account locks; 0 disables lockout.
    pub max_attempts: u32,
    pub duration_ms: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_attempts: 5,
            duration_ms: 15 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockState {
    /// Attempts counted against the limit: failed ones and ones still in flight.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_attempt_ms: i64,
    /// Locked while `now < locked_until_ms`.
    #[serde(default)]
    pub locked_until_ms: i64,
}

/// Whether an attempt may check the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    Admitted,
    /// The account is locked.
    Locked,
    /// Attempts already in flight use up what is left before the lock.
    Saturated,
}

impl LockState {
    pub fn is_locked(&self, now_ms: i64) -> bool {
        now_ms < self.locked_until_ms
    }

    /// Forgets what no longer counts at `now`: an expired lock, failures older than `duration`.
    pub fn expire(&mut self, p: &LockoutPolicy, now_ms: i64) {
        if self.locked_until_ms != 0 && now_ms >= self.locked_until_ms {
            *self = LockState::default();
        }
        if self.attempts > 0 && now_ms - self.last_attempt_ms >= p.duration_ms {
            self.attempts = 0;
        }
    }

    /// Starts an attempt: counts it, or refuses it.
    pub fn begin(&mut self, p: &LockoutPolicy, now_ms: i64) -> Admission {
        if p.max_attempts == 0 {
            return Admission::Admitted;
        }
        if self.is_locked(now_ms) {
            return Admission::Locked;
        }
        self.expire(p, now_ms);
        if self.attempts >= p.max_attempts {
            return Admission::Saturated;
        }
        self.attempts += 1;
        self.last_attempt_ms = now_ms;
        Admission::Admitted
    }

    /// An admitted attempt failed (it was counted when it began). Returns whether this failure
    /// locked the account.
    pub fn fail(&mut self, p: &LockoutPolicy, now_ms: i64) -> bool {
        if p.max_attempts == 0 || self.is_locked(now_ms) {
            return false;
        }
        if self.attempts >= p.max_attempts {
            self.attempts = 0;
            self.locked_until_ms = now_ms + p.duration_ms;
            return true;
        }
        false
    }

    /// The secret was right but the sign-in goes on (a second factor follows): the attempt that
    /// began stops counting; earlier failures stay, so a stolen password re-entered between
    /// guesses at the code never clears them. A lock stays too: it is `locked_until_ms`, and
    /// while it lasts (as with lockout off) nothing is counted, so `attempts` is 0 already.
    pub fn release(&mut self) {
        self.attempts = self.attempts.saturating_sub(1);
    }

    /// The secret was right: everything is forgiven.
    pub fn succeed(&mut self) {
        *self = LockState::default();
    }

    /// When this state has become the same as no state at all.
    pub fn forget_at(&self, p: &LockoutPolicy) -> i64 {
        if self.attempts == 0 && self.locked_until_ms == 0 {
            return 0;
        }
        self.locked_until_ms.max(self.last_attempt_ms + p.duration_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    fn policy() -> LockoutPolicy {
        LockoutPolicy::default()
    }

    /// One whole failed attempt.
    fn fail_once(s: &mut LockState, now: i64) -> (Admission, bool) {
        let a = s.begin(&policy(), now);
        let locked = a == Admission::Admitted && s.fail(&policy(), now);
        (a, locked)
    }

    #[test]
    fn a_released_attempt_stops_counting_but_forgives_no_earlier_failure() {
        let mut s = LockState::default();
        for i in 0..3 {
            fail_once(&mut s, T0 + i);
        }
        assert_eq!(s.begin(&policy(), T0 + 3), Admission::Admitted);
        s.release();
        assert_eq!(s.attempts, 3);
        // Two more failures lock: the release gave nothing back beyond its own attempt.
        assert_eq!(fail_once(&mut s, T0 + 4), (Admission::Admitted, false));
        assert_eq!(fail_once(&mut s, T0 + 5), (Admission::Admitted, true));
        // A lock is not released.
        assert_eq!(s.attempts, 0, "a lock counts nothing");
        s.release();
        assert!(s.is_locked(T0 + 6));
        assert_eq!(s.attempts, 0);
        let mut fresh = LockState::default();
        fresh.release();
        assert_eq!(fresh.attempts, 0, "never below zero");
    }

    #[test]
    fn locks_after_max_attempts_for_the_duration_then_unlocks_by_itself() {
        let mut s = LockState::default();
        for i in 0..4 {
            assert_eq!(fail_once(&mut s, T0 + i), (Admission::Admitted, false));
        }
        assert_eq!(
            fail_once(&mut s, T0 + 4),
            (Admission::Admitted, true),
            "the 5th failure locks"
        );
        assert!(s.is_locked(T0 + 5));
        assert_eq!(s.begin(&policy(), T0 + 15 * MIN - 1), Admission::Locked);
        // 15 minutes after the locking failure, a fresh budget of five.
        assert_eq!(s.begin(&policy(), T0 + 4 + 15 * MIN), Admission::Admitted);
        assert_eq!(s.attempts, 1);
    }

    #[test]
    fn a_locked_account_refuses_even_the_right_password_and_does_not_extend_the_lock() {
        let mut s = LockState::default();
        for i in 0..5 {
            fail_once(&mut s, T0 + i);
        }
        let until = s.locked_until_ms;
        for m in 0..14 {
            assert_eq!(s.begin(&policy(), T0 + m * MIN), Admission::Locked);
            assert!(!s.fail(&policy(), T0 + m * MIN));
        }
        assert_eq!(
            s.locked_until_ms, until,
            "hammering a locked account must not extend it"
        );
    }

    #[test]
    fn success_forgives_earlier_failures() {
        let mut s = LockState::default();
        for i in 0..4 {
            fail_once(&mut s, T0 + i);
        }
        assert_eq!(s.begin(&policy(), T0 + 10), Admission::Admitted);
        s.succeed();
        assert_eq!(s, LockState::default());
        for i in 0..4 {
            assert_eq!(fail_once(&mut s, T0 + 20 + i), (Admission::Admitted, false));
        }
    }

    #[test]
    fn failures_older_than_the_duration_are_forgotten() {
        let mut s = LockState::default();
        for i in 0..4 {
            fail_once(&mut s, T0 + i * MIN);
        }
        // 15 minutes after the last one, the slate is clean.
        let later = T0 + 3 * MIN + 15 * MIN;
        for i in 0..4 {
            assert_eq!(fail_once(&mut s, later + i), (Admission::Admitted, false));
        }
        assert_eq!(fail_once(&mut s, later + 4), (Admission::Admitted, true));
    }

    /// Ten attempts start before any finishes: only as many as the limit allows get to check
    /// the password; the rest are refused without it.
    #[test]
    fn concurrent_attempts_cannot_slip_past_the_count() {
        let mut s = LockState::default();
        let admitted = (0..10)
            .filter(|_| s.begin(&policy(), T0) == Admission::Admitted)
            .count();
        assert_eq!(admitted, 5);
        assert_eq!(s.begin(&policy(), T0), Admission::Saturated);
        let newly: Vec<bool> = (0..5).map(|_| s.fail(&policy(), T0 + 1)).collect();
        assert_eq!(newly, vec![true, false, false, false, false], "locked exactly once");
        assert!(s.is_locked(T0 + 2));
    }

    #[test]
    fn in_flight_attempts_that_never_report_still_count_until_forgotten() {
        let mut s = LockState::default();
        for _ in 0..5 {
            assert_eq!(s.begin(&policy(), T0), Admission::Admitted);
        }
        assert_eq!(s.begin(&policy(), T0 + 14 * MIN), Admission::Saturated);
        assert_eq!(s.begin(&policy(), T0 + 15 * MIN), Admission::Admitted);
    }

    #[test]
    fn zero_max_attempts_disables_lockout() {
        let p = LockoutPolicy {
            max_attempts: 0,
            ..LockoutPolicy::default()
        };
        let mut s = LockState::default();
        for i in 0..100 {
            assert_eq!(s.begin(&p, T0 + i), Admission::Admitted);
            assert!(!s.fail(&p, T0 + i));
        }
        assert_eq!(s.forget_at(&p), 0);
    }

    #[test]
    fn forget_at_covers_the_lock_and_the_failure_window() {
        let mut s = LockState::default();
        assert_eq!(s.forget_at(&policy()), 0);
        fail_once(&mut s, T0);
        assert_eq!(s.forget_at(&policy()), T0 + 15 * MIN);
        for i in 1..5 {
            fail_once(&mut s, T0 + i);
        }
        assert_eq!(s.forget_at(&policy()), T0 + 4 + 15 * MIN);
    }
}
