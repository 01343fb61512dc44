//! The Cron Trigger (`[triggers] crons` in wrangler.toml): runs the retention job and logs what
//! it deleted in one line. The job itself is `gatehouse_core::store::retention`.

use gatehouse_core::config::Settings;
use gatehouse_core::ports::Clock;
use gatehouse_core::store::retention;
use worker::{Env, ScheduleContext, ScheduledEvent};

use crate::adapter::JsClock;
use crate::d1::D1;

/// Reads only the settings, not the per-isolate config: clean-up needs no secrets, and a cron
/// run in a fresh isolate should not import signing keys it never uses.
#[cfg_attr(not(feature = "wasm-tests"), worker::event(scheduled))]
pub async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let settings = match Settings::from_lookup(|name| env.var(name).ok().map(|v| v.to_string())) {
        Ok(s) => s,
        Err(e) => {
            worker::console_error!("retention: not run, configuration error: {e}");
            return;
        }
    };
    let db = match env.d1("DB") {
        Ok(db) => D1(db),
        Err(e) => {
            worker::console_error!("retention: not run, D1 binding DB unavailable: {e}");
            return;
        }
    };
    let report = retention::run(&db, JsClock.now(), &settings).await;
    if report.failed.is_empty() {
        worker::console_log!("{report}");
    } else {
        worker::console_error!("{report}");
    }
}
