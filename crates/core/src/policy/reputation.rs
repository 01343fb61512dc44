//! Reputation, after authentik's reputation policy (../shared/reference/001): every failed login
//! lowers the score of the source IP and of the attempted username by one, every successful one
//! raises both by one, within `[lower, upper]` (authentik: -5 and 5). A score at or below
//! `threshold` asks for extra verification (a Turnstile CAPTCHA). Scores expire `expiry` after
//! their last change (authentik: 24 hours), back to 0.
//!
//! Unlike authentik, which sums the scores of every (IP, username) pair matching either, the IP
//! and the username are judged separately: credit earned by one does not cover the other, so
//! logging in successfully from an IP does not shield another account from a spray there.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationPolicy {
    pub lower: i64,
    pub upper: i64,
    /// Extra verification when a score is `<= threshold`.
    pub threshold: i64,
    pub expiry_ms: i64,
}

impl Default for ReputationPolicy {
    fn default() -> Self {
        ReputationPolicy {
            lower: -5,
            upper: 5,
            threshold: -5,
            expiry_ms: 24 * 3600 * 1000,
        }
    }
}

impl ReputationPolicy {
    pub fn needs_verification(&self, score: i64) -> bool {
        score <= self.threshold
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepState {
    #[serde(default)]
    pub score: i64,
    #[serde(default)]
    pub updated_ms: i64,
}

impl RepState {
    pub fn score(&self, p: &ReputationPolicy, now_ms: i64) -> i64 {
        if self.score == 0 || now_ms - self.updated_ms >= p.expiry_ms {
            0
        } else {
            self.score.clamp(p.lower, p.upper)
        }
    }

    /// Adds `delta` (a failure -1, a success +1) and returns the new score.
    pub fn adjust(&mut self, p: &ReputationPolicy, delta: i64, now_ms: i64) -> i64 {
        self.score = self.score(p, now_ms).saturating_add(delta).clamp(p.lower, p.upper);
        self.updated_ms = now_ms;
        self.score
    }

    /// Forgives a bad score (an admin vouched for the account); credit is kept.
    pub fn clear_penalty(&mut self, p: &ReputationPolicy, now_ms: i64) {
        if self.score(p, now_ms) < 0 {
            *self = RepState::default();
        }
    }

    pub fn forget_at(&self, p: &ReputationPolicy) -> i64 {
        if self.score == 0 {
            0
        } else {
            self.updated_ms + p.expiry_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn failures_lower_successes_raise_within_bounds() {
        let p = ReputationPolicy::default();
        let mut s = RepState::default();
        for i in 1..=7 {
            s.adjust(&p, -1, T0 + i);
        }
        assert_eq!(s.score(&p, T0 + 10), -5, "bounded below");
        for i in 1..=20 {
            s.adjust(&p, 1, T0 + 10 + i);
        }
        assert_eq!(s.score(&p, T0 + 40), 5, "bounded above");
    }

    #[test]
    fn verification_is_needed_at_or_below_the_threshold() {
        let p = ReputationPolicy {
            threshold: -3,
            ..ReputationPolicy::default()
        };
        let mut s = RepState::default();
        assert!(!p.needs_verification(s.adjust(&p, -1, T0)));
        assert!(!p.needs_verification(s.adjust(&p, -1, T0)));
        assert!(p.needs_verification(s.adjust(&p, -1, T0)));
        // One success lifts it back above.
        assert!(!p.needs_verification(s.adjust(&p, 1, T0)));
    }

    #[test]
    fn scores_expire_after_their_last_change() {
        let p = ReputationPolicy::default();
        let mut s = RepState::default();
        s.adjust(&p, -1, T0);
        s.adjust(&p, -1, T0 + 3_600_000);
        assert_eq!(s.score(&p, T0 + 3_600_000 + p.expiry_ms - 1), -2);
        assert_eq!(s.score(&p, T0 + 3_600_000 + p.expiry_ms), 0);
        assert_eq!(s.forget_at(&p), T0 + 3_600_000 + p.expiry_ms);
        // After expiry, a new failure starts again from zero.
        assert_eq!(s.adjust(&p, -1, T0 + 3_600_000 + p.expiry_ms), -1);
    }

    #[test]
    fn clearing_a_penalty_keeps_credit() {
        let p = ReputationPolicy::default();
        let mut bad = RepState::default();
        bad.adjust(&p, -4, T0);
        bad.clear_penalty(&p, T0);
        assert_eq!(bad.score(&p, T0), 0);
        let mut good = RepState::default();
        good.adjust(&p, 2, T0);
        good.clear_penalty(&p, T0);
        assert_eq!(good.score(&p, T0), 2);
    }
}
