// SPDX-License-Identifier: Apache-2.0
//! The crate's single error type.
//!
//! Every failure carries an [`ErrorKind`] whose [`ErrorKind::code`] is a stable name. The bindings map
//! each kind once, with no catch-all arm, so a new kind cannot silently become a generic error.

use std::fmt;

/// Defines [`ErrorKind`], its [`ErrorKind::code`] and [`ErrorKind::ALL`] from one list, so the
/// bindings and their tests see every kind without a hand-kept copy.
macro_rules! error_kinds {
    ($(#[$enum_meta:meta])* pub enum ErrorKind { $($(#[$meta:meta])* $kind:ident,)+ }) => {
        $(#[$enum_meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[$meta])* $kind,)+
        }

        impl ErrorKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind,)+];

            /// The stable name of this kind, e.g. `"TaskNotFound"`; bindings expose it as the error code.
            ///
            /// # Examples
            /// ```
            /// assert_eq!(jetjobs::ErrorKind::TaskNotFound.code(), "TaskNotFound");
            /// assert!(jetjobs::ErrorKind::ALL.contains(&jetjobs::ErrorKind::Storage));
            /// ```
            pub fn code(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => stringify!($kind),)+
                }
            }
        }
    };
}

error_kinds! {
    /// What went wrong, as a stable, matchable kind.
    ///
    /// The messages follow asyncjobs' error texts where asyncjobs has one, because those texts end up in
    /// task documents (`last_err`) that Go tooling reads.
    ///
    /// Deliberately not `#[non_exhaustive]`: the bindings match every kind without a catch-all arm, so a
    /// new kind fails their build until it has its own exception class and JS code.
    pub enum ErrorKind {
    /// No task with that id is stored.
    TaskNotFound,
    /// A task type does not match `^[a-zA-Z0-9_:-]+$`.
    InvalidTaskType,
    /// A task id does not match `^[a-zA-Z0-9_:-]+$`.
    InvalidTaskId,
    /// The task is in a state from which it cannot be enqueued.
    TaskCannotEnqueue,
    /// A task save lost an optimistic-concurrency race or was otherwise refused.
    TaskUpdateFailed,
    /// The task is already signed.
    TaskAlreadySigned,
    /// Signing needs the task's queue to be set.
    SignatureRequiresQueue,
    /// Signatures are required and the task has none.
    TaskNotSigned,
    /// The task's signature does not verify.
    SignatureInvalid,
    /// A signing or verification key is malformed.
    InvalidKey,
    /// No queue with that name exists.
    QueueNotFound,
    /// The queue's `WORKERS` consumer does not exist.
    QueueConsumerNotFound,
    /// A queue name is empty or unusable.
    InvalidQueueName,
    /// The work queue refused the item as a duplicate.
    DuplicateItem,
    /// A handler is already registered for that task type.
    DuplicateHandler,
    /// No retry policy has that name.
    UnknownRetryPolicy,
    /// A retry policy is malformed (no intervals, bad bounds).
    InvalidRetryPolicy,
    /// A state name cannot be used as a discard state.
    UnknownDiscardPolicy,
    /// A payload could not be encoded or decoded.
    InvalidPayload,
    /// A stored document is not valid JSON of the expected shape.
    InvalidDocument,
    /// Unknown lifecycle event type.
    UnknownEventType,
    /// An option value is out of range or options conflict.
    InvalidOption,
    /// `mark_in_progress` was called outside a running handler.
    InProgressNotSupported,
    /// Connecting to NATS failed.
    Connection,
    /// A JetStream or NATS request failed or timed out.
    Storage,
    /// Reading a key or seed file failed.
    Io,
    /// A task with that id already exists and is not the task being enqueued.
    TaskAlreadyExists,
    /// A task's dependencies cannot be satisfied (e.g. it depends on itself).
    InvalidDependencies,
    /// An encoded task document is larger than the server accepts.
    PayloadTooLarge,
    /// A KV create found the key already present.
    KeyExists,
    /// No value is stored under that KV key.
    KeyNotFound,
    /// A compare-and-swap found a newer revision than the one expected.
    RevisionMismatch,
    /// The worker or app is already running.
    AlreadyRunning,
    /// The connection was closed with `close()` or belongs to a parent process.
    Closed,
    /// A waited-for task ended in a state other than `complete` (the message has its last error).
    TaskFailed,
    /// A wait ran out of time.
    Timeout,
    /// A cron specification asyncjobs would not accept (asyncjobs' `ErrScheduleInvalid`), or none.
    InvalidSchedule,
    /// A schedule name that is missing or not `^[a-zA-Z0-9_:-]+$`.
    InvalidScheduleName,
    /// A scheduled task's deadline below asyncjobs' 30 s minimum.
    ScheduleDeadlineTooShort,
    /// A schedule with that name exists already.
    ScheduleExists,
    /// No schedule with that name.
    ScheduleNotFound,
    /// No governor with that name (choria's "unknown governor").
    GovernorNotFound,
    /// No lease with that sequence on the governor (JetStream's "no message found").
    LeaseNotFound,
    /// A supervised worker returned before it was cancelled.
    WorkerExitedPrematurely,
    /// Several supervised workers or jobs failed; the errors are joined.
    WorkersFailed,
    /// A pool has no live worker to run a job.
    NoWorkers,
    /// A pool job with that key is already running.
    JobExists,
    /// No pool job with that key.
    JobNotFound,
    /// A pool worker's start handler refused the job.
    JobStartFailed,
    /// A user callback (a supervised worker or job, a pool handler or plan) raised or threw.
    CallbackFailed,
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error returned by every fallible jetjobs operation.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
    /// The errors an error of kind `WorkersFailed` joins; empty otherwise.
    joined: Vec<Error>,
}

impl Error {
    /// An error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
            joined: Vec::new(),
        }
    }

    /// An error of `kind` caused by `source`; the source's text is appended to the message.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        let source = source.into();
        Self {
            kind,
            message: format!("{}: {source}", message.into()),
            source: Some(source),
            joined: Vec::new(),
        }
    }

    /// Go's `errors.Join` for supervised workers and jobs: `None` for no errors, the error itself
    /// when there is one, and otherwise one `WorkersFailed` error listing them all, in order.
    ///
    /// # Examples
    /// ```
    /// use jetjobs::{Error, ErrorKind};
    /// assert!(Error::joined(Vec::new()).is_none());
    /// let one = Error::joined(vec![Error::new(ErrorKind::Timeout, "slow")]);
    /// assert_eq!(one.map(|e| e.kind()), Some(ErrorKind::Timeout));
    /// let both = Error::joined(vec![
    ///     Error::new(ErrorKind::Timeout, "slow"),
    ///     Error::new(ErrorKind::Storage, "down"),
    /// ]);
    /// let both = both.expect("two errors");
    /// assert_eq!(both.kind(), ErrorKind::WorkersFailed);
    /// assert_eq!(both.errors().len(), 2);
    /// ```
    pub fn joined(mut errors: Vec<Error>) -> Option<Error> {
        if errors.len() <= 1 {
            return errors.pop();
        }
        let list: Vec<String> = errors
            .iter()
            .map(|e| format!("[{}] {e}", e.code()))
            .collect();
        Some(Self {
            kind: ErrorKind::WorkersFailed,
            message: format!(
                "{} workers or jobs failed: {}",
                errors.len(),
                list.join("; ")
            ),
            source: None,
            joined: errors,
        })
    }

    /// The errors this one joins ([`Error::joined`]); empty for any other error.
    pub fn errors(&self) -> &[Error] {
        &self.joined
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Shorthand for `self.kind().code()`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub(crate) fn storage(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::with_source(ErrorKind::Storage, context, source)
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
