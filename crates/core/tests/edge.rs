//! What the Worker decides before an endpoint sees a request, driven through the core with a
//! fake clock: the per-isolate `/healthz` memory (the Worker keeps the `Report`; the core decides).

mod support;

use gatehouse_core::health::{self, Report, CACHE_MS};
use gatehouse_core::ports::Clock;
use support::TestEnv;

fn healthz(env: &TestEnv, last: Option<Report>) -> (gatehouse_core::http::Response, Report) {
    futures::executor::block_on(health::handle_cached(&env.ctx(), last))
}

#[test]
fn healthz_checks_d1_and_the_durable_object_at_most_once_per_window() {
    // Unauthenticated callers must not turn /healthz into a D1 query and a Durable Object
    // write per request: a round of checks answers for CACHE_MS.
    let env = TestEnv::new();
    let (first, report) = healthz(&env, None);
    assert_eq!(first.status, 200);
    assert_eq!(first.json_body()["cached"], false);
    assert_eq!(first.header("age"), Some("0"));

    // The store goes down: within the window nobody asks it, so the answer is the remembered one.
    env.counters.down.set(true);
    env.clock.advance_ms(CACHE_MS - 1);
    let (second, kept) = healthz(&env, Some(report.clone()));
    assert_eq!(kept, report, "no new round of checks inside the window");
    assert_eq!(second.status, 200);
    assert_eq!(second.json_body()["cached"], true);
    assert_eq!(second.header("age"), Some("4"));

    // The window is over: a new round sees the outage.
    env.clock.advance_ms(1);
    let (third, fresh) = healthz(&env, Some(kept));
    assert_eq!(third.status, 503);
    assert_eq!(third.json_body()["checks"]["durable_object"], "unavailable");
    assert_eq!(third.json_body()["cached"], false);
    assert_eq!(fresh.checked_at_ms, env.clock.now_ms());

    // A failing round is remembered too: an outage must not make the endpoint a hot spot.
    env.counters.down.set(false);
    let (fourth, _) = healthz(&env, Some(fresh));
    assert_eq!(fourth.status, 503);
    assert_eq!(fourth.json_body()["cached"], true);
}

#[test]
fn a_clock_that_went_backwards_does_not_extend_the_window() {
    let env = TestEnv::new();
    let (_, report) = healthz(&env, None);
    let from_the_future = Report {
        checked_at_ms: report.checked_at_ms + 60_000,
        ..report
    };
    assert!(!from_the_future.reusable(env.clock.now_ms()));
    let (resp, fresh) = healthz(&env, Some(from_the_future));
    assert_eq!(resp.json_body()["cached"], false);
    assert_eq!(fresh.checked_at_ms, env.clock.now_ms());
}
