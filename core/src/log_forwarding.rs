// SPDX-License-Identifier: Apache-2.0
//! The engine's own `tracing` events (targets `jetjobs::…`), handed to a host's logger: the Python
//! SDK's `logging` bridge and the Node SDK's logger option both install a [`LogSink`] here.
//!
//! Cost when disabled: the subscriber reports the level set by [`set_log_level`] as its maximum and
//! gives every callsite above it (and every span, and every other crate's event) the interest
//! "never", so `tracing`'s own macros reject those events with one atomic load, before a field is
//! formatted; nothing reaches the sink. Installing this subscriber makes it the process's global
//! default: a Rust program with a subscriber of its own does not need it.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// One engine event, formatted: the message, then ` name=value` for every other field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The event's level.
    pub level: Level,
    /// The module it came from, e.g. `jetjobs::worker::process`.
    pub target: &'static str,
    /// The Rust source file, if known.
    pub file: Option<&'static str>,
    /// The line in it, if known.
    pub line: Option<u32>,
    /// `message key=value …`.
    pub text: String,
}

/// Where forwarded events go. `send` runs on whichever thread emitted the event (a tokio
/// thread, possibly inside the engine's locks): it must not block; return false to count the
/// event as dropped.
pub trait LogSink: Send + Sync + 'static {
    /// Takes one record; false if it was dropped.
    fn send(&self, record: LogRecord) -> bool;
}

/// Counts of forwarded and dropped events since the process started; events below the level
/// are neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Taken by the sink.
    pub forwarded: u64,
    /// Dropped by the sink (say, a full queue), or with no sink installed.
    pub dropped: u64,
}

/// The most verbose level forwarded: 0 off, 1 error, 2 warn, 3 info, 4 debug, 5 trace.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);
static FORWARDED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static SINK: Mutex<Option<Arc<dyn LogSink>>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// Sends the engine's events to `sink` from now on (replacing any sink before), installing the
/// forwarding subscriber as the process's global default on first use. Events flow once
/// [`set_log_level`] allows them.
pub fn forward_logs(sink: Arc<dyn LogSink>) {
    *SINK.lock().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    INSTALL.call_once(|| {
        // Fails only if another global subscriber is installed; that one then gets the events.
        let _ = tracing::subscriber::set_global_default(Forwarding);
    });
}

/// Forwards events at `level` or more severe (`LevelFilter::OFF` for none).
pub fn set_log_level(level: LevelFilter) {
    let code = match level {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => 1,
        LevelFilter::WARN => 2,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    };
    if MAX_LEVEL.swap(code, Ordering::Relaxed) != code {
        // Callsites cached their interest under the old level: ask them again.
        tracing::callsite::rebuild_interest_cache();
    }
}

/// Forwarded and dropped counts so far.
pub fn log_stats() -> LogStats {
    LogStats {
        forwarded: FORWARDED.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
    }
}

fn level_filter() -> LevelFilter {
    match MAX_LEVEL.load(Ordering::Relaxed) {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

fn is_engine(target: &str) -> bool {
    target
        .strip_prefix("jetjobs")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

fn wanted(metadata: &Metadata<'_>) -> bool {
    metadata.is_event() && is_engine(metadata.target()) && *metadata.level() <= level_filter()
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = if field.name() == "message" {
            write!(self.message, "{value:?}")
        } else {
            write!(self.fields, " {}={value:?}", field.name())
        };
    }
}

/// Events only: spans are never enabled, so their methods are never called with real work.
struct Forwarding;

impl Subscriber for Forwarding {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if wanted(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        wanted(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(level_filter())
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        if !wanted(metadata) {
            return;
        }
        let sink = SINK.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let Some(sink) = sink else {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut text = Text::default();
        event.record(&mut text);
        text.message.push_str(&text.fields);
        let taken = sink.send(LogRecord {
            level: *metadata.level(),
            target: metadata.target(),
            file: metadata.file(),
            line: metadata.line(),
            text: text.message,
        });
        let counter = if taken { &FORWARDED } else { &DROPPED };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_engine_targets_are_forwarded() {
        assert!(is_engine("jetjobs"));
        assert!(is_engine("jetjobs::worker::process"));
        assert!(!is_engine("jetjobs_python"));
        assert!(!is_engine("async_nats"));
    }
}
