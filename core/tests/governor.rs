// SPDX-License-Identifier: Apache-2.0
//! choria's governor against a real server, following go-choria's own test sequence: loading an
//! unknown governor, name/limit/max age/subject, a subject update, no last-active time when empty,
//! eviction returning the holder's name (a second eviction is a typed error), and 1,000
//! campaigns on a limit-100 governor never holding more than 100 slots at once. Also the "max
//! per period" mode (leases kept until max age) and a usable instance after a failed campaign.
//! And choria's lifecycle events: enter, exit (released or dropped), timeouts and eviction.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::NatsServer;
use futures::StreamExt as _;
use jetjobs::{
    CancellationToken, Client, ClientOptions, ErrorKind, Governor, GovernorEvent,
    GovernorEventType, GovernorManager,
};

async fn connect(server: &NatsServer) -> Client {
    ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("client connects")
}

#[tokio::test]
async fn governors_follow_choria_semantics() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let unknown = GovernorManager::load(&client, "TEST")
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(
        unknown,
        Some(ErrorKind::GovernorNotFound),
        "reads never create"
    );

    let manager = GovernorManager::create(&client, "TEST", 100, Duration::from_secs(120), 1, None)
        .await
        .expect("created");
    assert_eq!(manager.name(), "TEST");
    assert_eq!(manager.limit(), 100);
    assert_eq!(manager.max_age(), Duration::from_secs(120));
    assert_eq!(manager.subject(), "$GOVERNOR.campaign.TEST");
    let manager = GovernorManager::create(
        &client,
        "TEST",
        100,
        Duration::from_secs(120),
        1,
        Some("$BOB"),
    )
    .await
    .expect("updated");
    assert_eq!(manager.subject(), "$BOB");
    assert_eq!(manager.last_active().await.expect("last active"), None);

    let governor = Governor::new(&client, "TEST")
        .expect("governor")
        .subject("$BOB");
    let lease = governor
        .start("testing.eviction", None, &CancellationToken::new())
        .await
        .expect("a slot");
    assert_eq!(manager.active().await.expect("active"), 1);
    assert_eq!(
        manager.evict(lease.seq()).await.expect("evicted"),
        "testing.eviction"
    );
    let again = manager.evict(lease.seq()).await.err().map(|e| e.kind());
    assert_eq!(again, Some(ErrorKind::LeaseNotFound));
    let released = lease.release().await.err().map(|e| e.kind());
    assert_eq!(
        released,
        Some(ErrorKind::LeaseNotFound),
        "an evicted lease cannot be released"
    );

    // 1,000 campaigns, each holding its slot 50 ms: never more than 100 at once.
    let holding = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut campaigns = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let governor = governor.clone();
        let (holding, peak) = (holding.clone(), peak.clone());
        campaigns.spawn(async move {
            let lease = governor
                .start(
                    &format!("worker-{i}"),
                    Some(Duration::from_secs(60)),
                    &CancellationToken::new(),
                )
                .await
                .expect("a slot in time");
            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            holding.fetch_sub(1, Ordering::SeqCst);
            lease.release().await.expect("released");
            lease
                .release()
                .await
                .expect("a second release does nothing");
        });
    }
    while let Some(done) = campaigns.join_next().await {
        done.expect("campaign ran");
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 100 && peak > 1, "peak concurrency {peak}");
    assert_eq!(manager.active().await.expect("active"), 0);
    let last = manager
        .last_active()
        .await
        .expect("last active")
        .expect("some lease was taken");
    assert!((chrono::Utc::now() - last).num_seconds() < 10);
}

#[tokio::test]
async fn per_period_leases_are_kept_until_max_age_and_failed_campaigns_leave_the_instance_usable() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let mut manager = GovernorManager::create(
        &client,
        "CRON",
        2,
        Duration::from_secs(2),
        1,
        Some("choria.governor.CRON"),
    )
    .await
    .expect("created");
    let governor = Governor::new(&client, "CRON")
        .expect("governor")
        .subject("choria.governor.CRON")
        .without_leaving();
    for host in ["a", "b"] {
        let lease = governor
            .try_start(host)
            .await
            .expect("campaign")
            .expect("a slot");
        lease.release().await.expect("kept, not removed");
    }
    assert!(
        governor.try_start("c").await.expect("campaign").is_none(),
        "two runs per period"
    );
    let waited = governor
        .start(
            "c",
            Some(Duration::from_millis(300)),
            &CancellationToken::new(),
        )
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(waited, Some(ErrorKind::Timeout));
    // The period ends (max age), and the same instance gets a slot.
    governor
        .start(
            "c",
            Some(Duration::from_secs(10)),
            &CancellationToken::new(),
        )
        .await
        .expect("a slot in the next period");
    assert_eq!(
        GovernorManager::list(&client, "choria")
            .await
            .expect("list"),
        ["CRON"]
    );

    manager.set_limit(5).await.expect("limit raised");
    manager
        .set_max_age(Duration::from_secs(30))
        .await
        .expect("max age below the server's default duplicate window");
    let loaded = GovernorManager::load(&client, "CRON").await.expect("load");
    assert_eq!(
        (loaded.limit(), loaded.max_age()),
        (5, Duration::from_secs(30))
    );
    manager.reset().await.expect("reset");
    assert_eq!(manager.active().await.expect("active"), 0);
    manager.delete().await.expect("deleted");
    let gone = GovernorManager::load(&client, "CRON")
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(gone, Some(ErrorKind::GovernorNotFound));
}

/// The next lifecycle event and its subject.
async fn next_event(events: &mut async_nats::Subscriber) -> (String, GovernorEvent) {
    let message = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event in time")
        .expect("subscribed");
    let event = GovernorEvent::from_json(&message.payload).expect("a governor event");
    (message.subject.to_string(), event)
}

#[tokio::test]
async fn lifecycle_events_report_enter_exit_timeouts_and_eviction_as_choria() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let mut events = client
        .nats()
        .subscribe("choria.lifecycle.event.governor.>")
        .await
        .expect("subscribed");
    client.nats().flush().await.expect("flushed");
    let manager = GovernorManager::create(&client, "LIFE", 1, Duration::from_secs(60), 1, None)
        .await
        .expect("created")
        .lifecycle("CLI")
        .expect("a component");
    let governor = Governor::new(&client, "LIFE")
        .expect("governor")
        .interval(Duration::from_millis(20))
        .lifecycle("worker")
        .expect("a component");
    assert_eq!(
        governor.clone().lifecycle("a b").err().map(|e| e.kind()),
        Some(ErrorKind::InvalidOption),
        "a component ends a subject"
    );
    let cancel = CancellationToken::new();

    let first = governor
        .start("holder-1", None, &cancel)
        .await
        .expect("a slot");
    first.release().await.expect("released");
    first
        .release()
        .await
        .expect("a second release does nothing");
    let dropped = governor
        .start("dropper", None, &cancel)
        .await
        .expect("a slot");
    let dropped_seq = dropped.seq();
    drop(dropped); // given back in the background, with its exit
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_event(&mut events).await);
    }
    let wait_empty = async {
        while manager.active().await.expect("active") != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait_empty)
        .await
        .expect("the dropped lease is given back");

    let held = governor
        .start("holder-2", None, &cancel)
        .await
        .expect("a slot");
    let waited = governor
        .clone()
        .lifecycle_identity("host-1")
        .start("waiter", Some(Duration::from_millis(200)), &cancel)
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(waited, Some(ErrorKind::Timeout));
    assert_eq!(
        manager.evict(held.seq()).await.expect("evicted"),
        "holder-2"
    );
    for _ in 0..3 {
        seen.push(next_event(&mut events).await);
    }

    let summary: Vec<(&str, GovernorEventType, &str, u64)> = seen
        .iter()
        .map(|(_, e)| {
            (
                e.component.as_str(),
                e.event_type,
                e.identity.as_str(),
                e.sequence,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("worker", GovernorEventType::Enter, "holder-1", first.seq()),
            ("worker", GovernorEventType::Exit, "holder-1", first.seq()),
            ("worker", GovernorEventType::Enter, "dropper", dropped_seq),
            ("worker", GovernorEventType::Exit, "dropper", dropped_seq),
            ("worker", GovernorEventType::Enter, "holder-2", held.seq()),
            ("worker", GovernorEventType::Timeout, "host-1", 0),
            ("CLI", GovernorEventType::Eviction, "holder-2", held.seq()),
        ]
    );
    for (subject, event) in &seen {
        assert_eq!(
            subject,
            &format!("choria.lifecycle.event.governor.{}", event.component)
        );
        assert_eq!(event.protocol, "io.choria.lifecycle.v1.governor");
        assert_eq!(event.governor, "LIFE");
        assert!((chrono::Utc::now().timestamp() - event.timestamp).abs() < 60);
    }
    let ids: std::collections::HashSet<&str> = seen.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids.len(), seen.len(), "every event has its own id");
    // The wire form, field by field, as choria's `GovernorEvent` encodes it.
    let (_, eviction) = &seen[6];
    let json: serde_json::Value =
        serde_json::from_slice(&eviction.to_json().expect("encoded")).expect("json");
    assert_eq!(json["event_type"], "eviction");
    assert_eq!(json["sequence"], held.seq());
    assert!(json["timestamp"].is_i64() && json["id"].is_string());
    assert_eq!(
        eviction.to_string(),
        format!(
            "[governor] holder-2: evicted from slot {} on LIFE",
            held.seq()
        )
    );
}
