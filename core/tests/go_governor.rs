// SPDX-License-Identifier: Apache-2.0
//! choria's governor, both ways against the real go-choria v0.29.4 library
//! (`providers/governor/streams`, through tests/interop/go/cmd/govdriver): go-choria's own test
//! sequence run half by Go, half by jetjobs on one server. A governor Go creates is read by
//! jetjobs and one jetjobs creates is read by Go (limit, max age, subject, and the whole stream
//! configuration alike); a subject update by either is seen by the other; last-active is empty
//! on a fresh governor for both; a lease taken by Go is evicted by jetjobs (returning the Go
//! holder's name) and the other way round, a second eviction failing in both; `list` by
//! collective agrees. The campaign mix of Go, Rust, Python and Node on one governor is
//! bindings-node/__test__/governor_interop.test.mjs (it needs every package built).

mod common;

use std::time::Duration;

use common::NatsServer;
use common::go::{govdriver, govdriver_run};
use jetjobs::{CancellationToken, ClientOptions, ErrorKind, Governor, GovernorManager};
use serde_json::Value;

/// The stream's configuration as the server holds it, as JSON.
async fn stream_config(nats: &async_nats::Client, name: &str) -> Value {
    let js = async_nats::jetstream::new(nats.clone());
    let mut stream = js
        .get_stream(jetjobs::governor_stream(name))
        .await
        .expect("stream");
    let info = stream.info().await.expect("stream info");
    serde_json::to_value(&info.config).expect("config as JSON")
}

#[tokio::test]
async fn governors_are_shared_with_go_choria_both_ways() {
    let Some(go) = govdriver() else { return };
    let server = NatsServer::start();
    let url = server.url.as_str();
    let client = ClientOptions::new().connect(url).await.expect("connects");
    let run = |args: &[&str]| {
        let mut all = vec![args[0], "-url", url];
        all.extend_from_slice(&args[1..]);
        govdriver_run(go, &all)
    };

    // 1. Reads never create, in either language.
    let (code, out) = run(&["new", "-name", "TEST"]);
    assert_eq!((code, out["error"].as_str()), (2, Some("unknown governor")));
    let unknown = GovernorManager::load(&client, "TEST").await.err();
    assert_eq!(unknown.map(|e| e.kind()), Some(ErrorKind::GovernorNotFound));

    // 2. Created by Go, read by jetjobs; created by jetjobs, read by Go.
    let (code, out) = run(&[
        "new",
        "-name",
        "GOV1",
        "-limit",
        "100",
        "-max-age",
        "2m",
        "-subject",
        "choria.governor.GOV1",
    ]);
    assert_eq!(code, 0, "{out}");
    let from_go = GovernorManager::load(&client, "GOV1").await.expect("load");
    assert_eq!(
        (from_go.name(), from_go.limit(), from_go.max_age()),
        ("GOV1", 100, Duration::from_secs(120))
    );
    assert_eq!(
        (from_go.subject(), from_go.replicas()),
        ("choria.governor.GOV1", 1)
    );
    let collective = jetjobs::collective_subject("choria", "RJ1");
    GovernorManager::create(
        &client,
        "RJ1",
        7,
        Duration::from_secs(180),
        1,
        Some(&collective),
    )
    .await
    .expect("created");
    let (code, out) = run(&["info", "-name", "RJ1"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["limit"], 7);
    assert_eq!(out["max_age_ms"], 180_000);
    assert_eq!(out["subject"], "choria.governor.RJ1");
    assert_eq!(
        (&out["replicas"], &out["stream"]),
        (&1.into(), &"GOVERNOR_RJ1".into())
    );

    // The two streams are configured alike, but for what differs by design.
    let nats = async_nats::connect(url).await.expect("nats");
    let mut configs = Vec::new();
    for (name, description) in [
        ("GOV1", "Concurrency Governor GOV1"),
        ("RJ1", "Concurrency Governor RJ1"),
    ] {
        let mut config = stream_config(&nats, name).await;
        assert_eq!(config["description"], description);
        let object = config.as_object_mut().expect("object");
        for differs in ["name", "description", "subjects", "max_msgs", "max_age"] {
            object.remove(differs);
        }
        configs.push(config);
    }
    assert_eq!(
        configs[0], configs[1],
        "Go's and jetjobs' governor streams differ"
    );
    assert_eq!(
        (
            &configs[0]["discard"],
            &configs[0]["storage"],
            &configs[0]["retention"]
        ),
        (&"new".into(), &"file".into(), &"limits".into())
    );

    // 3. A subject update by either is seen by the other.
    let (code, out) = run(&[
        "new", "-name", "GOV1", "-limit", "100", "-max-age", "2m", "-subject", "$BOB", "-update",
    ]);
    assert_eq!((code, out["subject"].as_str()), (0, Some("$BOB")));
    let mut from_go = GovernorManager::load(&client, "GOV1").await.expect("load");
    assert_eq!(from_go.subject(), "$BOB");
    from_go
        .set_subject("choria.governor.GOV1")
        .await
        .expect("subject set");
    let (_, out) = run(&["info", "-name", "GOV1"]);
    assert_eq!(out["subject"], "choria.governor.GOV1");

    // 4. No last-active time on a fresh governor.
    let (_, out) = run(&["last-active", "-name", "RJ1"]);
    assert_eq!(out["zero"], true);
    assert_eq!(from_go.last_active().await.expect("last active"), None);

    // 5. A lease Go took, evicted by jetjobs; a second eviction fails in both.
    let (code, out) = run(&[
        "start",
        "-name",
        "GOV1",
        "-subject",
        "choria.governor.GOV1",
        "-holder",
        "go.eviction",
    ]);
    assert_eq!(code, 0, "{out}");
    let go_seq = out["seq"].as_u64().expect("seq");
    assert_eq!(from_go.active().await.expect("active"), 1);
    assert_eq!(
        from_go.leases().await.expect("leases")[0].1,
        "go.eviction",
        "jetjobs lists Go's lease"
    );
    assert_eq!(from_go.evict(go_seq).await.expect("evicted"), "go.eviction");
    let again = from_go.evict(go_seq).await.err().map(|e| e.kind());
    assert_eq!(again, Some(ErrorKind::LeaseNotFound));
    let seq = go_seq.to_string();
    let (code, out) = run(&["evict", "-name", "GOV1", "-seq", &seq]);
    assert_eq!((code, &out["code"]), (1, &10037.into()), "{out}");
    assert!(from_go.last_active().await.expect("last active").is_some());

    // ... and a lease jetjobs took, evicted by Go.
    let governor = Governor::new(&client, "RJ1")
        .expect("governor")
        .subject(collective.as_str());
    let lease = governor
        .start(
            "rust.eviction",
            Some(Duration::from_secs(10)),
            &CancellationToken::new(),
        )
        .await
        .expect("a slot");
    let seq = lease.seq().to_string();
    let (code, out) = run(&["evict", "-name", "RJ1", "-seq", &seq]);
    assert_eq!(
        (code, out["name"].as_str()),
        (0, Some("rust.eviction")),
        "{out}"
    );
    let (code, out) = run(&["evict", "-name", "RJ1", "-seq", &seq]);
    assert_eq!((code, &out["code"]), (1, &10037.into()), "{out}");
    let released = lease.release().await.err().map(|e| e.kind());
    assert_eq!(released, Some(ErrorKind::LeaseNotFound));
    let (_, out) = run(&["last-active", "-name", "RJ1"]);
    assert_eq!(out["zero"], false);
    let age = chrono::Utc::now().timestamp_millis() - out["unix_ms"].as_i64().expect("ms");
    assert!((0..10_000).contains(&age), "last active {age} ms ago");

    // 6. `list` by collective agrees; a governor on the library default subject is in neither.
    GovernorManager::create(&client, "HIDDEN", 1, Duration::ZERO, 1, None)
        .await
        .expect("created");
    let (_, out) = run(&["list", "-collective", "choria"]);
    let from_go: Vec<String> = serde_json::from_value(out["governors"].clone()).expect("names");
    let ours = GovernorManager::list(&client, "choria")
        .await
        .expect("list");
    assert_eq!(
        (from_go, ours),
        (
            vec!["GOV1".to_string(), "RJ1".into()],
            vec!["GOV1".to_string(), "RJ1".into()]
        )
    );
    let (_, out) = run(&["list", "-collective", "other"]);
    assert_eq!(out["governors"], serde_json::json!([]));
}
