// SPDX-License-Identifier: Apache-2.0
//! One delivered work item and its acknowledgements, with asyncjobs' exact bodies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::trace::TraceContext;
use crate::wire::names::ack;

/// Fire-and-forget acknowledgement of one delivery.
pub(crate) struct Delivery {
    pub(crate) nats: async_nats::Client,
    /// When this worker got the item: JetStream's redelivery timer runs from about then.
    pub(crate) received: tokio::time::Instant,
    pub(crate) ack_subject: Option<String>,
    /// JetStream's delivery count of the item, 1 for the first delivery; for an ordered item,
    /// whose waits are deliveries too, the try it is on.
    pub(crate) delivered: i64,
    /// The item's subject and its sequence in its stream.
    pub(crate) subject: async_nats::Subject,
    pub(crate) stream_sequence: u64,
    /// The trace context the producer sent, if any.
    pub(crate) trace_context: Option<TraceContext>,
    /// Set once the item was acknowledged or terminated here.
    pub(crate) settled: AtomicBool,
}

impl Delivery {
    pub(crate) fn new(nats: &async_nats::Client, message: &async_nats::jetstream::Message) -> Self {
        let info = message.info().ok();
        Self {
            nats: nats.clone(),
            received: tokio::time::Instant::now(),
            ack_subject: message.reply.as_ref().map(|s| s.to_string()),
            delivered: info.as_ref().map_or(1, |i| i.delivered),
            subject: message.subject.clone(),
            stream_sequence: info.map_or(0, |i| i.stream_sequence),
            trace_context: TraceContext::from_headers(message.headers.as_ref()),
            settled: AtomicBool::new(false),
        }
    }

    async fn reply(&self, body: Bytes) {
        let Some(subject) = &self.ack_subject else {
            return;
        };
        if let Err(e) = self.nats.publish(subject.clone(), body).await {
            tracing::warn!(error = %e, "acknowledging work item failed; it will be redelivered");
        }
    }

    pub(crate) async fn ack(&self) {
        self.settle(Bytes::from_static(ack::ACK)).await
    }

    pub(crate) async fn term(&self) {
        self.settle(Bytes::from_static(ack::TERM)).await
    }

    async fn settle(&self, body: Bytes) {
        self.settled.store(true, Ordering::Release);
        self.reply(body).await
    }

    pub(crate) async fn nak(&self, delay: Duration) {
        self.reply(ack::nak(delay).into()).await
    }

    /// Restarts JetStream's redelivery timer while the item waits here.
    pub(crate) async fn in_progress(&self) {
        self.reply(Bytes::from_static(ack::IN_PROGRESS)).await
    }
}
