// SPDX-License-Identifier: Apache-2.0
//! Every stream, subject, bucket, consumer and acknowledgement name asyncjobs uses, defined once.

/// The stream holding one document per task.
pub const TASKS_STREAM: &str = "CHORIA_AJ_TASKS";
/// Subjects of [`TASKS_STREAM`].
pub const TASKS_SUBJECTS: &str = "CHORIA_AJ.T.*";
/// Prefix of every queue's stream: `CHORIA_AJ_Q_<queue>`.
pub const QUEUE_STREAM_PREFIX: &str = "CHORIA_AJ_Q_";
/// The durable pull consumer every worker of a queue shares.
pub const QUEUE_CONSUMER: &str = "WORKERS";
/// KV bucket of scheduled tasks and other configuration.
pub const CONFIG_BUCKET: &str = "CHORIA_AJ_CONFIGURATION";
/// KV bucket of leader elections.
pub const ELECTIONS_BUCKET: &str = "CHORIA_AJ_ELECTIONS";
/// Wildcard matching every lifecycle event.
pub const EVENTS_SUBJECT_WILDCARD: &str = "CHORIA_AJ.E.>";
/// Header JetStream uses to deduplicate publishes.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// What a task document's subject is before its id.
pub(crate) const TASK_SUBJECT_PREFIX: &str = "CHORIA_AJ.T.";

/// The subject a task's document is stored on.
pub(crate) fn task_subject(id: &str) -> String {
    format!("{TASK_SUBJECT_PREFIX}{id}")
}

/// The stream of a queue.
pub(crate) fn queue_stream(queue: &str) -> String {
    format!("{QUEUE_STREAM_PREFIX}{queue}")
}

/// The subjects of a queue's stream.
pub(crate) fn queue_subjects(queue: &str) -> String {
    format!("CHORIA_AJ.Q.{queue}.>")
}

/// The subject of the work item for `task_id` in `queue`.
pub(crate) fn item_subject(queue: &str, task_id: &str) -> String {
    format!("CHORIA_AJ.Q.{queue}.{task_id}")
}

/// The subject of a lifecycle event of `kind` (e.g. `task_state`) about `id`.
pub(crate) fn event_subject(kind: &str, id: &str) -> String {
    format!("CHORIA_AJ.E.{kind}.{id}")
}

/// The KV bucket of keyed job pool `pool` (jetjobs only; see `docs/pool-wire.md`).
pub(crate) fn pool_bucket(pool: &str) -> String {
    format!("JETJOBS_POOL_{pool}")
}

/// The subject a pool node answers notifications for its jobs on.
pub(crate) fn pool_notify_subject(pool: &str, node: &str) -> String {
    format!("JETJOBS.pool.{pool}.notify.{node}")
}

/// Acknowledgement bodies, exactly as asyncjobs sends them.
pub(crate) mod ack {
    /// Done: the item is removed.
    pub(crate) const ACK: &[u8] = b"+ACK";
    /// Never deliver again.
    pub(crate) const TERM: &[u8] = b"+TERM";
    /// Still working: restart the redelivery timer.
    pub(crate) const IN_PROGRESS: &[u8] = b"+WPI";

    /// Deliver again after `delay`.
    pub(crate) fn nak(delay: std::time::Duration) -> String {
        format!("-NAK {{\"delay\": {}}}", delay.as_nanos())
    }
}

/// KV bucket of unique-task keys (jetjobs only: asyncjobs has no unique tasks).
pub const UNIQUE_BUCKET: &str = "JETJOBS_UNIQUE";

/// Where cancellation requests for running tasks go (jetjobs only), one subject per task.
pub(crate) const CANCEL_SUBJECT_WILDCARD: &str = "JETJOBS.cancel.*";

/// The subject a cancellation request for task `id` is sent to.
pub(crate) fn cancel_subject(id: &str) -> String {
    format!("JETJOBS.cancel.{id}")
}

/// The stream holding delayed tasks' work items until they are due (jetjobs only). Each waits as
/// a server message schedule (nats-server 2.12+), which the server publishes on its due subject
/// when due; a worker of the queue then moves it to the queue's stream.
pub const DELAYED_STREAM: &str = "JETJOBS_DELAYED";
/// Subjects of [`DELAYED_STREAM`].
pub(crate) const DELAYED_SUBJECTS: &str = "JETJOBS.delayed.>";

/// The subject the schedule of `task_id`'s work item waits on; one schedule per task.
pub(crate) fn delayed_subject(queue: &str, task_id: &str) -> String {
    format!("JETJOBS.delayed.at.{queue}.{task_id}")
}

/// The subject the server publishes `task_id`'s work item on when it is due.
pub(crate) fn due_subject(queue: &str, task_id: &str) -> String {
    format!("JETJOBS.delayed.due.{queue}.{task_id}")
}

/// Every due item of `queue`.
pub(crate) fn due_subjects(queue: &str) -> String {
    format!("JETJOBS.delayed.due.{queue}.*")
}

/// The consumer that moves `queue`'s due items into its stream, shared by its workers.
pub(crate) fn due_consumer(queue: &str) -> String {
    format!("JETJOBS_DUE_{queue}")
}

/// Key prefix of scheduled tasks in [`CONFIG_BUCKET`]: `scheduled_tasks.<name>`.
pub(crate) const SCHEDULED_TASKS_PREFIX: &str = "scheduled_tasks.";
/// The election key the task schedulers of an account share in [`ELECTIONS_BUCKET`].
pub const SCHEDULER_ELECTION_KEY: &str = "task_scheduler";

/// Prefix of the subjects asyncjobs' request-reply handlers call: `CHORIA_AJ.H.T.<routing type>`.
pub const REQUEST_REPLY_SUBJECT_PREFIX: &str = "CHORIA_AJ.H.T.";
/// What stands for the catch-all routing type `""` in a request-reply subject.
pub const REQUEST_REPLY_CATCHALL: &str = "catchall";
/// Request header naming the body's encoding.
pub const REQUEST_REPLY_CONTENT_TYPE_HEADER: &str = "AJ-Content-Type";
/// Request header with the time the reply is due (UTC, RFC 3339 with whole seconds).
pub const REQUEST_REPLY_DEADLINE_HEADER: &str = "AJ-Handler-Deadline";
/// Reply header asking for the task to be terminated; its value is the reason.
pub const REQUEST_REPLY_TERMINATE_HEADER: &str = "AJ-Terminate";
/// Reply header reporting a failed try; its value is the error.
pub const REQUEST_REPLY_ERROR_HEADER: &str = "AJ-Error";
/// The [`REQUEST_REPLY_CONTENT_TYPE_HEADER`] value of a request whose body is a task document.
pub const REQUEST_REPLY_TASK_CONTENT_TYPE: &str = "application/x-asyncjobs-task+json";
/// The only variable in an external process's environment: the path of a file holding the task.
pub const EXTERNAL_PROCESS_TASK_ENV: &str = "CHORIA_AJ_TASK";

/// The subject a request-reply route for `task_type` calls (asyncjobs'
/// `RequestReplySubjectForTaskType`): the registered routing type, `catchall` for `""`.
///
/// # Examples
/// ```
/// use jetjobs::wire::names::request_reply_subject;
/// assert_eq!(request_reply_subject("email:"), "CHORIA_AJ.H.T.email:");
/// assert_eq!(request_reply_subject(""), "CHORIA_AJ.H.T.catchall");
/// ```
pub fn request_reply_subject(task_type: &str) -> String {
    let routing = if task_type.is_empty() {
        REQUEST_REPLY_CATCHALL
    } else {
        task_type
    };
    format!("{REQUEST_REPLY_SUBJECT_PREFIX}{routing}")
}

/// Prefix of the stream holding an ordered queue's keyed work items (jetjobs only):
/// `JETJOBS_ORDERED_<queue>`. Go workers never consume it, so they cannot break the order.
pub const ORDERED_STREAM_PREFIX: &str = "JETJOBS_ORDERED_";
/// Stream metadata key holding how many tasks of one order key may run at once.
pub const ORDER_KEY_CONCURRENCY_METADATA: &str = "jetjobs.order_key_concurrency";
/// Prefix of the KV bucket recording which task holds back each order key after a failure, in
/// queues that run more than one task of a key at once: `CHORIA_AJ_ORDER_<queue>`.
pub const ORDER_BUCKET_PREFIX: &str = "CHORIA_AJ_ORDER_";

/// The stream of `queue`'s keyed items.
pub(crate) fn ordered_stream(queue: &str) -> String {
    format!("{ORDERED_STREAM_PREFIX}{queue}")
}

/// The subjects of [`ordered_stream`]: one per order key.
pub(crate) fn ordered_subjects(queue: &str) -> String {
    format!("JETJOBS.ordered.{queue}.*")
}

/// The subject every item of `order_key` in `queue` is published on, in enqueue order.
pub(crate) fn ordered_subject(queue: &str, order_key: &str) -> String {
    format!("JETJOBS.ordered.{queue}.{}", order_key_token(order_key))
}

/// The bucket of `queue`'s failed order keys.
pub(crate) fn order_bucket(queue: &str) -> String {
    format!("{ORDER_BUCKET_PREFIX}{queue}")
}

/// An order key as one subject token: its 64-bit FNV-1a hash in hex, so that any key is
/// usable and every language maps it alike. Two keys with one hash share their order.
///
/// # Examples
/// ```
/// use jetjobs::wire::names::order_key_token;
/// assert_eq!(order_key_token(""), "cbf29ce484222325");
/// assert_eq!(order_key_token("customer-7"), order_key_token("customer-7"));
/// assert_ne!(order_key_token("customer-7"), order_key_token("customer-8"));
/// ```
pub fn order_key_token(order_key: &str) -> String {
    let hash = order_key
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{hash:016x}")
}
