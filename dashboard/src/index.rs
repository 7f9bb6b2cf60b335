// SPDX-License-Identifier: Apache-2.0
//! An in-memory index of the tasks store: id, queue, type, state, tries and creation time of
//! every task, so counts by queue and state, filters and pages stay fast over 100k tasks.
//!
//! It is built once page by page ([`jetjobs::Client::tasks_page`]) and then kept current by
//! reading on from the last stream sequence seen (every save of a task is a new document at a
//! later sequence) whenever an event arrives, and every few seconds regardless. Deletions and
//! expiries leave no document to read: when the index holds more tasks than the store, it is
//! rebuilt (at most every [`REBUILD_PAUSE`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use jetjobs::{CancellationToken, Client, Result, Task, TaskFilter, TaskState};

use crate::api::AppState;

/// Tasks read per page.
const PAGE: usize = 5000;
/// Refresh at least this often.
const REFRESH_EVERY: Duration = Duration::from_secs(3);
/// Events arriving within this long of each other are caught by one refresh.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// The shortest time between two rebuilds.
const REBUILD_PAUSE: Duration = Duration::from_secs(10);

/// What the index keeps of a task.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) queue: Arc<str>,
    pub(crate) task_type: Arc<str>,
    pub(crate) state: TaskState,
    pub(crate) tries: i64,
    pub(crate) created: jetjobs::Timestamp,
}

#[derive(Default)]
struct Data {
    by_id: BTreeMap<String, Entry>,
    /// The last stream sequence read.
    last_seq: u64,
    /// Interned queue names and types, for the filters.
    queues: BTreeSet<Arc<str>>,
    types: BTreeSet<Arc<str>>,
    /// The first build is done.
    ready: bool,
    /// Tasks in the store at the last refresh.
    stored: u64,
}

impl Data {
    fn status(&self) -> Status {
        Status {
            ready: self.ready,
            indexed: self.by_id.len(),
            stored: self.stored,
            last_seq: self.last_seq,
        }
    }

    fn intern(set: &mut BTreeSet<Arc<str>>, text: &str) -> Arc<str> {
        if let Some(known) = set.get(text) {
            return known.clone();
        }
        let new: Arc<str> = Arc::from(text);
        set.insert(new.clone());
        new
    }

    fn apply(&mut self, page: Vec<(u64, Task)>, last: u64) {
        for (seq, task) in page {
            if self.by_id.get(&task.id).is_some_and(|e| e.seq >= seq) {
                continue;
            }
            let entry = Entry {
                seq,
                queue: Self::intern(&mut self.queues, &task.queue),
                task_type: Self::intern(&mut self.types, &task.task_type),
                state: task.state,
                tries: task.tries,
                created: task.created,
            };
            self.by_id.insert(task.id, entry);
        }
        self.last_seq = self.last_seq.max(last);
    }
}

/// Which tasks a listing shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListFilter {
    pub(crate) states: Vec<TaskState>,
    pub(crate) queue: Option<String>,
    pub(crate) task_type: Option<String>,
    /// A prefix of the id.
    pub(crate) id: Option<String>,
}

impl ListFilter {
    fn matches(&self, id: &str, entry: &Entry) -> bool {
        (self.states.is_empty() || self.states.contains(&entry.state))
            && self.queue.as_deref().is_none_or(|q| &*entry.queue == q)
            && self
                .task_type
                .as_deref()
                .is_none_or(|t| &*entry.task_type == t)
            && self.id.as_deref().is_none_or(|p| id.starts_with(p))
    }
}

/// One page of a listing, newest task (by id) first.
pub(crate) struct ListPage {
    pub(crate) rows: Vec<(String, Entry)>,
    /// The cursor of the next (older) page, if there is one.
    pub(crate) next: Option<String>,
    /// Tasks the filter selects in all.
    pub(crate) matching: usize,
    /// The index as it was when the page was read.
    pub(crate) status: Status,
}

/// Tasks by queue, then by state, with the index's status read under the same lock: a refresh
/// finishing between the two must not pair an empty count with a ready index.
pub(crate) struct Counts {
    pub(crate) by_queue: BTreeMap<String, HashMap<TaskState, u64>>,
    pub(crate) status: Status,
}

/// The index's size and progress.
pub(crate) struct Status {
    pub(crate) ready: bool,
    pub(crate) indexed: usize,
    pub(crate) stored: u64,
    pub(crate) last_seq: u64,
}

pub(crate) struct TaskIndex {
    data: RwLock<Data>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<Option<Instant>>,
    /// Woken by events: something changed.
    pub(crate) changed: tokio::sync::Notify,
}

impl TaskIndex {
    pub(crate) fn new() -> Self {
        Self {
            data: RwLock::default(),
            refreshing: tokio::sync::Mutex::new(None),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads every document stored since the last refresh; rebuilds when tasks went missing.
    pub(crate) async fn refresh(&self, client: &Client) -> Result<()> {
        let mut last_rebuild = self.refreshing.lock().await;
        let all = TaskFilter::new();
        loop {
            let after = self.read().last_seq;
            let (page, last) = client.tasks_page(after, PAGE, &all).await?;
            let full = page.len() == PAGE;
            self.write().apply(page, last);
            if !full {
                break;
            }
        }
        let stored = client.admin().tasks_info().await?.tasks;
        let indexed = {
            let mut data = self.write();
            data.stored = stored;
            data.ready = true;
            data.by_id.len() as u64
        };
        let may_rebuild = last_rebuild.is_none_or(|at| at.elapsed() >= REBUILD_PAUSE);
        if indexed > stored && may_rebuild {
            *last_rebuild = Some(Instant::now());
            let mut fresh = Data::default();
            loop {
                let (page, last) = client.tasks_page(fresh.last_seq, PAGE, &all).await?;
                let full = page.len() == PAGE;
                fresh.apply(page, last);
                if !full {
                    break;
                }
            }
            fresh.ready = true;
            fresh.stored = stored;
            *self.write() = fresh;
        }
        Ok(())
    }

    /// Forgets a task the dashboard deleted.
    pub(crate) fn remove(&self, id: &str) {
        let mut data = self.write();
        if data.by_id.remove(id).is_some() {
            data.stored = data.stored.saturating_sub(1);
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Entry> {
        self.read().by_id.get(id).cloned()
    }

    /// Known queue names and task types.
    pub(crate) fn facets(&self) -> (Vec<String>, Vec<String>) {
        let data = self.read();
        let names = |set: &BTreeSet<Arc<str>>| set.iter().map(|s| s.to_string()).collect();
        (names(&data.queues), names(&data.types))
    }

    /// Tasks by queue, then by state.
    pub(crate) fn counts(&self) -> Counts {
        let data = self.read();
        let mut by_queue: BTreeMap<Arc<str>, HashMap<TaskState, u64>> = BTreeMap::new();
        for entry in data.by_id.values() {
            *by_queue
                .entry(entry.queue.clone())
                .or_default()
                .entry(entry.state)
                .or_default() += 1;
        }
        Counts {
            by_queue: by_queue
                .into_iter()
                .map(|(queue, counts)| (queue.to_string(), counts))
                .collect(),
            status: data.status(),
        }
    }

    /// Up to `limit` tasks `filter` selects with ids before `before` (none: from the newest).
    pub(crate) fn list(&self, filter: &ListFilter, before: Option<&str>, limit: usize) -> ListPage {
        let data = self.read();
        let upper = before.map_or(Bound::Unbounded, Bound::Excluded);
        let mut rows = Vec::with_capacity(limit.min(1000));
        let mut more = false;
        for (id, entry) in data
            .by_id
            .range::<str, _>((Bound::Unbounded, upper))
            .rev()
            .filter(|(id, entry)| filter.matches(id, entry))
        {
            if rows.len() == limit {
                more = true;
                break;
            }
            rows.push((id.clone(), entry.clone()));
        }
        let matching = data
            .by_id
            .iter()
            .filter(|(id, entry)| filter.matches(id, entry))
            .count();
        let next = if more {
            rows.last().map(|(id, _)| id.clone())
        } else {
            None
        };
        ListPage {
            rows,
            next,
            matching,
            status: data.status(),
        }
    }
}

/// Builds the index, then keeps it current until `stop`.
pub(crate) async fn keep_current(state: Arc<AppState>, stop: CancellationToken) {
    loop {
        if let Err(e) = state.index.refresh(&state.client).await {
            tracing::warn!(error = %e, "refreshing the dashboard's task index");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = state.index.changed.notified() => {}
            _ = tokio::time::sleep(REFRESH_EVERY) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(DEBOUNCE) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, queue: &str, state: TaskState) -> Task {
        let mut task = Task::new("t:x", &())
            .expect("task")
            .with_id(id)
            .expect("id");
        task.queue = queue.into();
        task.state = state;
        task
    }

    #[test]
    fn later_saves_win_and_pages_run_newest_first() {
        let mut data = Data::default();
        data.apply(
            vec![
                (1, task("a", "Q", TaskState::New)),
                (2, task("b", "Q", TaskState::New)),
                (3, task("c", "R", TaskState::Complete)),
            ],
            3,
        );
        // An older copy never replaces a newer one.
        data.apply(
            vec![
                (4, task("a", "Q", TaskState::Retry)),
                (1, task("c", "R", TaskState::New)),
            ],
            4,
        );
        assert_eq!(data.last_seq, 4);
        assert_eq!(data.queues.len(), 2);
        let index = TaskIndex::new();
        *index.write() = data;
        let counts = index.counts().by_queue;
        assert_eq!(counts["Q"][&TaskState::Retry], 1);
        assert_eq!(counts["Q"][&TaskState::New], 1);
        assert_eq!(counts["R"][&TaskState::Complete], 1);

        let all = ListFilter::default();
        let first = index.list(&all, None, 2);
        let ids: Vec<_> = first.rows.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        assert_eq!(first.matching, 3);
        let next = first.next.expect("more");
        let second = index.list(&all, Some(&next), 2);
        assert_eq!(second.rows.len(), 1);
        assert!(second.next.is_none());

        let retry = ListFilter {
            states: vec![TaskState::Retry],
            ..Default::default()
        };
        let page = index.list(&retry, None, 10);
        assert_eq!(page.matching, 1);
        assert_eq!(page.rows[0].0, "a");
        index.remove("a");
        assert_eq!(index.list(&retry, None, 10).matching, 0);
    }
}
