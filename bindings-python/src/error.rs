// SPDX-License-Identifier: Apache-2.0
//! The single map from [`jetjobs::Error`] to Python exceptions.
//!
//! Every [`ErrorKind`] has its own class under `JetJobsError`, named like [`ErrorKind::code`]. The
//! `match` in [`to_py`] has no catch-all arm on purpose: a new kind in the core fails this build
//! until it has a class.

use jetjobs::ErrorKind;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyType;

create_exception!(
    jetjobs,
    JetJobsError,
    PyException,
    "Base class of every error jetjobs raises; `code` is the core's stable error code."
);
create_exception!(
    jetjobs,
    TerminateTask,
    PyException,
    "Raise from a handler to terminate the task: it is not tried again and `last_err` is \
     `<reason>: terminate task`."
);

macro_rules! kinds {
    ($($name:ident: $doc:literal,)*) => {
        $(create_exception!(jetjobs, $name, JetJobsError, $doc);)*

        /// Every kind's class, for registration: `(code, class)`.
        pub(crate) fn classes(py: Python<'_>) -> Vec<(&'static str, Bound<'_, PyType>)> {
            vec![$((ErrorKind::$name.code(), py.get_type::<$name>()),)*]
        }

        fn new_err(kind: ErrorKind, message: String) -> PyErr {
            match kind {
                $(ErrorKind::$name => $name::new_err(message),)*
            }
        }
    };
}

kinds! {
    TaskNotFound: "No task with that id is stored.",
    InvalidTaskType: "A task type does not match `^[a-zA-Z0-9_:-]+$`.",
    InvalidTaskId: "A task id does not match `^[a-zA-Z0-9_:-]+$`.",
    TaskCannotEnqueue: "The task is in a state from which it cannot be enqueued.",
    TaskUpdateFailed: "A task save lost an optimistic-concurrency race or was refused.",
    TaskAlreadySigned: "The task is already signed.",
    SignatureRequiresQueue: "Signing needs the task's queue to be set.",
    TaskNotSigned: "Signatures are required and the task has none.",
    SignatureInvalid: "The task's signature does not verify.",
    InvalidKey: "A signing or verification key is malformed.",
    QueueNotFound: "No queue with that name exists.",
    QueueConsumerNotFound: "The queue's WORKERS consumer does not exist.",
    InvalidQueueName: "A queue name is empty or unusable.",
    DuplicateItem: "The work queue refused the item as a duplicate.",
    DuplicateHandler: "A handler is already registered for that task type.",
    UnknownRetryPolicy: "No retry policy has that name.",
    InvalidRetryPolicy: "A retry policy is malformed.",
    UnknownDiscardPolicy: "A state cannot be used as a discard state.",
    InvalidPayload: "A payload could not be encoded or decoded.",
    InvalidDocument: "A stored document is not valid JSON of the expected shape.",
    UnknownEventType: "Unknown lifecycle event type.",
    InvalidOption: "An option value is out of range or options conflict.",
    InProgressNotSupported: "`mark_in_progress` was called outside a running handler.",
    Connection: "Connecting to NATS failed.",
    Storage: "A JetStream or NATS request failed or timed out.",
    Io: "Reading a key or seed file, or starting a server, failed.",
    TaskAlreadyExists: "A different task with that id is already stored.",
    InvalidDependencies: "A task's dependencies can never be satisfied (it depends on itself).",
    PayloadTooLarge: "The task document is larger than the server accepts.",
    KeyExists: "A KV create found the key already present.",
    KeyNotFound: "No value is stored under that KV key.",
    RevisionMismatch: "A compare-and-swap found a newer revision than the one expected.",
    AlreadyRunning: "The worker or app is already running.",
    Closed: "The client was closed, or belongs to the parent of a forked process.",
    TaskFailed: "A waited-for task ended in a state other than `complete`.",
    Timeout: "A wait ran out of time.",
    InvalidSchedule: "A cron specification asyncjobs would not accept, or none.",
    InvalidScheduleName: "A schedule name that is missing or not ^[a-zA-Z0-9_:-]+$.",
    ScheduleDeadlineTooShort: "A scheduled task's deadline below asyncjobs' 30 s minimum.",
    ScheduleExists: "A schedule with that name exists already.",
    ScheduleNotFound: "No schedule with that name.",
    GovernorNotFound: "No governor with that name.",
    LeaseNotFound: "No lease with that sequence on the governor.",
    WorkerExitedPrematurely: "A supervised worker returned before it was cancelled.",
    WorkersFailed: "Several supervised workers or jobs failed; the errors are joined.",
    NoWorkers: "A pool has no live worker to run a job.",
    JobExists: "A pool job with that key is already running.",
    JobNotFound: "No pool job with that key.",
    JobStartFailed: "A pool worker's start handler refused the job.",
    CallbackFailed: "A user callback (a supervised worker or job, a pool handler or plan) raised or threw.",
}

/// The exception for a core error, with the core's message and its source chained as `__cause__`.
///
/// A Python exception the core carried as a [`Raised`] source comes back as that same exception
/// object; `WorkersFailed` gets an `errors` list, each joined error converted the same way.
pub(crate) fn to_py(err: jetjobs::Error) -> PyErr {
    to_py_ref(&err)
}

fn to_py_ref(err: &jetjobs::Error) -> PyErr {
    let source = std::error::Error::source(err);
    if let Some(raised) = source.and_then(|s| s.downcast_ref::<Raised>())
        && let Some(original) = crate::runtime::attach(|py| raised.err.clone_ref(py))
    {
        return original;
    }
    // The exhaustive match lives in `new_err`, generated from the list above; adding a kind to the
    // core without adding it there is a compile error ("non-exhaustive patterns").
    let py_err = new_err(err.kind(), err.to_string());
    crate::runtime::attach(|py| {
        if let Some(source) = source {
            py_err.set_cause(py, Some(cause_chain(py, source)));
        }
        if err.kind() == ErrorKind::WorkersFailed {
            let errors: Vec<Py<PyAny>> = err
                .errors()
                .iter()
                .map(|e| to_py_ref(e).into_value(py).into_any())
                .collect();
            let _ = py_err
                .value(py)
                .setattr(pyo3::intern!(py, "errors"), errors);
        }
    });
    py_err
}

/// A Python exception carried through the core as an error's source (a supervised worker's or a
/// pool handler's), so that it comes back out of the core as the same exception object.
pub(crate) struct Raised {
    err: PyErr,
    /// `<type>: <message>`, rendered while the exception was caught: formatting a `PyErr` later
    /// would take the GIL on whatever thread the core happens to log from.
    text: String,
}

impl Raised {
    pub(crate) fn new(py: Python<'_>, err: PyErr) -> Self {
        let text = crate::handler::describe(py, &err);
        Self { err, text }
    }

    /// A `RuntimeError` made without the GIL, for a call that could not reach Python.
    pub(crate) fn message(text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            err: pyo3::exceptions::PyRuntimeError::new_err(text.clone()),
            text: format!("RuntimeError: {text}"),
        }
    }

    /// A core error of `kind` whose message is `context: <type>: <message>`.
    pub(crate) fn into_error(self, kind: ErrorKind, context: &str) -> jetjobs::Error {
        jetjobs::Error::with_source(kind, context, self)
    }
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raised({})", self.text)
    }
}

impl std::error::Error for Raised {}

/// A Python exception per link of a Rust error's source chain, outermost first.
fn cause_chain(py: Python<'_>, err: &(dyn std::error::Error + 'static)) -> PyErr {
    let cause = match err.downcast_ref::<std::io::Error>() {
        Some(io) => PyOSError::new_err(io.to_string()),
        None => PyRuntimeError::new_err(err.to_string()),
    };
    if let Some(next) = err.source() {
        cause.set_cause(py, Some(cause_chain(py, next)));
    }
    cause
}

/// `PyResult` from a core result.
pub(crate) trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for jetjobs::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
