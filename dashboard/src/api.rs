// SPDX-License-Identifier: Apache-2.0
//! The routes: the page and its assets, and the JSON API under `/api` it uses.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use jetjobs::{
    CancellationToken, Client, ErrorKind, GovernorManager, Queue, QueueHandle, ScheduledTask, Task,
    TaskScheduler, TaskState, Timestamp,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::assets;
use crate::auth::{self, Auth};
use crate::index::{Entry, ListFilter, Status, TaskIndex};
use crate::live::Live;

/// Tasks per page unless asked otherwise, and the most a page holds.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// States in the order the dashboard shows them.
pub(crate) const STATES: [TaskState; 9] = [
    TaskState::New,
    TaskState::Blocked,
    TaskState::Active,
    TaskState::Retry,
    TaskState::Complete,
    TaskState::Expired,
    TaskState::Terminated,
    TaskState::Unreachable,
    TaskState::QueueError,
];
/// What the `failed` state filter stands for.
const FAILED: [TaskState; 4] = [
    TaskState::Expired,
    TaskState::Terminated,
    TaskState::Unreachable,
    TaskState::QueueError,
];

pub(crate) struct AppState {
    pub(crate) client: Client,
    pub(crate) auth: Auth,
    pub(crate) index: TaskIndex,
    pub(crate) live: Live,
    queues: tokio::sync::Mutex<HashMap<String, QueueHandle>>,
}

impl AppState {
    pub(crate) fn new(client: Client, auth: Auth) -> Self {
        Self {
            client,
            auth,
            index: TaskIndex::new(),
            live: Live::new(),
            queues: tokio::sync::Mutex::default(),
        }
    }

    /// A handle on the existing queue `name` (the client's default queue for no name).
    async fn queue(&self, name: &str) -> jetjobs::Result<QueueHandle> {
        if name.is_empty() {
            return Ok(self.client.default_queue().clone());
        }
        let mut queues = self.queues.lock().await;
        if let Some(handle) = queues.get(name) {
            return Ok(handle.clone());
        }
        let handle = self.client.open_queue(Queue::bind(name)).await?;
        queues.insert(name.to_string(), handle.clone());
        Ok(handle)
    }

    /// Brings the index up to date after an action, so the next listing shows its effect.
    async fn reindex(&self) {
        if let Err(e) = self.index.refresh(&self.client).await {
            tracing::warn!(error = %e, "refreshing the dashboard's task index");
        }
    }
}

pub(crate) fn router(state: Arc<AppState>, stop: CancellationToken) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/index.html", get(assets::index))
        .route("/assets/{file}", get(assets::file))
        .route("/api/overview", get(overview))
        .route("/api/tasks", get(list_tasks))
        .route("/api/tasks/{id}", get(task).delete(delete_task))
        .route("/api/tasks/{id}/retry", post(retry_task))
        .route("/api/queues", get(queues))
        .route("/api/queues/{name}/purge", post(purge_queue))
        .route("/api/schedules", get(schedules).post(add_schedule))
        .route("/api/schedules/{name}", delete(remove_schedule))
        .route("/api/governors", get(governors))
        .route("/api/governors/{name}", get(governor))
        .route("/api/governors/{name}/evict", post(evict))
        .route("/api/pools/{name}", get(pool))
        .route("/api/events", get(events))
        .fallback(not_found)
        .layer(Extension(stop))
        .layer(middleware::from_fn_with_state(state.clone(), auth::check))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn security_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// An API failure: a status and `{"error": message, "kind": code}`.
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "BadRequest",
        }
    }
}

impl From<jetjobs::Error> for ApiError {
    fn from(e: jetjobs::Error) -> Self {
        use ErrorKind as K;
        let status = match e.kind() {
            K::TaskNotFound
            | K::QueueNotFound
            | K::QueueConsumerNotFound
            | K::KeyNotFound
            | K::ScheduleNotFound
            | K::GovernorNotFound
            | K::LeaseNotFound => StatusCode::NOT_FOUND,
            K::TaskCannotEnqueue
            | K::TaskUpdateFailed
            | K::TaskAlreadyExists
            | K::ScheduleExists
            | K::KeyExists
            | K::RevisionMismatch => StatusCode::CONFLICT,
            K::InvalidTaskType
            | K::InvalidTaskId
            | K::InvalidKey
            | K::InvalidQueueName
            | K::InvalidPayload
            | K::InvalidOption
            | K::InvalidDependencies
            | K::InvalidSchedule
            | K::InvalidScheduleName
            | K::ScheduleDeadlineTooShort
            | K::PayloadTooLarge => StatusCode::BAD_REQUEST,
            K::Connection | K::Closed | K::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: e.to_string(),
            kind: e.code(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.message, "kind": self.kind})),
        )
            .into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such page".into(),
        kind: "NotFound",
    }
}

fn time(t: Timestamp) -> String {
    t.to_utc().to_rfc3339()
}

fn row(id: &str, entry: &Entry) -> Value {
    json!({
        "id": id,
        "type": &*entry.task_type,
        "queue": &*entry.queue,
        "state": entry.state.as_str(),
        "tries": entry.tries,
        "created": time(entry.created),
    })
}

fn task_row(task: &Task) -> Value {
    json!({
        "id": task.id,
        "type": task.task_type,
        "queue": task.queue,
        "state": task.state.as_str(),
        "tries": task.tries,
        "created": time(task.created),
    })
}

fn index_status(status: &Status) -> Value {
    json!({
        "ready": status.ready,
        "indexed": status.indexed,
        "stored": status.stored,
        "last_seq": status.last_seq,
    })
}

async fn overview(State(state): State<Arc<AppState>>) -> ApiResult {
    let admin = state.client.admin();
    let names = admin.queue_names().await?;
    let infos = futures::future::join_all(names.iter().map(|name| admin.queue_info(name))).await;
    let counts = state.index.counts();
    let mut totals: BTreeMap<&'static str, u64> = STATES.iter().map(|s| (s.as_str(), 0)).collect();
    let mut queues: BTreeMap<String, Value> = BTreeMap::new();
    let mut workers = (0u64, 0u64);
    for (name, info) in names.iter().zip(infos) {
        let mut queue = json!({"name": name, "exists": true});
        match info {
            Ok(info) => {
                workers.0 += info.waiting_pulls;
                workers.1 += info.in_flight;
                queue["items"] = json!(info.items);
                queue["in_flight"] = json!(info.in_flight);
                queue["waiting_pulls"] = json!(info.waiting_pulls);
                queue["max_concurrent"] = json!(info.queue.max_concurrent);
                queue["max_tries"] = json!(info.queue.max_tries);
            }
            Err(e) => queue["error"] = json!(e.to_string()),
        }
        queues.insert(name.clone(), queue);
    }
    for (name, by_state) in &counts.by_queue {
        let queue = queues
            .entry(name.clone())
            .or_insert_with(|| json!({"name": name, "exists": false}));
        let mut total = 0;
        let mut states = serde_json::Map::new();
        for s in STATES {
            let n = by_state.get(&s).copied().unwrap_or(0);
            total += n;
            *totals.entry(s.as_str()).or_default() += n;
            states.insert(s.as_str().into(), json!(n));
        }
        queue["counts"] = Value::Object(states);
        queue["total"] = json!(total);
    }
    for queue in queues.values_mut() {
        if queue.get("counts").is_none() {
            queue["counts"] = json!(
                STATES
                    .iter()
                    .map(|s| (s.as_str(), 0))
                    .collect::<BTreeMap<_, _>>()
            );
            queue["total"] = json!(0);
        }
    }
    let leader = TaskScheduler::leader(&state.client).await;
    let now = Utc::now();
    Ok(Json(json!({
        "now": now.to_rfc3339(),
        "started": state.live.started().to_rfc3339(),
        "states": STATES.map(|s| s.as_str()),
        "queues": queues.into_values().collect::<Vec<_>>(),
        "totals": totals,
        "total": totals.values().sum::<u64>(),
        "index": index_status(&counts.status),
        "rates": state.live.rates(now),
        "workers": {"waiting_pulls": workers.0, "in_flight": workers.1},
        "scheduler": {
            "leader": leader.as_ref().ok().cloned().flatten(),
            "error": leader.err().map(|e| e.to_string()),
            "elections": state.live.elections(),
        },
    })))
}

#[derive(Debug, Default, Deserialize)]
struct TasksQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    queue: String,
    #[serde(default, rename = "type")]
    task_type: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    cursor: String,
    limit: Option<usize>,
}

fn parse_states(text: &str) -> Result<Vec<TaskState>, ApiError> {
    let mut states = Vec::new();
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "failed" {
            states.extend(FAILED);
            continue;
        }
        let state = TaskState::from_str(name)
            .map_err(|_| ApiError::bad_request(format!("unknown task state {name:?}")))?;
        states.push(state);
    }
    Ok(states)
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

async fn list_tasks(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TasksQuery>,
) -> ApiResult {
    let filter = ListFilter {
        states: parse_states(&query.state)?,
        queue: non_empty(&query.queue),
        task_type: non_empty(&query.task_type),
        id: non_empty(&query.id),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let cursor = non_empty(&query.cursor);
    let page = state.index.list(&filter, cursor.as_deref(), limit);
    let mut rows: Vec<Value> = page.rows.iter().map(|(id, e)| row(id, e)).collect();
    let mut matching = page.matching;
    // A task stored a moment ago may not be indexed yet: look an exact id up.
    if let Some(id) = &filter.id
        && matching == 0
        && cursor.is_none()
        && let Ok(task) = state.client.load_task(id).await
    {
        let keep = (filter.states.is_empty() || filter.states.contains(&task.state))
            && filter.queue.as_ref().is_none_or(|q| q == &task.queue)
            && filter
                .task_type
                .as_ref()
                .is_none_or(|t| t == &task.task_type);
        if keep {
            rows.push(task_row(&task));
            matching = 1;
        }
    }
    let (queues, types) = state.index.facets();
    Ok(Json(json!({
        "tasks": rows,
        "next_cursor": page.next,
        "matching": matching,
        "limit": limit,
        "index": index_status(&page.status),
        "facets": {"queues": queues, "types": types, "states": STATES.map(|s| s.as_str())},
    })))
}

fn payload_json(payload: Option<&[u8]>) -> Value {
    let Some(bytes) = payload else {
        return Value::Null;
    };
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => json!({"json": value, "bytes": bytes.len()}),
        Err(_) => match std::str::from_utf8(bytes) {
            Ok(text) => json!({"text": text, "bytes": bytes.len()}),
            Err(_) => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                json!({"base64": encoded, "bytes": bytes.len()})
            }
        },
    }
}

async fn task(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    let task = state.client.load_task(&id).await?;
    let mut dependencies = Vec::new();
    for dep in &task.dependencies {
        let known = match state.index.get(dep) {
            Some(entry) => Some(entry.state),
            None => state.client.load_task(dep).await.ok().map(|t| t.state),
        };
        dependencies.push(json!({
            "id": dep,
            "state": known.map(TaskState::as_str),
            "has_result": task.dependency_results.get(dep).is_some_and(Option::is_some),
        }));
    }
    let mut timeline: Vec<(DateTime<Utc>, Value)> = Vec::new();
    let mut stamp = |t: Option<Timestamp>, what: &str| {
        if let Some(t) = t {
            timeline.push((
                t.to_utc(),
                json!({"at": time(t), "what": what, "source": "task"}),
            ));
        }
    };
    stamp(Some(task.created), "created");
    stamp(task.run_at, "due");
    stamp(task.tried, "last tried");
    stamp(task.result.as_ref().map(|r| r.completed), "completed");
    stamp(task.deadline, "deadline");
    for event in state.live.timeline(&task.id) {
        let at = DateTime::parse_from_rfc3339(&event.at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        timeline.push((
            at,
            json!({
                "at": event.at,
                "what": format!("state {}", event.state),
                "state": event.state,
                "tries": event.tries,
                "last_error": event.last_error,
                "source": "event",
            }),
        ));
    }
    timeline.sort_by_key(|(at, _)| *at);
    Ok(Json(json!({
        "id": task.id,
        "type": task.task_type,
        "queue": task.queue,
        "state": task.state.as_str(),
        "tries": task.tries,
        "max_tries": task.max_tries,
        "created": time(task.created),
        "tried": task.tried.map(time),
        "deadline": task.deadline.map(time),
        "run_at": task.run_at.map(time),
        "last_err": task.last_err,
        "payload": payload_json(task.payload.as_deref()),
        "result": task.result.as_ref().map(|r| json!({"payload": r.payload, "completed": time(r.completed)})),
        "dependencies": dependencies,
        "load_dependencies": task.load_dependencies,
        "order_key": task.order_key,
        "waiting_for": task.waiting_for,
        "signed": !task.signature.is_empty(),
        "final": task.state.is_final(),
        "timeline": timeline.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "events_since": state.live.started().to_rfc3339(),
    })))
}

async fn retry_task(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    let stored = state.client.load_task(&id).await?;
    let task = state.queue(&stored.queue).await?.retry_task(&id).await?;
    state.reindex().await;
    Ok(Json(
        json!({"id": task.id, "state": task.state.as_str(), "queue": task.queue}),
    ))
}

async fn delete_task(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    state.client.admin().delete_task(&id).await?;
    state.index.remove(&id);
    Ok(Json(json!({"deleted": id})))
}

async fn queues(State(state): State<Arc<AppState>>) -> ApiResult {
    let admin = state.client.admin();
    let mut out = Vec::new();
    for name in admin.queue_names().await? {
        let info = admin.queue_info(&name).await?;
        out.push(json!({
            "name": name,
            "items": info.items,
            "in_flight": info.in_flight,
            "waiting_pulls": info.waiting_pulls,
            "max_concurrent": info.queue.max_concurrent,
            "max_tries": info.queue.max_tries,
            "max_run_time_secs": info.queue.max_run_time.as_secs_f64(),
            "max_age_secs": info.queue.max_age.as_secs(),
        }));
    }
    Ok(Json(json!({"queues": out})))
}

async fn purge_queue(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    let admin = state.client.admin();
    let before = admin.queue_info(&name).await?.items;
    admin.purge_queue(&name).await?;
    Ok(Json(json!({"purged": name, "items_removed": before})))
}

fn schedule_json(schedule: &ScheduledTask, now: DateTime<Utc>) -> Value {
    json!({
        "name": schedule.name,
        "schedule": schedule.schedule,
        "queue": schedule.queue,
        "task_type": schedule.task_type,
        "payload": payload_json(schedule.payload.as_deref()),
        "deadline_secs": schedule.deadline.as_secs(),
        "max_tries": schedule.max_tries,
        "created_at": time(schedule.created_at),
        "next": schedule.cron().ok().and_then(|c| c.next_after(now)).map(|t| t.to_rfc3339()),
    })
}

async fn schedules(State(state): State<Arc<AppState>>) -> ApiResult {
    let now = Utc::now();
    let all = state.client.schedules().await?;
    Ok(Json(json!({
        "schedules": all.iter().map(|s| schedule_json(s, now)).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
struct NewSchedule {
    name: String,
    schedule: String,
    queue: String,
    task_type: String,
    /// JSON text; empty for no payload.
    #[serde(default)]
    payload: String,
    /// Each task's deadline after its creation; 0 for none.
    #[serde(default)]
    deadline_secs: u64,
    #[serde(default)]
    max_tries: Option<i64>,
}

async fn add_schedule(
    State(state): State<Arc<AppState>>,
    Json(new): Json<NewSchedule>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let payload = match new.payload.trim() {
        "" => None,
        text => {
            serde_json::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("the payload is not JSON: {e}")))?;
            Some(bytes::Bytes::copy_from_slice(text.as_bytes()))
        }
    };
    let mut task = Task::with_raw_payload(new.task_type.trim(), payload)?;
    if new.deadline_secs > 0 {
        task = task.with_deadline(Timestamp::now().add(Duration::from_secs(new.deadline_secs)));
    }
    if let Some(max_tries) = new.max_tries {
        task = task.with_max_tries(max_tries);
    }
    let schedule = ScheduledTask::new(
        new.name.trim(),
        new.schedule.trim(),
        new.queue.trim(),
        &task,
    )?;
    let created = state.client.create_schedule(&schedule).await?;
    Ok((
        StatusCode::CREATED,
        Json(schedule_json(&created, Utc::now())),
    ))
}

async fn remove_schedule(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult {
    state.client.remove_schedule(&name).await?;
    Ok(Json(json!({"removed": name})))
}

#[derive(Debug, Deserialize)]
struct GovernorsQuery {
    #[serde(default)]
    collective: String,
}

async fn governors(
    State(state): State<Arc<AppState>>,
    Query(query): Query<GovernorsQuery>,
) -> ApiResult {
    let collective = non_empty(&query.collective).unwrap_or_else(|| "choria".into());
    let names = GovernorManager::list(&state.client, &collective).await?;
    let mut out = Vec::new();
    for name in names {
        match GovernorManager::load(&state.client, &name).await {
            Ok(manager) => out.push(json!({
                "name": name,
                "limit": manager.limit(),
                "active": manager.active().await.ok(),
                "max_age_secs": manager.max_age().as_secs_f64(),
                "subject": manager.subject(),
            })),
            Err(e) => out.push(json!({"name": name, "error": e.to_string()})),
        }
    }
    Ok(Json(json!({"collective": collective, "governors": out})))
}

async fn governor(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    let manager = GovernorManager::load(&state.client, &name).await?;
    let leases = manager.leases().await?;
    let last_active = manager.last_active().await?;
    Ok(Json(json!({
        "name": manager.name(),
        "limit": manager.limit(),
        "max_age_secs": manager.max_age().as_secs_f64(),
        "subject": manager.subject(),
        "replicas": manager.replicas(),
        "active": leases.len(),
        "last_active": last_active.map(|t| t.to_rfc3339()),
        "leases": leases
            .iter()
            .map(|(seq, holder, taken)| json!({"seq": seq, "holder": holder, "taken": taken.to_rfc3339()}))
            .collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
struct Evict {
    seq: u64,
}

async fn evict(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(evict): Json<Evict>,
) -> ApiResult {
    let manager = GovernorManager::load(&state.client, &name)
        .await?
        .lifecycle("dashboard")?;
    let holder = manager.evict(evict.seq).await?;
    Ok(Json(json!({"evicted": evict.seq, "holder": holder})))
}

async fn pool(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> ApiResult {
    let snapshot = jetjobs::inspect_pool(&state.client, &name).await?;
    let member = |m: &jetjobs::PoolMember| json!({"id": m.id, "node": m.node, "created_at": time(m.created_at)});
    Ok(Json(json!({
        "pool": name,
        "nodes": snapshot.nodes.iter().map(member).collect::<Vec<_>>(),
        "workers": snapshot.workers.iter().map(member).collect::<Vec<_>>(),
        "jobs": snapshot.jobs.iter().map(|j| json!({
            "key": j.key,
            "owner": j.owner,
            "generation": j.generation,
            "state": j.state,
            "payload_len": j.payload_len,
        })).collect::<Vec<_>>(),
    })))
}

async fn events(
    State(state): State<Arc<AppState>>,
    Extension(stop): Extension<CancellationToken>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = state.live.sender.subscribe();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(message) => SseEvent::default().event(message.name).data(&*message.data),
            Err(RecvError::Lagged(missed)) => {
                SseEvent::default().event("lagged").data(missed.to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    Sse::new(stream.take_until(stop.cancelled_owned())).keep_alive(KeepAlive::default())
}
