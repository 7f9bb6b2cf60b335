// SPDX-License-Identifier: Apache-2.0
//! The engine's `tracing` events (targets `jetjobs::…`), forwarded to one JS function,
//! `log(level, message)`, which `lib/logging.ts` hands to the configured logger. The message ends
//! with the event's fields (`task=… error=…`).
//!
//! The level filter and formatting are the core's (`jetjobs::forward_logs`): an event below the
//! level costs one atomic load and never reaches JS.
//!
//! Enabled events go through a weak (unref'd) threadsafe function with a bounded queue, called
//! without blocking: the engine never waits for a busy JS thread, the function never keeps the
//! process alive, and an event that finds the queue full is dropped and counted
//! ([`log_stats`]).

use std::sync::Arc;

use jetjobs::{LogRecord, LogSink};
use napi::bindgen_prelude::FnArgs;
use napi::threadsafe_function::{
    ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue,
};
use napi::{Env, Status};
use napi_derive::napi;
use tracing::Level;
use tracing::level_filters::LevelFilter;

use crate::error::{check, invalid_option};

/// Events waiting for the JS thread; beyond this they are dropped.
const QUEUE: usize = 1024;

/// `(level, message) => void`, weak, with a bounded queue.
type LogFn = ThreadsafeFunction<
    FnArgs<(&'static str, String)>,
    UnknownReturnValue,
    FnArgs<(&'static str, String)>,
    Status,
    false,
    true,
    QUEUE,
>;

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
const FILTERS: [LevelFilter; 6] = [
    LevelFilter::OFF,
    LevelFilter::ERROR,
    LevelFilter::WARN,
    LevelFilter::INFO,
    LevelFilter::DEBUG,
    LevelFilter::TRACE,
];

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// The JS function, called without blocking: a full queue drops the event.
struct JsSink(LogFn);

impl LogSink for JsSink {
    fn send(&self, record: LogRecord) -> bool {
        let args = FnArgs::from((level_name(record.level), record.text));
        self.0.call(args, ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok
    }
}

/// Sends the engine's log events at `level` or more severe to `log(level, message)` from now on
/// (replacing the function given before). The function is called on the JS thread, never keeps
/// the process alive, and must not throw.
#[napi(
    ts_args_type = "level: 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'off', log: (level: 'error' | 'warn' | 'info' | 'debug' | 'trace', message: string) => void"
)]
pub fn set_log_sink(env: &Env, level: String, log: LogFn) -> napi::Result<()> {
    let filter = parse_level(env, &level)?;
    jetjobs::forward_logs(Arc::new(JsSink(log)));
    jetjobs::set_log_level(filter);
    Ok(())
}

/// Changes the level `setLogSink`'s function gets events at: `'off'`, `'error'`, `'warn'`,
/// `'info'`, `'debug'` or `'trace'`; anything else is `InvalidOption`.
#[napi(ts_args_type = "level: 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'off'")]
pub fn set_log_level(env: &Env, level: String) -> napi::Result<()> {
    jetjobs::set_log_level(parse_level(env, &level)?);
    Ok(())
}

fn parse_level(env: &Env, level: &str) -> napi::Result<LevelFilter> {
    let code = LEVELS.iter().position(|l| *l == level).ok_or_else(|| {
        invalid_option(format!(
            "logLevel must be one of {}, got {level:?}",
            LEVELS.join(", ")
        ))
    });
    check(env, code).map(|c| FILTERS[c])
}

/// Counts of engine log events since the addon loaded.
#[napi(object, object_from_js = false)]
pub struct LogStats {
    /// Queued for the log function.
    pub forwarded: f64,
    /// Dropped: the queue to the JS thread was full, or no function could take them.
    pub dropped: f64,
}

/// Counts of engine log events forwarded to JS and dropped; events below the level are neither.
#[napi]
pub fn log_stats() -> LogStats {
    let stats = jetjobs::log_stats();
    LogStats {
        forwarded: stats.forwarded as f64,
        dropped: stats.dropped as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_are_the_lowercase_tracing_levels() {
        assert_eq!(level_name(Level::WARN), "warn");
        assert_eq!(LEVELS[2], "warn");
        assert_eq!(FILTERS[2], LevelFilter::WARN);
    }
}
