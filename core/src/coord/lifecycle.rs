// SPDX-License-Identifier: Apache-2.0
//! choria's governor lifecycle events (go-choria `lifecycle/governor.go`), the same on the wire:
//! opt-in with [`Governor::lifecycle`](crate::Governor::lifecycle) and
//! [`GovernorManager::lifecycle`](crate::GovernorManager::lifecycle). Each is a small JSON
//! document, `io.choria.lifecycle.v1.governor`, published on core NATS (not JetStream) to
//! `choria.lifecycle.event.governor.<component>`, where `choria tool event --type governor` and
//! choria's `tally` see it. Publishing is best effort: a failure is logged and never fails the
//! campaign, the release or the eviction.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The protocol of a governor lifecycle event.
pub const GOVERNOR_LIFECYCLE_PROTOCOL: &str = "io.choria.lifecycle.v1.governor";
/// The legacy protocol name, accepted when parsing and rewritten to the current one.
const LEGACY_PROTOCOL: &str = "choria:lifecycle:governor:1";

/// The subject governor lifecycle events of `component` are published on:
/// `choria.lifecycle.event.governor.<component>` (subscribe to `...governor.>` for all).
pub fn governor_lifecycle_subject(component: &str) -> String {
    format!("choria.lifecycle.event.governor.{component}")
}

/// A component names the events' subject tail: non-empty, no whitespace or wildcards, no empty
/// subject tokens.
pub(crate) fn validate_component(component: &str) -> Result<()> {
    let valid = !component.is_empty()
        && !component.contains(['*', '>', ' ', '\t', '\n', '\r'])
        && component.split('.').all(|token| !token.is_empty());
    if valid {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidOption,
            format!(
                "{component:?} is not a lifecycle component (it ends the subject \
                 choria.lifecycle.event.governor.<component>)"
            ),
        ))
    }
}

/// What happened to a governor slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GovernorEventType {
    /// A slot was obtained (`"enter"`).
    #[serde(rename = "enter")]
    Enter,
    /// A slot was given back (`"exit"`).
    #[serde(rename = "exit")]
    Exit,
    /// No slot was obtained: the campaign timed out, was cancelled or failed (`"timeouts"`,
    /// sic, as choria spells it).
    #[serde(rename = "timeouts")]
    Timeout,
    /// A slot was evicted through the manager (`"eviction"`).
    #[serde(rename = "eviction")]
    Eviction,
}

impl GovernorEventType {
    /// The `event_type` text on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enter => "enter",
            Self::Exit => "exit",
            Self::Timeout => "timeouts",
            Self::Eviction => "eviction",
        }
    }
}

impl fmt::Display for GovernorEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One governor lifecycle event; the fields in choria's order and JSON names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernorEvent {
    /// [`GOVERNOR_LIFECYCLE_PROTOCOL`].
    pub protocol: String,
    /// A unique id: a v4 UUID, as choria's `util.UniqueID()`.
    pub id: String,
    /// Who entered, left or failed (the configured identity or the holder's name); for an
    /// eviction, the evicted holder's name.
    pub identity: String,
    /// The component that published it; the last part of its subject.
    pub component: String,
    /// When, in whole seconds since the Unix epoch.
    pub timestamp: i64,
    /// The governor's name.
    pub governor: String,
    /// The lease's sequence (its slot); 0 for a timeout.
    pub sequence: u64,
    /// What happened.
    pub event_type: GovernorEventType,
}

impl GovernorEvent {
    /// A new event, now, with a fresh id.
    pub fn new(
        event_type: GovernorEventType,
        component: impl Into<String>,
        identity: impl Into<String>,
        governor: impl Into<String>,
        sequence: u64,
    ) -> Self {
        Self {
            protocol: GOVERNOR_LIFECYCLE_PROTOCOL.to_string(),
            id: uuid_v4(),
            identity: identity.into(),
            component: component.into(),
            timestamp: chrono::Utc::now().timestamp(),
            governor: governor.into(),
            sequence,
            event_type,
        }
    }

    /// The subject it is published on.
    pub fn subject(&self) -> String {
        governor_lifecycle_subject(&self.component)
    }

    /// The JSON document choria publishes.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| {
            Error::with_source(ErrorKind::InvalidDocument, "encoding a lifecycle event", e)
        })
    }

    /// Parses an event as choria does: the legacy protocol `choria:lifecycle:governor:1` is
    /// rewritten; another protocol (`invalid protocol '<p>'`) or an empty governor name is
    /// `InvalidDocument`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let mut event: Self = serde_json::from_slice(bytes).map_err(|e| {
            Error::with_source(ErrorKind::InvalidDocument, "invalid lifecycle event", e)
        })?;
        match event.protocol.as_str() {
            GOVERNOR_LIFECYCLE_PROTOCOL => {}
            LEGACY_PROTOCOL => event.protocol = GOVERNOR_LIFECYCLE_PROTOCOL.to_string(),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidDocument,
                    format!("invalid protocol '{other}'"),
                ));
            }
        }
        if event.governor.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidDocument,
                "governor name is not set",
            ));
        }
        Ok(event)
    }
}

/// choria's `String()` texts, e.g. `[governor] host-1: obtained slot 4 on PUPPET`.
impl fmt::Display for GovernorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (who, gov, seq) = (&self.identity, &self.governor, self.sequence);
        match (self.event_type, seq > 0) {
            (GovernorEventType::Exit, true) => {
                write!(f, "[governor] {who}: vacated slot {seq} on {gov}")
            }
            (GovernorEventType::Exit, false) => write!(f, "[governor] {who}: vacated {gov}"),
            (GovernorEventType::Enter, true) => {
                write!(f, "[governor] {who}: obtained slot {seq} on {gov}")
            }
            (GovernorEventType::Enter, false) => {
                write!(f, "[governor] {who}: obtained slot on {gov}")
            }
            (GovernorEventType::Timeout, _) => {
                write!(f, "[governor] {who}: failed to obtain a slot on {gov}")
            }
            (GovernorEventType::Eviction, true) => {
                write!(f, "[governor] {who}: evicted from slot {seq} on {gov}")
            }
            (GovernorEventType::Eviction, false) => {
                write!(f, "[governor] {who}: evicted from {gov}")
            }
        }
    }
}

/// A random (version 4) UUID in its hyphenated lowercase form.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Where a governor or manager publishes its events.
#[derive(Clone)]
pub(crate) struct LifecyclePublisher {
    nats: async_nats::Client,
    component: String,
}

impl LifecyclePublisher {
    /// Events of `component` (checked) on `nats`.
    pub(crate) fn new(nats: async_nats::Client, component: String) -> Result<Self> {
        validate_component(&component)?;
        Ok(Self { nats, component })
    }

    /// Publishes one event, logging (never returning) a failure.
    pub(crate) async fn publish(
        &self,
        event_type: GovernorEventType,
        governor: &str,
        sequence: u64,
        identity: &str,
    ) {
        let event = GovernorEvent::new(
            event_type,
            self.component.clone(),
            identity,
            governor,
            sequence,
        );
        let sent = match event.to_json() {
            Ok(body) => self
                .nats
                .publish(event.subject(), body.into())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = sent {
            tracing::warn!(%error, governor, event = %event_type, "publishing a governor lifecycle event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_encode_and_parse_as_choria_does() -> Result<()> {
        let event = GovernorEvent::new(GovernorEventType::Timeout, "CLI", "host", "PUPPET", 0);
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()?)
            .map_err(|e| Error::with_source(ErrorKind::InvalidDocument, "json", e))?;
        let keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut expected = [
            "protocol",
            "id",
            "identity",
            "component",
            "timestamp",
            "governor",
            "sequence",
            "event_type",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(json["event_type"], "timeouts");
        assert!(json["timestamp"].is_i64());
        assert_eq!(event.subject(), "choria.lifecycle.event.governor.CLI");
        assert_eq!(
            event.to_string(),
            "[governor] host: failed to obtain a slot on PUPPET"
        );
        let id = &event.id;
        assert_eq!((id.len(), &id[14..15]), (36, "4"), "a v4 uuid: {id}");

        let legacy = br#"{"protocol":"choria:lifecycle:governor:1","id":"x","identity":"h","component":"c","timestamp":1,"governor":"G","sequence":3,"event_type":"enter"}"#;
        let parsed = GovernorEvent::from_json(legacy)?;
        assert_eq!(parsed.protocol, GOVERNOR_LIFECYCLE_PROTOCOL);
        assert_eq!(parsed.to_string(), "[governor] h: obtained slot 3 on G");
        let bad = br#"{"protocol":"x","id":"x","identity":"h","component":"c","timestamp":1,"governor":"G","sequence":3,"event_type":"exit"}"#;
        let err = GovernorEvent::from_json(bad).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("invalid protocol 'x'")));
        assert!(validate_component("a.b").is_ok());
        assert!(validate_component("a..b").is_err() && validate_component("").is_err());
        Ok(())
    }
}
