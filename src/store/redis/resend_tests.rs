//! On a cluster, redis-rs sends a request again after its connection dropped, even when the
//! request had reached the server: the scripts that must not apply twice (create, claim, the
//! hub's sends) are sent here twice, as the client would, and apply once.

use std::time::Duration;

use ::redis::Value;
use bytes::Bytes;

use super::RedisStore;
use super::command::Command;
use super::hub::{HubSend, KeptMessage};
use super::scripts;
use crate::SessionStore;
use crate::store::attachment::{Attach, Claim, Claimed, TokenHash};
use crate::store::backend::Backend;
use crate::store::envelope::Stream;
use crate::store::history::HistoryPolicy;
use crate::store::message::Payload;

const HOUR: Duration = Duration::from_secs(3600);

async fn cluster_store() -> Option<RedisStore> {
    crate::store::tests::cluster_store(HOUR, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_sent_again_is_not_taken_and_another_create_is() {
    let Some(store) = cluster_store().await else {
        return;
    };
    let id = store.new_session_id("alice");
    let slot = store.session_slot(&id).unwrap();
    let create = |nonce: &'static str| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            store
                .create_on_cluster(&id, "alice", slot, 1, "", "", nonce)
                .await
                .unwrap()
        }
    };
    assert_eq!(create("first").await, Value::Int(scripts::OK));
    assert_eq!(
        create("first").await,
        Value::Int(scripts::OK),
        "the same create, sent again"
    );
    assert_eq!(create("second").await, Value::Int(scripts::TAKEN));
    assert_eq!(store.get_user_sessions("alice").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_sent_again_answers_as_it_did_and_counts_one_attachment() {
    let Some(store) = cluster_store().await else {
        return;
    };
    let id = store.new_session_id("alice");
    let (kept, next) = (TokenHash([0x5a; 32]), TokenHash([0xa5; 32]));
    store
        .create_attached_session(&id, "alice", &Attach::node("node-1").token(kept))
        .await
        .unwrap();
    store.join_room(&id, "lobby").await.unwrap();
    let claim = Claim::new(&id, kept, "alice", next, "node-2");
    let Claimed::Resumed(first) = store.claim_session(&claim).await.unwrap() else {
        panic!("the claim was refused");
    };
    let Claimed::Resumed(again) = store.claim_session(&claim).await.unwrap() else {
        panic!("the claim sent again was refused");
    };
    assert_eq!(first.epoch, 2);
    assert_eq!(again.epoch, 2, "the claim sent again counted an attachment");
    assert_eq!((&again.since, &again.rooms), (&first.since, &first.rooms));
    assert_eq!(
        store.session_node(&id).await.unwrap().as_deref(),
        Some("node-2")
    );
    // The token it replaced claims nothing more, and another new token is no replay.
    let other = Claim::new(&id, kept, "alice", TokenHash([0x11; 32]), "node-2");
    assert!(matches!(
        store.claim_session(&other).await.unwrap(),
        Claimed::Refused(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_message_sent_again_is_kept_and_published_once() {
    let Some(store) = cluster_store().await else {
        return;
    };
    // A room with a member keeps what it is sent.
    let member = store.new_session_id("alice");
    store.create_session(&member, "alice").await.unwrap();
    store.join_room(&member, "lobby").await.unwrap();
    let stream = Stream::Room("lobby".into());
    let channel = store
        .keys()
        .channel(&crate::store::envelope::Topic::Room("lobby".into()));
    let sends = [HubSend::Kept {
        channel,
        stream: stream.clone(),
        message: KeptMessage {
            kind: b'm',
            target: vec![0, 0],
            payload: Payload::from(Bytes::from_static(b"hello")),
            policy: HistoryPolicy {
                keep: 100,
                retention: Duration::from_secs(60),
                keep_bytes: 1 << 20,
                total_bytes: 1 << 24,
            },
        },
    }];
    // The number the first send carried, given to the same send again.
    let mut seq = 0;
    let answers = store.send_hub(&sends, "node-1", &mut seq).await.unwrap();
    assert!(answers[0].is_ok());
    let mut again = seq - 1;
    let answers = store.send_hub(&sends, "node-1", &mut again).await.unwrap();
    assert!(answers[0].is_ok());
    let mut len = Command::new("XLEN");
    len.arg(store.keys().history(&stream));
    assert_eq!(store.run(&len).await.unwrap(), Value::Int(1), "kept twice");
    // A later send of the node is kept.
    store.send_hub(&sends, "node-1", &mut seq).await.unwrap();
    assert_eq!(store.run(&len).await.unwrap(), Value::Int(2));
}
