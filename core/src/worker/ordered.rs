// SPDX-License-Identifier: Apache-2.0
//! The order gate of an ordered queue's keyed items (see [`store::ordered`](crate::store)).
//!
//! Before a keyed item runs, the gate asks the stream for its key's first items: only the head
//! (or, with a per-key concurrency of `n`, one of the first `n`) may run. An item behind an
//! unfinished one waits without using a try: here, when what it waits for runs in this process
//! (keeping its handler slot, so that a worker holds at most its concurrency in items),
//! otherwise handed back to the server for a short while. A failed task stays its key's head
//! until it succeeds or ends for good, so it holds back the rest of its key from wherever they
//! are delivered, also after a crash. With a per-key concurrency above 1, a failed task is also
//! recorded in the queue's order bucket, since later tasks may already be inside the key's
//! window.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::store::{KeyHead, Kv, OrderedItems, ProcessItem};
use crate::worker::Slot;
use crate::worker::delivery::Delivery;
use crate::worker::pull::QueueConsumer;

/// How long an item waiting for a task running in this process looks again anyway.
const LOCAL_RECHECK: Duration = Duration::from_secs(2);
/// The first hand-back delay of an item waiting for a task elsewhere; it doubles per delivery.
const FIRST_WAIT: Duration = Duration::from_millis(25);
/// The longest hand-back delay.
const LONGEST_WAIT: Duration = Duration::from_secs(1);
/// How many keys' lanes a gate keeps before it drops those with nothing running or waiting.
const MAX_IDLE_LANES: usize = 4096;
/// How long after a failed check the item is delivered again.
const CHECK_FAILED_WAIT: Duration = Duration::from_secs(1);

/// Decides when each keyed item of one ordered queue may run; shared by the queue's loops.
pub(crate) struct OrderGate {
    items: OrderedItems,
    /// The order bucket, with a per-key concurrency above 1.
    holds: Option<Kv>,
    /// Per key subject, what this process runs and what waits for it.
    lanes: Mutex<HashMap<String, Lane>>,
}

#[derive(Default)]
struct Lane {
    running: BTreeSet<u64>,
    /// Items lined up here, each woken when the one before it here finishes.
    waiting: BTreeMap<u64, Arc<Notify>>,
    /// Items settled here that the stream may not have removed yet.
    settled: BTreeSet<u64>,
}

/// Where an item stands in its key.
#[derive(Debug, PartialEq)]
enum Turn {
    Run,
    /// Not in the stream any more: settled already.
    Settled,
    /// Behind an unfinished item of its key.
    Behind(Option<KeyHead>),
}

impl OrderGate {
    pub(crate) fn new(items: OrderedItems, holds: Option<Kv>) -> Self {
        Self {
            items,
            holds,
            lanes: Mutex::default(),
        }
    }

    async fn turn(&self, subject: &str, sequence: u64) -> Result<Turn> {
        let mut from = 1;
        let head = loop {
            let Some(head) = self.items.first_from(subject, from).await? else {
                // Gone, or not yet on the replica that answered: look again later.
                return Ok(Turn::Behind(None));
            };
            if from == 1 {
                self.forget_settled_before(subject, head.sequence);
            }
            // An item acknowledged here a moment ago may still be stored: it is done all the same.
            if head.sequence < sequence && self.settled_here(subject, head.sequence) {
                from = head.sequence + 1;
                continue;
            }
            break head;
        };
        if head.sequence > sequence {
            return Ok(Turn::Settled);
        }
        if head.sequence == sequence && self.items.per_key == 1 {
            return Ok(Turn::Run);
        }
        let mut last = head.clone();
        let mut ahead = 0;
        while last.sequence < sequence {
            ahead += 1;
            if ahead >= self.items.per_key {
                return Ok(Turn::Behind(Some(head)));
            }
            match self.items.first_from(subject, last.sequence + 1).await? {
                Some(next) if next.sequence <= sequence => last = next,
                _ => return Ok(Turn::Settled),
            }
        }
        match self.held_by(subject, head.sequence, sequence).await? {
            Some(failed) => Ok(Turn::Behind(Some(failed))),
            None => Ok(Turn::Run),
        }
    }

    /// The failed item of the key that `sequence` must wait for, if one is recorded and still
    /// stored; a stale record (its item is gone) is removed.
    async fn held_by(&self, subject: &str, head: u64, sequence: u64) -> Result<Option<KeyHead>> {
        let Some(holds) = &self.holds else {
            return Ok(None);
        };
        let Some(entry) = holds.get(hold_key(subject)).await? else {
            return Ok(None);
        };
        let failed = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if failed >= sequence {
            return Ok(None);
        }
        if failed >= head
            && let Some(item) = self.items.first_from(subject, failed).await?
            && item.sequence == failed
        {
            return Ok(Some(item));
        }
        let _ = holds.delete(hold_key(subject), Some(entry.revision)).await;
        Ok(None)
    }

    /// Records that the item failed and will be retried, before it is handed back.
    pub(crate) async fn hold(&self, delivery: &Delivery) {
        let Some(holds) = &self.holds else { return };
        let value = Bytes::from(delivery.stream_sequence.to_string());
        if let Err(e) = holds.put(hold_key(&delivery.subject), value).await {
            tracing::warn!(error = %e, "recording a failed ordered task failed");
        }
    }

    /// Clears the item's failure record once it is final.
    pub(crate) async fn release(&self, delivery: &Delivery) {
        let Some(holds) = &self.holds else { return };
        let key = hold_key(&delivery.subject);
        if let Ok(Some(entry)) = holds.get(key).await
            && entry.value == delivery.stream_sequence.to_string().as_bytes()
        {
            let _ = holds.delete(key, Some(entry.revision)).await;
        }
    }

    /// Whether this process settled item `sequence` of the key.
    fn settled_here(&self, subject: &str, sequence: u64) -> bool {
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes
            .get(subject)
            .is_some_and(|lane| lane.settled.contains(&sequence))
    }

    /// The item of the key that waits or runs here right before `sequence` in the stream, with
    /// nothing stored between them; new items only come after, so that stays true.
    async fn direct_predecessor(&self, subject: &str, sequence: u64) -> Option<u64> {
        let before = {
            let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let lane = lanes.get(subject)?;
            let running = lane.running.range(..sequence).next_back().copied();
            let waiting = lane.waiting.range(..sequence).next_back().map(|(s, _)| *s);
            running.max(waiting)?
        };
        match self.items.first_from(subject, before + 1).await {
            Ok(Some(next)) if next.sequence == sequence => Some(before),
            _ => None,
        }
    }

    /// Forgets settled items before the key's first stored one: the stream removed them.
    fn forget_settled_before(&self, subject: &str, first_stored: u64) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lane) = lanes.get_mut(subject) {
            lane.settled = lane.settled.split_off(&first_stored);
        }
    }

    /// Records that this process settled item `sequence` of the key.
    fn note_settled(&self, subject: &str, sequence: u64) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lane) = lanes.get_mut(subject) {
            lane.settled.insert(sequence);
        }
        // Settled items are only forgotten when a later item of their key looks; keys that went
        // quiet are dropped in bulk.
        if lanes.len() > MAX_IDLE_LANES {
            lanes.retain(|_, lane| !lane.running.is_empty() || !lane.waiting.is_empty());
        }
    }

    /// Lines a pulled item up behind its key's local items, before anything of a later item is
    /// looked at, so that items pulled together wait for each other here.
    pub(crate) fn line_up_message(&self, message: &async_nats::jetstream::Message) -> Arc<Notify> {
        let sequence = message.info().map_or(0, |i| i.stream_sequence);
        self.line_up(&message.subject, sequence)
    }

    /// Drops a pulled item handed back before it was looked at.
    pub(crate) fn forget(&self, message: &async_nats::jetstream::Message) {
        let sequence = message.info().map_or(0, |i| i.stream_sequence);
        self.step_out(&message.subject, sequence, false);
    }

    /// Lines the item up behind its key's local items; the receiver fires when the one before it
    /// here finishes.
    fn line_up(&self, subject: &str, sequence: u64) -> Arc<Notify> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let lane = lanes.entry(subject.to_string()).or_default();
        lane.waiting.entry(sequence).or_default().clone()
    }

    /// Whether something of the key before `sequence` is running or waiting in this process.
    fn waits_here(&self, subject: &str, sequence: u64) -> bool {
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.get(subject).is_some_and(|lane| {
            !lane.running.is_empty() || lane.waiting.range(..sequence).next().is_some()
        })
    }

    /// The item stops waiting here; `running` if it starts its handler.
    fn step_out(&self, subject: &str, sequence: u64, running: bool) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(lane) = lanes.get_mut(subject) else {
            return;
        };
        lane.waiting.remove(&sequence);
        let mut woke = false;
        if running {
            lane.running.insert(sequence);
        } else {
            lane.running.remove(&sequence);
            // The next one looks again: what it waited for here may be gone. It stays lined up,
            // so that the ones after it keep waiting here meanwhile.
            if let Some((_, next)) = lane.waiting.first_key_value() {
                next.notify_one();
                woke = true;
            }
        }
        // A woken item lines up again and may need to know what was settled here.
        if !woke && lane.running.is_empty() && lane.waiting.is_empty() && lane.settled.is_empty() {
            lanes.remove(subject);
        }
    }
}

/// The order bucket key of a key subject: its last token, the key's hash.
fn hold_key(subject: &str) -> &str {
    subject.rsplit('.').next().unwrap_or(subject)
}

/// How long an item waiting for a task elsewhere is handed back on its `delivered`th delivery.
fn wait_elsewhere(delivered: i64) -> Duration {
    let doublings = u32::try_from(delivered.saturating_sub(1).max(0))
        .unwrap_or(8)
        .min(8);
    (FIRST_WAIT * 2u32.pow(doublings)).min(LONGEST_WAIT)
}

/// Ends the item's local run: the next of its key here looks again.
struct Running<'a> {
    gate: &'a OrderGate,
    subject: &'a str,
    sequence: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.gate.step_out(self.subject, self.sequence, false);
    }
}

impl QueueConsumer {
    /// Runs a keyed item once it is its key's turn.
    pub(crate) async fn process_in_order(
        &self,
        gate: &OrderGate,
        message: async_nats::jetstream::Message,
        lined_up: Arc<Notify>,
        slot: Slot,
        shutdown: &CancellationToken,
        hard_stop: CancellationToken,
    ) {
        let mut delivery = Delivery::new(&self.storage.nats, &message);
        let subject = message.subject.to_string();
        let sequence = delivery.stream_sequence;
        let mut noted = false;
        let mut lined_up = Some(lined_up);
        // The item of the key right before this one in the stream, when it is in this process.
        let mut predecessor = None;
        let mut preloaded = None;
        let mut looked_long = false;
        loop {
            let woken = match lined_up.take() {
                Some(woken) => woken,
                None => gate.line_up(&subject, sequence),
            };
            // Once the item right before it was settled here, this one is its key's head: no
            // need to ask the stream again.
            if predecessor.is_some_and(|p| gate.settled_here(&subject, p)) {
                break;
            }
            let turn = gate.turn(&subject, sequence).await;
            let head = match turn {
                Ok(Turn::Run) => break,
                Ok(Turn::Settled) => {
                    gate.step_out(&subject, sequence, false);
                    return delivery.ack().await;
                }
                Ok(Turn::Behind(head)) => head,
                Err(e) => {
                    tracing::warn!(error = %e, %subject, "checking an ordered item's turn failed");
                    gate.step_out(&subject, sequence, false);
                    return delivery.nak(CHECK_FAILED_WAIT).await;
                }
            };
            // What it was behind finished here while it looked: look again.
            if head
                .as_ref()
                .is_some_and(|h| gate.settled_here(&subject, h.sequence))
            {
                continue;
            }
            // A wait of a moment behind work running here is not worth a write; one behind
            // work elsewhere (a failed task, another worker) is shown on the task, once.
            if !noted
                && delivery.delivered == 1
                && (looked_long || !gate.waits_here(&subject, sequence))
            {
                noted = true;
                self.note_waiting(&message, head.as_ref()).await;
            }
            if !gate.waits_here(&subject, sequence) {
                gate.step_out(&subject, sequence, false);
                return delivery.nak(wait_elsewhere(delivery.delivered)).await;
            }
            if predecessor.is_none() && gate.items.per_key == 1 {
                predecessor = gate.direct_predecessor(&subject, sequence).await;
            }
            // Its turn comes when this process's own work ends: have the document ready.
            if preloaded.is_none()
                && let Some(item) = ProcessItem::parse(&message.payload)
            {
                preloaded = self.storage.load_task(&item.job).await.ok();
            }
            match self.wait_locally(woken, &delivery, shutdown).await {
                Some(woken) => looked_long = !woken,
                None => {
                    gate.step_out(&subject, sequence, false);
                    return delivery.nak(Duration::ZERO).await;
                }
            }
        }
        gate.step_out(&subject, sequence, true);
        let _running = Running {
            gate,
            subject: &subject,
            sequence,
        };
        self.process_delivery(&message, &mut delivery, preloaded, slot, hard_stop)
            .await;
        if delivery.settled.load(std::sync::atomic::Ordering::Acquire) {
            gate.note_settled(&subject, sequence);
        }
    }

    /// Waits to be woken (true) or for a periodic look (false), keeping the item; `None` if the
    /// worker stops.
    async fn wait_locally(
        &self,
        woken: Arc<Notify>,
        delivery: &Delivery,
        shutdown: &CancellationToken,
    ) -> Option<bool> {
        let keep_alive = (self.queue.max_run_time / 2).max(Duration::from_millis(500));
        let recheck = tokio::time::sleep(LOCAL_RECHECK);
        let woken = woken.notified();
        tokio::pin!(woken, recheck);
        loop {
            tokio::select! {
                _ = &mut woken => return Some(true),
                _ = &mut recheck => return Some(false),
                _ = tokio::time::sleep(keep_alive) => delivery.in_progress().await,
                _ = shutdown.cancelled() => return None,
            }
        }
    }

    /// Makes the wait visible on the task: `waiting_for` names the task it waits for.
    async fn note_waiting(&self, message: &async_nats::jetstream::Message, head: Option<&KeyHead>) {
        let Some(blocker) = head.and_then(|h| h.task_id.clone()) else {
            return;
        };
        let Some(item) = ProcessItem::parse(&message.payload) else {
            return;
        };
        let Ok(mut task) = self.storage.load_task(&item.job).await else {
            return;
        };
        if task.state.is_final() || task.waiting_for.as_deref() == Some(blocker.as_str()) {
            return;
        }
        task.waiting_for = Some(blocker);
        if let Err(e) = self.storage.save_task(&mut task).await {
            tracing::debug!(task = %task.id, error = %e, "noting a wait failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_back_delay_doubles_up_to_a_second() {
        let delays: Vec<_> = (1..=8).map(wait_elsewhere).collect();
        assert_eq!(delays[0], Duration::from_millis(25));
        assert_eq!(delays[1], Duration::from_millis(50));
        assert_eq!(delays[5], Duration::from_millis(800));
        assert_eq!(delays[6], LONGEST_WAIT);
        assert_eq!(wait_elsewhere(i64::MAX), LONGEST_WAIT);
        assert_eq!(wait_elsewhere(0), FIRST_WAIT);
    }

    #[test]
    fn hold_keys_are_the_key_hash() {
        assert_eq!(hold_key("JETJOBS.ordered.Q.00ff"), "00ff");
    }
}
