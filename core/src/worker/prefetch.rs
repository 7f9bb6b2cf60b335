// SPDX-License-Identifier: Apache-2.0
//! The documents of the items of one pull, loaded in one request instead of one each.
//!
//! Items of a pull arrive together; the first of their handlers to start asks for every
//! document at once ([`Storage::load_tasks`]) and each takes its own. An item whose document is
//! not among them loads it alone, so nothing here decides an outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use crate::store::{ProcessItem, Storage};
use crate::task::Task;

pub(crate) struct Prefetch {
    storage: Storage,
    /// The task id of each item, in the order the items arrived (`None`: not a task item).
    ids: Vec<Option<String>>,
    loaded: OnceCell<Mutex<HashMap<String, Task>>>,
}

impl Prefetch {
    /// A shared prefetch for `messages`, or `None` when one request would not save any.
    pub(crate) fn for_items(
        storage: &Storage,
        messages: &[async_nats::jetstream::Message],
    ) -> Option<Arc<Self>> {
        if messages.len() < 2 || !storage.loads_tasks_in_batches() {
            return None;
        }
        let ids: Vec<Option<String>> = messages
            .iter()
            .map(|m| {
                ProcessItem::parse(&m.payload)
                    .filter(|item| item.kind == 0)
                    .map(|item| item.job)
            })
            .collect();
        (ids.iter().flatten().count() >= 2).then(|| {
            Arc::new(Self {
                storage: storage.clone(),
                ids,
                loaded: OnceCell::new(),
            })
        })
    }

    /// The document of the task of the item at `position` in the pull, if the batch has it;
    /// loads the batch on first use.
    pub(crate) async fn take(&self, position: usize) -> Option<Task> {
        let id = self.ids.get(position)?.as_ref()?;
        let loaded = self
            .loaded
            .get_or_init(|| async {
                let ids: Vec<String> = self.ids.iter().flatten().cloned().collect();
                let found = self.storage.load_tasks(&ids).await.unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "loading a pull's tasks at once; loading each alone");
                    HashMap::new()
                });
                Mutex::new(found)
            })
            .await;
        loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }
}
