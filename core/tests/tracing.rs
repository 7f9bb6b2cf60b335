// SPDX-License-Identifier: Apache-2.0
//! Trace propagation with the `opentelemetry` feature against a real server: an in-memory exporter
//! sees the producer's `jetjobs.enqueue` span and the handler's `jetjobs.handle` span in one trace,
//! the handler's a child of the enqueue's, and the handler sees the same context.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{NatsServer, RunningWorker, client_for, wait_final, wait_for};
use jetjobs::{Mux, Task, WorkerOptions};
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn producer_and_handler_spans_share_one_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("jetjobs-test")));
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");

    let server = NatsServer::start();
    let client = client_for(&server, "TRACED").await;
    let seen = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let mut mux = Mux::new();
    let handler_seen = seen.clone();
    mux.handle("traced", move |ctx: jetjobs::TaskContext, task: Task| {
        let seen = handler_seen.clone();
        async move {
            let trace = ctx.trace_context().map(|c| c.trace_id().to_string());
            seen.lock().expect("lock").insert(task.id, trace);
            Ok(json!(null))
        }
    })
    .expect("register");
    let worker = RunningWorker::start(&client, WorkerOptions::new(), mux);

    let task = {
        use tracing::Instrument as _;
        client
            .enqueue(Task::new("traced", &1).expect("task"))
            .instrument(tracing::info_span!("request"))
            .await
            .expect("enqueued")
    };
    // A delayed task's item waits as a server schedule; its headers must survive the move.
    let delayed = {
        use tracing::Instrument as _;
        client
            .enqueue(
                Task::new("traced", &2)
                    .expect("task")
                    .with_delay(Duration::from_millis(500)),
            )
            .instrument(tracing::info_span!("delayed request"))
            .await
            .expect("enqueued")
    };
    wait_final(
        &client,
        &[task.id.clone(), delayed.id.clone()],
        Duration::from_secs(30),
    )
    .await;
    let spans = wait_for("both spans exported", Duration::from_secs(10), || {
        let spans = exporter.get_finished_spans().expect("spans");
        let found = |name: &str| spans.iter().find(|s| s.name == name).cloned();
        std::future::ready(
            match (
                found("request"),
                found("jetjobs.enqueue"),
                found("jetjobs.handle"),
            ) {
                (Some(r), Some(e), Some(h)) => Some((r, e, h)),
                _ => None,
            },
        )
    })
    .await;
    worker.stop().await;
    let (request, enqueue, handle) = spans;
    let trace_id = request.span_context.trace_id();
    assert_eq!(enqueue.span_context.trace_id(), trace_id);
    assert_eq!(
        handle.span_context.trace_id(),
        trace_id,
        "one trace, producer to handler"
    );
    assert_eq!(enqueue.parent_span_id, request.span_context.span_id());
    assert_eq!(handle.parent_span_id, enqueue.span_context.span_id());
    assert_eq!(enqueue.span_kind, SpanKind::Producer);
    assert_eq!(handle.span_kind, SpanKind::Consumer);
    assert_eq!(
        seen.lock().expect("lock")[&task.id].as_deref(),
        Some(trace_id.to_string().as_str()),
        "the handler's context carries the trace"
    );

    let spans = exporter.get_finished_spans().expect("spans");
    let delayed_trace = spans
        .iter()
        .find(|s| s.name == "delayed request")
        .expect("delayed request span")
        .span_context
        .trace_id();
    assert!(
        spans
            .iter()
            .any(|s| s.name == "jetjobs.handle" && s.span_context.trace_id() == delayed_trace),
        "the delayed task's handler continues its producer's trace"
    );
}
