// SPDX-License-Identifier: Apache-2.0
//! choria's governor against a real server, following go-choria's own test sequence: loading an
//! unknown governor, name/limit/max age/subject, a subject update, no last-active time when empty,
//! eviction returning the holder's name (a second eviction is a typed error), and 1,000
//! campaigns on a limit-100 governor never holding more than 100 slots at once. Also the "max
//! per period" mode (leases kept until max age) and a usable instance after a failed campaign.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::NatsServer;
use jetjobs::{CancellationToken, Client, ClientOptions, ErrorKind, Governor, GovernorManager};

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
