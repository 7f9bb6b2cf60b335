// SPDX-License-Identifier: Apache-2.0
//! The request-reply handler (asyncjobs' `request_reply_handler.go`): the task goes as a NATS
//! request to `CHORIA_AJ.H.T.<routing type>` and the reply decides the try.

use std::time::Duration;

use async_nats::{HeaderMap, Request, RequestErrorKind};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use futures::future::BoxFuture;

use crate::handler::{Handler, HandlerError, HandlerResult, TaskContext};
use crate::task::Task;
use crate::wire::names::{
    REQUEST_REPLY_CONTENT_TYPE_HEADER, REQUEST_REPLY_DEADLINE_HEADER, REQUEST_REPLY_ERROR_HEADER,
    REQUEST_REPLY_TASK_CONTENT_TYPE, REQUEST_REPLY_TERMINATE_HEADER, request_reply_subject,
};

/// asyncjobs refuses to call out with less time left than this.
const MIN_REMAINING: Duration = Duration::from_secs(3);
/// The responder is told to be done this long before the caller gives up.
const RESPONDER_MARGIN: Duration = Duration::from_secs(2);
/// The callout gives up this much before the try's deadline, so that its own error (asyncjobs'
/// `request-reply callout failed: context deadline exceeded`) ends the try, not the processor's.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(100);

/// Calls the responders of one routing type.
pub(crate) struct RequestReply {
    nats: async_nats::Client,
    subject: String,
}

impl RequestReply {
    /// Calls `CHORIA_AJ.H.T.<task_type>` (the registered routing type, not each task's own type).
    pub(crate) fn new(nats: async_nats::Client, task_type: &str) -> Self {
        Self {
            nats,
            subject: request_reply_subject(task_type),
        }
    }
}

impl Handler for RequestReply {
    fn call(&self, ctx: TaskContext, task: Task) -> BoxFuture<'static, HandlerResult> {
        let nats = self.nats.clone();
        let subject = self.subject.clone();
        Box::pin(async move {
            let remaining = ctx.remaining();
            if remaining < MIN_REMAINING {
                return Err(HandlerError::retry("deadline too short"));
            }
            let body = task
                .to_json()
                .map_err(|e| HandlerError::retry(format!("could not encode task: {e}")))?;
            let request = Request::new()
                .headers(request_headers(remaining))
                .payload(Bytes::from(body))
                .timeout(Some(remaining.saturating_sub(TIMEOUT_MARGIN)));
            tracing::debug!(task = %task.id, %subject, "calling request-reply handler");
            let reply = nats
                .send_request(subject.clone(), request)
                .await
                .map_err(|e| {
                    tracing::error!(task = %task.id, %subject, error = %e, "request-reply callout failed");
                    HandlerError::retry(format!(
                        "request-reply callout failed: {}",
                        callout_error(e.kind(), &e)
                    ))
                })?;
            outcome(reply.headers.as_ref(), reply.payload)
        })
    }
}

/// asyncjobs' request headers; the deadline is the caller's less two seconds, whole seconds.
fn request_headers(remaining: Duration) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        REQUEST_REPLY_CONTENT_TYPE_HEADER,
        REQUEST_REPLY_TASK_CONTENT_TYPE,
    );
    headers.insert(
        REQUEST_REPLY_DEADLINE_HEADER,
        responder_deadline(remaining).as_str(),
    );
    headers
}

/// `deadline − 2s` in UTC as Go's `time.RFC3339` prints it (fraction dropped, `Z`).
fn responder_deadline(remaining: Duration) -> String {
    let due = Utc::now() + remaining.saturating_sub(RESPONDER_MARGIN);
    due.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The texts nats.go gives the same failures, which asyncjobs stores.
fn callout_error(kind: RequestErrorKind, error: &async_nats::RequestError) -> String {
    match kind {
        RequestErrorKind::TimedOut => "context deadline exceeded".into(),
        RequestErrorKind::NoResponders => "nats: no responders available for request".into(),
        _ => error.to_string(),
    }
}

/// The reply as the try's outcome: `AJ-Terminate` before `AJ-Error`; else the raw reply bytes,
/// stored as asyncjobs stores a Go `[]byte`: a base64 JSON string.
pub(crate) fn outcome(headers: Option<&HeaderMap>, body: Bytes) -> HandlerResult {
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
            .filter(|v| !v.is_empty())
    };
    if let Some(reason) = header(REQUEST_REPLY_TERMINATE_HEADER) {
        return Err(HandlerError::terminate(reason));
    }
    if let Some(error) = header(REQUEST_REPLY_ERROR_HEADER) {
        return Err(HandlerError::retry(error));
    }
    Ok(serde_json::Value::String(crate::wire::base64_encode(&body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value);
        h
    }

    #[test]
    fn replies_map_like_asyncjobs() {
        assert_eq!(
            outcome(None, Bytes::from_static(b"test")),
            Ok(serde_json::json!("dGVzdA=="))
        );
        let mut both = with(REQUEST_REPLY_TERMINATE_HEADER, "bad input");
        both.insert(REQUEST_REPLY_ERROR_HEADER, "ignored");
        let terminated = outcome(Some(&both), Bytes::from_static(b"error")).err();
        assert_eq!(
            terminated.map(|e| (e.is_terminate(), e.to_string())),
            Some((true, "bad input: terminate task".into()))
        );
        let failed = outcome(
            Some(&with(REQUEST_REPLY_ERROR_HEADER, "test error")),
            Bytes::new(),
        );
        assert_eq!(failed, Err(HandlerError::retry("test error")));
        // An empty header value is no verdict.
        assert_eq!(
            outcome(Some(&with(REQUEST_REPLY_ERROR_HEADER, "")), Bytes::new()),
            Ok(serde_json::json!(""))
        );
    }

    #[test]
    fn deadline_header_is_whole_seconds_utc_two_seconds_early() {
        let text = responder_deadline(Duration::from_secs(60));
        assert_eq!(text.len(), "2009-11-10T23:00:00Z".len(), "{text}");
        assert!(text.ends_with('Z'), "{text}");
        let parsed = chrono::DateTime::parse_from_rfc3339(&text).expect("RFC 3339");
        let ahead = (parsed.with_timezone(&Utc) - Utc::now()).num_milliseconds();
        assert!((56_000..=58_100).contains(&ahead), "{ahead} ms ahead");
    }

    #[tokio::test]
    async fn short_deadline_fails_before_calling_out() {
        // No server is needed: the check comes before any request.
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("nats://127.0.0.1:1")
            .await
            .expect("lazy client");
        let handler = RequestReply::new(nats, "");
        let task = Task::new("t", &1).expect("task");
        let failed = handler
            .call(TaskContext::detached(Duration::from_secs(2)), task)
            .await;
        assert_eq!(failed, Err(HandlerError::retry("deadline too short")));
        assert_eq!(handler.subject, "CHORIA_AJ.H.T.catchall");
    }
}
