//! Rate limiting with GCRA (the generic cell rate algorithm, as in `governor`): one stored
//! "theoretical arrival time" (TAT) per key and tier instead of a counter and a window, so the
//! limit is exact (no window edges letting twice the rate through) and the state is one number.
//!
//! A tier allows `rate` requests per `period`, with up to `burst` at once. With the emission
//! interval `T = period / rate` and the tolerance `tau = (burst - 1) * T`, a request at `now`
//! conforms when `max(TAT, now) - now <= tau`, and then moves the TAT to `max(TAT, now) + T`.
//! Times are in microseconds, so `1000 ms / 3` is not rounded to whole milliseconds; `T` is
//! rounded up, which can only make a limit stricter (by under 1 µs per request).

use serde::{Deserialize, Serialize};

/// One tier of a limit: `rate` requests per `period_ms`, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub rate: u32,
    pub period_ms: i64,
    pub burst: u32,
}

impl Tier {
    pub fn per_second(rate: u32, burst: u32) -> Tier {
        Tier {
            rate,
            period_ms: 1000,
            burst,
        }
    }

    pub fn per_minute(rate: u32, burst: u32) -> Tier {
        Tier {
            rate,
            period_ms: 60_000,
            burst,
        }
    }

    /// `T`, in µs, rounded up. A zero rate is treated as one request per period (settings refuse it).
    pub fn interval_us(&self) -> i64 {
        let rate = i64::from(self.rate.max(1));
        (self.period_ms.max(1) * 1000 + rate - 1) / rate
    }

    /// `tau`, in µs: how far ahead of `now` the TAT may run and still admit a request.
    pub fn tolerance_us(&self) -> i64 {
        self.interval_us().saturating_mul(i64::from(self.burst.max(1) - 1))
    }

    /// The name under which this tier's TAT is stored for `bucket` (one per period).
    pub fn slot(&self, bucket: &str) -> String {
        format!("{bucket}/{}", self.period_ms)
    }
}

/// What one tier says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierCheck {
    /// Conforms; store this TAT if the request is admitted.
    Allow { new_tat_us: i64 },
    /// Does not conform; it would in this many µs.
    Deny { wait_us: i64 },
}

/// GCRA for one tier. `tat_us` is the stored TAT (`None` for a key never seen).
pub fn check_tier(tier: &Tier, tat_us: Option<i64>, now_us: i64) -> TierCheck {
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let allow_at = tat - tier.tolerance_us();
    if now_us < allow_at {
        TierCheck::Deny {
            wait_us: allow_at - now_us,
        }
    } else {
        TierCheck::Allow {
            new_tat_us: tat + tier.interval_us(),
        }
    }
}

/// The decision for all tiers of a key together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every tier admits the request: store these TATs (same order as the tiers).
    Allow { new_tats_us: Vec<i64> },
    /// At least one tier refuses; nothing may be stored, so a refused request consumes nothing
    /// in any tier. `retry_after_ms` is when every refusing tier would admit it.
    Deny { retry_after_ms: i64 },
}

/// Checks every tier; the request must pass all of them.
pub fn check(tiers: &[Tier], tats_us: &[Option<i64>], now_ms: i64) -> Decision {
    let now_us = now_ms.saturating_mul(1000);
    let mut new_tats = Vec::with_capacity(tiers.len());
    let mut wait_us = 0i64;
    for (i, tier) in tiers.iter().enumerate() {
        match check_tier(tier, tats_us.get(i).copied().flatten(), now_us) {
            TierCheck::Allow { new_tat_us } => new_tats.push(new_tat_us),
            TierCheck::Deny { wait_us: w } => wait_us = wait_us.max(w),
        }
    }
    if wait_us > 0 {
        Decision::Deny {
            retry_after_ms: (wait_us + 999) / 1000,
        }
    } else {
        Decision::Allow { new_tats_us: new_tats }
    }
}

/// `Retry-After` in whole seconds (RFC 9110 §10.2.3), rounded up and at least 1.
pub fn retry_after_secs(retry_after_ms: i64) -> i64 {
    ((retry_after_ms + 999) / 1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    /// Runs `n` requests at `now_ms`, storing TATs as the store would; returns how many passed.
    fn burst(tiers: &[Tier], tats: &mut Vec<Option<i64>>, now_ms: i64, n: u32) -> u32 {
        let mut ok = 0;
        for _ in 0..n {
            if let Decision::Allow { new_tats_us } = check(tiers, tats, now_ms) {
                *tats = new_tats_us.into_iter().map(Some).collect();
                ok += 1;
            }
        }
        ok
    }

    #[test]
    fn a_fresh_key_admits_exactly_the_burst_at_one_instant() {
        let tiers = [Tier::per_second(5, 10)];
        let mut tats = vec![None];
        assert_eq!(burst(&tiers, &mut tats, T0, 100), 10);
    }

    #[test]
    fn refills_one_request_per_emission_interval() {
        let tiers = [Tier::per_second(5, 10)];
        let mut tats = vec![None];
        assert_eq!(burst(&tiers, &mut tats, T0, 10), 10);
        // T = 200 ms: 199 ms later still nothing, at 200 ms exactly one.
        assert_eq!(burst(&tiers, &mut tats, T0 + 199, 5), 0);
        assert_eq!(burst(&tiers, &mut tats, T0 + 200, 5), 1);
        // A full second later, five more (the rate), not the whole burst.
        assert_eq!(burst(&tiers, &mut tats, T0 + 1200, 50), 5);
        // After being idle for burst * T, the whole burst is back and no more.
        assert_eq!(burst(&tiers, &mut tats, T0 + 1200 + 2000, 50), 10);
    }

    #[test]
    fn sustained_rate_is_exact_with_no_window_edge() {
        // A fixed window would admit 2x the rate around its edge; GCRA never exceeds
        // burst + rate * elapsed over any interval.
        let tiers = [Tier::per_second(5, 1)];
        let mut tats = vec![None];
        let mut ok = 0;
        for ms in (0..10_000).step_by(10) {
            ok += burst(&tiers, &mut tats, T0 + ms, 1);
        }
        assert_eq!(ok, 50);
    }

    #[test]
    fn retry_after_says_when_the_next_request_conforms() {
        let tiers = [Tier::per_second(5, 10)];
        let mut tats = vec![None];
        burst(&tiers, &mut tats, T0, 10);
        assert_eq!(check(&tiers, &tats, T0 + 50), Decision::Deny { retry_after_ms: 150 });
        assert!(matches!(check(&tiers, &tats, T0 + 200), Decision::Allow { .. }));
        assert_eq!(retry_after_secs(150), 1);
        assert_eq!(retry_after_secs(1001), 2);
        assert_eq!(retry_after_secs(0), 1);
    }

    #[test]
    fn both_tiers_must_pass_and_the_minute_tier_caps_spaced_requests() {
        // The defaults: 5/s burst 10, 20/min burst 20.
        let tiers = [Tier::per_second(5, 10), Tier::per_minute(20, 20)];
        let mut tats = vec![None, None];
        assert_eq!(burst(&tiers, &mut tats, T0, 30), 10, "per-second burst binds first");
        // Spaced out to dodge the per-second tier: the minute tier stops it at 20 in total.
        let mut ok = 10;
        for s in 1..=20 {
            ok += burst(&tiers, &mut tats, T0 + s * 1000, 1);
        }
        // GCRA admits burst + elapsed / T: 20 + 20 s / 3 s.
        assert_eq!(ok, 20 + 20_000 / 3_000);
        // Denied with the minute tier's retry time, not the second tier's.
        match check(&tiers, &tats, T0 + 20_000) {
            Decision::Deny { retry_after_ms } => assert!(retry_after_ms > 200, "{retry_after_ms}"),
            d => panic!("expected deny, got {d:?}"),
        }
    }

    #[test]
    fn a_request_denied_by_one_tier_consumes_nothing_in_the_other() {
        let tiers = [Tier::per_second(5, 10), Tier::per_minute(1, 2)];
        let mut tats = vec![None, None];
        assert_eq!(burst(&tiers, &mut tats, T0, 5), 2);
        let before = tats.clone();
        assert_eq!(burst(&tiers, &mut tats, T0, 50), 0);
        assert_eq!(tats, before, "denied requests must not move any TAT");
        // The per-second tier still has its full remaining burst when the minute tier refills.
        assert_eq!(burst(&tiers, &mut tats, T0 + 60_000, 1), 1);
    }

    #[test]
    fn rates_that_do_not_divide_the_period_are_not_rounded_in_the_attackers_favour() {
        let tier = Tier::per_second(3, 1);
        assert_eq!(tier.interval_us(), 333_334);
        let tiers = [tier];
        let mut tats = vec![None];
        let mut ok = 0;
        for ms in 0..=3000 {
            ok += burst(&tiers, &mut tats, T0 + ms, 1);
        }
        // t = 0, 333.334, ..., 2666.672 ms: 9 in [0, 3000); the 10th would be at 3000.006 ms.
        assert_eq!(ok, 9);
    }

    #[test]
    fn a_clock_that_steps_back_does_not_mint_tokens() {
        let tiers = [Tier::per_second(5, 2)];
        let mut tats = vec![None];
        assert_eq!(burst(&tiers, &mut tats, T0, 2), 2);
        assert_eq!(burst(&tiers, &mut tats, T0 - 5_000, 5), 0);
    }
}
