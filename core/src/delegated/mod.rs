// SPDX-License-Identifier: Apache-2.0
//! Delegated handlers, as asyncjobs has them: a task type handled by a remote service over NATS
//! request-reply ([`Mux::request_reply`](crate::Mux::request_reply)) or by an external command
//! ([`Mux::external_process`](crate::Mux::external_process)); and the other side of request-reply,
//! a [`Responder`] serving a task type to any asyncjobs or jetjobs worker that routes it there.
//!
//! Their failures are ordinary failed tries whose `last_err` carries asyncjobs' texts
//! (`request-reply callout failed: …`, `deadline too short`, `command not found`,
//! `execution failed: exit status N`), so Go tooling reads the same task documents.

mod external;
pub(crate) mod request_reply;
pub(crate) mod responder;

pub(crate) use external::ExternalProcess;
pub(crate) use request_reply::RequestReply;
pub use responder::Responder;
