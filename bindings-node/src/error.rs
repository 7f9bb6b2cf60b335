// SPDX-License-Identifier: Apache-2.0
//! The one map from `jetjobs::ErrorKind` to a JS `code`, and the helpers that deliver it.
//!
//! A core error becomes a JS `Error` whose `code` is an [`ErrorCode`] (`ERR_TASK_NOT_FOUND` for
//! `ErrorKind::TaskNotFound`) and whose `cause` carries the source's text. `lib/errors.ts` turns the
//! code into the matching `Error` subclass. Async methods cannot return `napi::Error<Code>`, so
//! they go through [`promise`], which builds the error on the JS thread
//! (`Env::spawn_future_with_callback`) where the `code` property can be set.

use std::error::Error as _;
use std::fmt;
use std::future::Future;

use jetjobs::ErrorKind;
use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{Env, JsValue as _, Status};
use napi_derive::napi;

/// The `code` of every error jetjobs raises; one per core `ErrorKind`.
#[napi(string_enum)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    #[napi(value = "ERR_TASK_NOT_FOUND")]
    TaskNotFound,
    #[napi(value = "ERR_INVALID_TASK_TYPE")]
    InvalidTaskType,
    #[napi(value = "ERR_INVALID_TASK_ID")]
    InvalidTaskId,
    #[napi(value = "ERR_TASK_CANNOT_ENQUEUE")]
    TaskCannotEnqueue,
    #[napi(value = "ERR_TASK_UPDATE_FAILED")]
    TaskUpdateFailed,
    #[napi(value = "ERR_TASK_ALREADY_SIGNED")]
    TaskAlreadySigned,
    #[napi(value = "ERR_SIGNATURE_REQUIRES_QUEUE")]
    SignatureRequiresQueue,
    #[napi(value = "ERR_TASK_NOT_SIGNED")]
    TaskNotSigned,
    #[napi(value = "ERR_SIGNATURE_INVALID")]
    SignatureInvalid,
    #[napi(value = "ERR_INVALID_KEY")]
    InvalidKey,
    #[napi(value = "ERR_QUEUE_NOT_FOUND")]
    QueueNotFound,
    #[napi(value = "ERR_QUEUE_CONSUMER_NOT_FOUND")]
    QueueConsumerNotFound,
    #[napi(value = "ERR_INVALID_QUEUE_NAME")]
    InvalidQueueName,
    #[napi(value = "ERR_DUPLICATE_ITEM")]
    DuplicateItem,
    #[napi(value = "ERR_DUPLICATE_HANDLER")]
    DuplicateHandler,
    #[napi(value = "ERR_UNKNOWN_RETRY_POLICY")]
    UnknownRetryPolicy,
    #[napi(value = "ERR_INVALID_RETRY_POLICY")]
    InvalidRetryPolicy,
    #[napi(value = "ERR_UNKNOWN_DISCARD_POLICY")]
    UnknownDiscardPolicy,
    #[napi(value = "ERR_INVALID_PAYLOAD")]
    InvalidPayload,
    #[napi(value = "ERR_INVALID_DOCUMENT")]
    InvalidDocument,
    #[napi(value = "ERR_UNKNOWN_EVENT_TYPE")]
    UnknownEventType,
    #[napi(value = "ERR_INVALID_OPTION")]
    InvalidOption,
    #[napi(value = "ERR_IN_PROGRESS_NOT_SUPPORTED")]
    InProgressNotSupported,
    #[napi(value = "ERR_CONNECTION")]
    Connection,
    #[napi(value = "ERR_STORAGE")]
    Storage,
    #[napi(value = "ERR_IO")]
    Io,
    #[napi(value = "ERR_TASK_ALREADY_EXISTS")]
    TaskAlreadyExists,
    #[napi(value = "ERR_INVALID_DEPENDENCIES")]
    InvalidDependencies,
    #[napi(value = "ERR_PAYLOAD_TOO_LARGE")]
    PayloadTooLarge,
    #[napi(value = "ERR_KEY_EXISTS")]
    KeyExists,
    #[napi(value = "ERR_KEY_NOT_FOUND")]
    KeyNotFound,
    #[napi(value = "ERR_REVISION_MISMATCH")]
    RevisionMismatch,
    #[napi(value = "ERR_ALREADY_RUNNING")]
    AlreadyRunning,
    #[napi(value = "ERR_CLOSED")]
    Closed,
    #[napi(value = "ERR_TASK_FAILED")]
    TaskFailed,
    #[napi(value = "ERR_TIMEOUT")]
    Timeout,
    #[napi(value = "ERR_INVALID_SCHEDULE")]
    InvalidSchedule,
    #[napi(value = "ERR_INVALID_SCHEDULE_NAME")]
    InvalidScheduleName,
    #[napi(value = "ERR_SCHEDULE_DEADLINE_TOO_SHORT")]
    ScheduleDeadlineTooShort,
    #[napi(value = "ERR_SCHEDULE_EXISTS")]
    ScheduleExists,
    #[napi(value = "ERR_SCHEDULE_NOT_FOUND")]
    ScheduleNotFound,
    #[napi(value = "ERR_GOVERNOR_NOT_FOUND")]
    GovernorNotFound,
    #[napi(value = "ERR_LEASE_NOT_FOUND")]
    LeaseNotFound,
    #[napi(value = "ERR_WORKER_EXITED_PREMATURELY")]
    WorkerExitedPrematurely,
    #[napi(value = "ERR_WORKERS_FAILED")]
    WorkersFailed,
    #[napi(value = "ERR_NO_WORKERS")]
    NoWorkers,
    #[napi(value = "ERR_JOB_EXISTS")]
    JobExists,
    #[napi(value = "ERR_JOB_NOT_FOUND")]
    JobNotFound,
    #[napi(value = "ERR_JOB_START_FAILED")]
    JobStartFailed,
    #[napi(value = "ERR_CALLBACK_FAILED")]
    CallbackFailed,
}

impl From<ErrorKind> for ErrorCode {
    /// Every kind, no catch-all arm: a new core kind fails this build until it has a code here
    /// (and, through the generated `ErrorCode` type, an error class in `lib/errors.ts`).
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::TaskNotFound => ErrorCode::TaskNotFound,
            ErrorKind::InvalidTaskType => ErrorCode::InvalidTaskType,
            ErrorKind::InvalidTaskId => ErrorCode::InvalidTaskId,
            ErrorKind::TaskCannotEnqueue => ErrorCode::TaskCannotEnqueue,
            ErrorKind::TaskUpdateFailed => ErrorCode::TaskUpdateFailed,
            ErrorKind::TaskAlreadySigned => ErrorCode::TaskAlreadySigned,
            ErrorKind::SignatureRequiresQueue => ErrorCode::SignatureRequiresQueue,
            ErrorKind::TaskNotSigned => ErrorCode::TaskNotSigned,
            ErrorKind::SignatureInvalid => ErrorCode::SignatureInvalid,
            ErrorKind::InvalidKey => ErrorCode::InvalidKey,
            ErrorKind::QueueNotFound => ErrorCode::QueueNotFound,
            ErrorKind::QueueConsumerNotFound => ErrorCode::QueueConsumerNotFound,
            ErrorKind::InvalidQueueName => ErrorCode::InvalidQueueName,
            ErrorKind::DuplicateItem => ErrorCode::DuplicateItem,
            ErrorKind::DuplicateHandler => ErrorCode::DuplicateHandler,
            ErrorKind::UnknownRetryPolicy => ErrorCode::UnknownRetryPolicy,
            ErrorKind::InvalidRetryPolicy => ErrorCode::InvalidRetryPolicy,
            ErrorKind::UnknownDiscardPolicy => ErrorCode::UnknownDiscardPolicy,
            ErrorKind::InvalidPayload => ErrorCode::InvalidPayload,
            ErrorKind::InvalidDocument => ErrorCode::InvalidDocument,
            ErrorKind::UnknownEventType => ErrorCode::UnknownEventType,
            ErrorKind::InvalidOption => ErrorCode::InvalidOption,
            ErrorKind::InProgressNotSupported => ErrorCode::InProgressNotSupported,
            ErrorKind::Connection => ErrorCode::Connection,
            ErrorKind::Storage => ErrorCode::Storage,
            ErrorKind::Io => ErrorCode::Io,
            ErrorKind::TaskAlreadyExists => ErrorCode::TaskAlreadyExists,
            ErrorKind::InvalidDependencies => ErrorCode::InvalidDependencies,
            ErrorKind::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            ErrorKind::KeyExists => ErrorCode::KeyExists,
            ErrorKind::KeyNotFound => ErrorCode::KeyNotFound,
            ErrorKind::RevisionMismatch => ErrorCode::RevisionMismatch,
            ErrorKind::AlreadyRunning => ErrorCode::AlreadyRunning,
            ErrorKind::Closed => ErrorCode::Closed,
            ErrorKind::TaskFailed => ErrorCode::TaskFailed,
            ErrorKind::Timeout => ErrorCode::Timeout,
            ErrorKind::InvalidSchedule => ErrorCode::InvalidSchedule,
            ErrorKind::InvalidScheduleName => ErrorCode::InvalidScheduleName,
            ErrorKind::ScheduleDeadlineTooShort => ErrorCode::ScheduleDeadlineTooShort,
            ErrorKind::ScheduleExists => ErrorCode::ScheduleExists,
            ErrorKind::ScheduleNotFound => ErrorCode::ScheduleNotFound,
            ErrorKind::GovernorNotFound => ErrorCode::GovernorNotFound,
            ErrorKind::LeaseNotFound => ErrorCode::LeaseNotFound,
            ErrorKind::WorkerExitedPrematurely => ErrorCode::WorkerExitedPrematurely,
            ErrorKind::WorkersFailed => ErrorCode::WorkersFailed,
            ErrorKind::NoWorkers => ErrorCode::NoWorkers,
            ErrorKind::JobExists => ErrorCode::JobExists,
            ErrorKind::JobNotFound => ErrorCode::JobNotFound,
            ErrorKind::JobStartFailed => ErrorCode::JobStartFailed,
            ErrorKind::CallbackFailed => ErrorCode::CallbackFailed,
        }
    }
}

/// The `code` of every core `ErrorKind`, in the core's order: `lib/` and the tests check that each
/// has its own error class.
#[napi]
pub fn error_codes() -> Vec<ErrorCode> {
    ErrorKind::ALL
        .iter()
        .copied()
        .map(ErrorCode::from)
        .collect()
}

/// A value a JS callback (a supervised worker or job) threw or rejected with, carried through the
/// core as the source of a core error so that it reaches JS again as the very same value.
pub(crate) struct Thrown(napi::Error);

impl fmt::Debug for Thrown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Thrown").field(&self.0.reason).finish()
    }
}

impl fmt::Display for Thrown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.reason)
    }
}

impl std::error::Error for Thrown {}

/// The core error for a failed JS callback: kind `CallbackFailed`, `what` plus the thrown value's
/// message as its message, and the thrown value itself kept for [`js_error`].
pub(crate) fn thrown(what: &str, e: napi::Error) -> jetjobs::Error {
    jetjobs::Error::with_source(ErrorKind::CallbackFailed, what, Thrown(e))
}

/// The JS value a core error carries from a JS callback ([`thrown`]), if it carries one.
fn thrown_value(err: &jetjobs::Error) -> Option<napi::Error> {
    let thrown = err.source()?.downcast_ref::<Thrown>()?;
    thrown.0.try_clone().ok()
}

/// Builds the JS error for a core error: `message`, `code`, `kind` (the core's stable name) and,
/// when the core error has a source, a `cause` with the source's text. A core error carrying a
/// value a JS callback threw ([`thrown`]) is that value, unchanged; a `WorkersFailed` error also
/// gets `errors`, the JS error of each error it joins.
pub(crate) fn js_error(env: &Env, err: jetjobs::Error) -> napi::Error {
    to_js_error(env, &err)
}

fn to_js_error(env: &Env, err: &jetjobs::Error) -> napi::Error {
    if let Some(original) = thrown_value(err) {
        return original;
    }
    match build_js_error(env, err) {
        Ok(error) => error,
        // Only when the environment is tearing down; the message still says what failed.
        Err(_) => napi::Error::new(Status::GenericFailure, err.to_string()),
    }
}

fn build_js_error(env: &Env, err: &jetjobs::Error) -> napi::Result<napi::Error> {
    let mut object = env.create_error(napi::Error::new(Status::GenericFailure, err.to_string()))?;
    object.set("code", ErrorCode::from(err.kind()))?;
    object.set("kind", err.code())?;
    if let Some(source) = err.source() {
        let cause =
            env.create_error(napi::Error::new(Status::GenericFailure, source.to_string()))?;
        object.set("cause", cause)?;
    }
    let joined = err.errors();
    if !joined.is_empty() {
        let mut errors = env.create_array(u32::try_from(joined.len()).unwrap_or(u32::MAX))?;
        for (i, e) in (0u32..).zip(joined) {
            errors.set(i, to_js_error(env, e))?;
        }
        object.set("errors", errors)?;
    }
    Ok(napi::Error::from(object.to_unknown()))
}

/// Maps a synchronous core result, throwing the coded JS error.
pub(crate) fn check<T>(env: &Env, result: jetjobs::Result<T>) -> napi::Result<T> {
    result.map_err(|e| js_error(env, e))
}

/// Runs a core future on the addon's tokio runtime and settles a JS promise with `convert`ed
/// output, or rejects it with the coded JS error.
pub(crate) fn promise<'env, T, V, F, C>(
    env: &'env Env,
    future: F,
    convert: C,
) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = jetjobs::Result<T>> + Send + 'static,
    C: FnOnce(T) -> V + 'static,
{
    // Boxed first: napi moves the future by value through several calls, and an engine future
    // is kilobytes (copying it was a fifth of the JS thread's time at 256 enqueues in flight).
    let future = Box::pin(future);
    env.spawn_future_with_callback(async move { Ok(future.await) }, move |env, result| {
        result.map(convert).map_err(|e| js_error(env, e))
    })
}

/// A value from JS that the core cannot take (a negative duration, say), as a core
/// `InvalidOption` error so that it reaches JS like every other.
pub(crate) fn invalid_option(message: impl Into<String>) -> jetjobs::Error {
    jetjobs::Error::new(ErrorKind::InvalidOption, message)
}

/// Milliseconds from JS as a `Duration`; negative, NaN and infinite values are `InvalidOption`.
pub(crate) fn duration_ms(what: &str, ms: f64) -> jetjobs::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| {
        invalid_option(format!(
            "{what} must be a finite, non-negative number of ms"
        ))
    })
}

/// A JS number that must be a whole number (a count or limit the core holds as an integer): NaN,
/// infinities and fractions are `InvalidOption` rather than silently truncated.
pub(crate) fn integer(what: &str, n: f64) -> jetjobs::Result<i64> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if n.is_finite() && n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        Ok(n as i64)
    } else {
        Err(invalid_option(format!(
            "{what} must be a whole number, got {n}"
        )))
    }
}

/// A JS number that must be a whole number of at least 1.
pub(crate) fn positive_count(what: &str, n: f64) -> jetjobs::Result<usize> {
    match integer(what, n)? {
        n if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => Err(invalid_option(format!(
            "{what} must be at least 1, got {n}"
        ))),
    }
}

/// A `Duration` as JS milliseconds.
pub(crate) fn to_ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_reject_what_the_core_cannot_hold() {
        assert!(duration_ms("x", 1500.0).is_ok_and(|d| d.as_millis() == 1500));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let kind = duration_ms("x", bad).err().map(|e| e.kind());
            assert_eq!(kind, Some(ErrorKind::InvalidOption));
        }
    }

    #[test]
    fn counts_must_be_whole_numbers() {
        assert_eq!(integer("x", -1.0).ok(), Some(-1));
        assert_eq!(positive_count("x", 3.0).ok(), Some(3));
        for bad in [1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
            assert!(integer("x", bad).is_err(), "{bad}");
        }
        for bad in [0.0, -1.0, 1.5, f64::NAN] {
            assert!(positive_count("x", bad).is_err(), "{bad}");
        }
    }
}
