//! Every metric of the crate moves when its event happens, read through the Prometheus
//! recorder that the chat example serves at `/metrics` (installed for this test binary alone),
//! from the text it renders.
#![cfg(feature = "metrics")]

mod support;

use ws_session_testkit::app;

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use support::chat::{Client, serve};
use support::redis_server::{RedisServer, unique_prefix};
use ws_session::hub::InboxLimits;
use ws_session::resume::Resume;
use ws_session::{MemoryStore, RedisStore};

/// The value of metric `name` (a histogram's summary: `name_count`) summed over the series
/// whose labels include `labels`, from the Prometheus text.
fn value(metrics: &PrometheusHandle, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .render()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, tags) = match series.split_once('{') {
                Some((metric, tags)) => (metric, tags.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = labels.iter().all(|(label, value)| {
                tags.split(',')
                    .any(|tag| tag == format!("{label}=\"{value}\""))
            });
            (metric == name && wanted).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Waits until `check` holds for metric `name`.
async fn eventually(
    snapshotter: &PrometheusHandle,
    name: &str,
    labels: &[(&str, &str)],
    check: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = value(snapshotter, name, labels);
        if check(now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} {labels:?} stayed at {now}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One test: the recorder is global, and the counters add up over the whole binary.
#[tokio::test(flavor = "current_thread")]
async fn every_metric_moves_with_its_event() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this binary");
    let s = &handle;
    let count = |name: &str| value(s, name, &[]);

    // Memory, a 200 ms resume window, one-message inboxes.
    let store = MemoryStore::with_ttl(Duration::from_secs(3600))
        .limits(app::limits())
        .sweep_interval(Duration::from_millis(20));
    let layer = app::session_layer(store.clone())
        .resume(Resume::within(Duration::from_millis(200)))
        .inbox_limits(InboxLimits::new(1, 1 << 20));
    let instance = serve(layer.clone(), app::router(layer)).await;

    let alice = Client::connect(instance.addr, "alice").await;
    assert_eq!(count("ws_session_sessions_created_total"), 1.0);
    assert_eq!(count("ws_session_open_sessions"), 1.0);
    assert!(count("ws_session_hub_subscriptions") > 0.0);
    let created = value(
        s,
        "ws_session_store_operation_seconds_count",
        &[("operation", "create_attached_session")],
    );
    assert_eq!(created, 1.0, "one timing of the create");

    // Detached, then resumed.
    let token = alice.token();
    alice.close().await;
    instance.settle(0).await;
    assert_eq!(count("ws_session_sessions_detached_total"), 1.0);
    assert_eq!(count("ws_session_detached_sessions"), 1.0);
    assert_eq!(count("ws_session_open_sessions"), 0.0);
    let alice = Client::resume(instance.addr, "alice", &token, None).await;
    assert!(alice.recovered());
    assert_eq!(count("ws_session_sessions_resumed_total"), 1.0);
    assert_eq!(count("ws_session_detached_sessions"), 0.0);

    // Refused, with its reason.
    let fresh = Client::resume(instance.addr, "alice", "not-a-token", None).await;
    assert!(!fresh.recovered());
    assert_eq!(
        value(
            s,
            "ws_session_resume_refused_total",
            &[("reason", "malformed")]
        ),
        1.0
    );

    // A takeover of alice's open connection.
    let mut alice = alice;
    let taken = Client::resume(instance.addr, "alice", &alice.token(), None).await;
    assert!(taken.recovered());
    assert_eq!(alice.close_code().await, Some(4002));
    assert_eq!(count("ws_session_takeovers_total"), 1.0);

    // A kick.
    let mut bob = Client::connect(instance.addr, "bob").await;
    instance.hub.kick("bob").await.unwrap();
    assert_eq!(bob.close_code().await, Some(4000));
    assert_eq!(count("ws_session_kicks_total"), 1.0);

    // Slow consumers: three messages at once for one-message inboxes (published as they are
    // called, before any socket task runs on this one thread).
    for _ in 0..3 {
        drop(instance.hub.broadcast("burst"));
    }
    assert!(count("ws_session_slow_consumer_closes_total") >= 1.0);

    // A detached session nobody resumes expires.
    let dave = Client::connect(instance.addr, "dave").await;
    dave.close().await;
    eventually(s, "ws_session_detached_expired_total", &[], |n| n >= 1.0).await;
    drop((fresh, taken));

    // Without a resume window: removed.
    let plain = app::session_layer(store.clone());
    let plain = serve(plain.clone(), app::router(plain)).await;
    let erin = Client::connect(plain.addr, "erin").await;
    erin.close().await;
    plain.settle(0).await;
    assert_eq!(count("ws_session_sessions_removed_total"), 1.0);

    // Redis: store errors by kind, and pub/sub reconnects.
    let Some(mut redis) = RedisServer::start() else {
        eprintln!("{}", support::redis_server::SKIPPED);
        return;
    };
    let store = RedisStore::connect(&redis.url(), unique_prefix(), Duration::from_secs(60))
        .await
        .unwrap()
        .timeout(Duration::from_millis(300));
    let layer = app::session_layer(store);
    let on_redis = serve(layer.clone(), app::router(layer)).await;
    let _frank = Client::connect(on_redis.addr, "frank").await;
    redis.stop();
    let refused =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?user=gus", on_redis.addr)).await;
    assert!(refused.is_err(), "503 with Redis down");
    assert!(
        value(
            s,
            "ws_session_store_errors_total",
            &[("kind", "unavailable")]
        ) >= 1.0
    );
    redis.restart();
    eventually(s, "ws_session_pubsub_reconnects_total", &[], |n| n >= 1.0).await;
}
