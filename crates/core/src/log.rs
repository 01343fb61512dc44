//! Log lines for operators. The adapter installs its sink once per isolate (console on Workers);
//! natively lines go to stderr. Never pass secrets here.

use std::sync::OnceLock;

static SINK: OnceLock<fn(&str, &str)> = OnceLock::new();

/// Installs the sink; later calls are ignored (the first one wins for the isolate's life).
pub fn install(sink: fn(level: &str, line: &str)) {
    let _ = SINK.set(sink);
}

fn emit(level: &str, line: &str) {
    match SINK.get() {
        Some(sink) => sink(level, line),
        None => eprintln!("[{level}] {line}"),
    }
}

pub fn error(line: &str) {
    emit("error", line);
}

pub fn warn(line: &str) {
    emit("warn", line);
}

pub fn info(line: &str) {
    emit("info", line);
}
