//! Every store behaves like a plain map.
//!
//! Random sequences of operations over a small pool of ids, users and keys — valid and
//! invalid — run against a store and against [`Model`], a few lines of `BTreeMap` code that
//! spell out the contract. Every result must be the same: the same values, the same sessions,
//! the same error variants. The TTL is long, so nothing expires during a case.
//!
//! Resume is part of it: sessions created with a resume token, claims with the right or a
//! wrong token and user, and detaches by the current or an older attachment.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use crate::resume::ResumeToken;
use crate::store::attachment::{Attach, Claim, Claimed, Detach, Refusal};
use crate::store::backend::Backend;
use crate::{Error, InvalidInput, Limits, MemoryStore, Session, SessionData};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

const TTL: Duration = Duration::from_secs(3600);

/// Small limits, so that random operations run into each of them.
fn limits() -> Limits {
    Limits::default()
        .max_id_len(4)
        .max_key_len(8)
        .max_value_len(24)
        .max_keys(3)
}

/// The valid ids of the pool, which the final check reads back.
const IDS: [&str; 3] = ["c1", "c2", "c3"];
const USERS: [&str; 2] = ["u1", "u2"];

// ---------------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone)]
enum Op {
    Create(String, String),
    Get(String),
    Set(String, String, Value),
    GetData(String, String),
    Update(String, SessionData),
    Delete(String, String),
    Clear(String),
    Remove(String),
    UserSessions(String),
    Touch(Vec<String>),
    /// Creates a session on node "a" with resume token number `n` of its id.
    CreateResumable(String, String, u8),
    /// Claims session `id` with its token number `n`, as `user`, for node "b", rotating to
    /// token number `m`.
    Claim(String, u8, String, u8),
    /// Detaches session `id` from attachment `epoch`.
    Detach(String, u64),
}

/// Token `n` of session `id`: the same one every time it is asked for.
fn token(id: &str, n: u8) -> ResumeToken {
    static TOKENS: LazyLock<std::sync::Mutex<BTreeMap<(String, u8), ResumeToken>>> =
        LazyLock::new(Default::default);
    TOKENS
        .lock()
        .unwrap()
        .entry((id.to_owned(), n))
        .or_insert_with(|| ResumeToken::generate(id))
        .clone()
}

/// Detached sessions are kept as long as live ones; no user has more than the cap.
fn detach() -> Detach {
    Detach::new(TTL, 16)
}

fn pick(valid: &'static [&'static str], invalid: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::sample::select(valid),
        1 => prop::sample::select(invalid),
    ]
    .prop_map(str::to_owned)
    .boxed()
}

fn id() -> BoxedStrategy<String> {
    // "c1234" is longer than the id limit.
    pick(&IDS, &["", "c1234"])
}

fn user() -> BoxedStrategy<String> {
    pick(&USERS, &["", "u1234"])
}

fn key() -> BoxedStrategy<String> {
    // "abcdefghi" is longer than the key limit; "é:k" is four bytes.
    pick(&["a", "b", "c", "d", "meta:id", "é:k"], &["", "abcdefghi"])
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // Eighths: floats whose text reads back exactly.
        (-8000i32..8000).prop_map(|n| json!(f64::from(n) / 8.0)),
        "[a-zé :]{0,8}".prop_map(Value::from),
        prop::collection::vec(any::<i8>(), 0..4).prop_map(|v| json!(v)),
        ("[a-c]", any::<i8>()).prop_map(|(k, n)| json!({ k: n })),
        // 32 bytes of JSON: over the value limit.
        Just(json!("x".repeat(30))),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let batch = prop::collection::vec((key(), value()), 0..5)
        .prop_map(|entries| entries.into_iter().collect::<SessionData>());
    prop_oneof![
        3 => (id(), user()).prop_map(|(id, user)| Op::Create(id, user)),
        2 => id().prop_map(Op::Get),
        4 => (id(), key(), value()).prop_map(|(id, key, value)| Op::Set(id, key, value)),
        2 => (id(), key()).prop_map(|(id, key)| Op::GetData(id, key)),
        3 => (id(), batch).prop_map(|(id, data)| Op::Update(id, data)),
        2 => (id(), key()).prop_map(|(id, key)| Op::Delete(id, key)),
        1 => id().prop_map(Op::Clear),
        2 => id().prop_map(Op::Remove),
        2 => user().prop_map(Op::UserSessions),
        1 => prop::collection::vec(id(), 0..4).prop_map(Op::Touch),
        3 => (id(), user(), 0..2u8).prop_map(|(id, user, n)| Op::CreateResumable(id, user, n)),
        4 => (id(), 0..3u8, user(), 0..3u8)
            .prop_map(|(id, n, user, m)| Op::Claim(id, n, user, m)),
        3 => (id(), 1..4u64).prop_map(|(id, epoch)| Op::Detach(id, epoch)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Outcomes

/// What an operation gave, in a form both a store and the model can produce and compare.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Done,
    /// A session: id, user id, data.
    Session(Option<(String, String, SessionData)>),
    Value(Option<Value>),
    /// Sessions by id: user id, data.
    Sessions(BTreeMap<String, (String, SessionData)>),
    /// Missing ids of a touch, sorted.
    Missing(Vec<String>),
    /// A claim: the new epoch and the node the session was attached to, or why not.
    Claimed(Result<(u64, Option<String>), Refusal>),
    /// Whether a detach detached.
    Detached(bool),
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq)]
enum Failure {
    NotFound(String),
    AlreadyExists(String),
    Invalid(InvalidInput),
    /// Any other error: the model never gives one.
    Other(String),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        match err {
            Error::NotFound { id } => Failure::NotFound(id),
            Error::AlreadyExists { id } => Failure::AlreadyExists(id),
            Error::InvalidInput(invalid) => Failure::Invalid(invalid),
            other => Failure::Other(format!("{other:?}")),
        }
    }
}

fn session_outcome(session: Session) -> (String, String, SessionData) {
    (session.id, session.user_id, session.data)
}

fn outcome<T>(result: Result<T, Error>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
    result.map_or_else(|err| Outcome::Failed(err.into()), ok)
}

async fn apply<S: Backend>(store: &S, op: &Op) -> Outcome {
    match op {
        Op::Create(id, user) => outcome(store.create_session(id, user).await, |session| {
            Outcome::Session(Some(session_outcome(session)))
        }),
        Op::Get(id) => outcome(store.get_session(id).await, |session| {
            Outcome::Session(session.map(session_outcome))
        }),
        Op::Set(id, key, value) => {
            outcome(store.set_session_data(id, key, value.clone()).await, |()| {
                Outcome::Done
            })
        }
        Op::GetData(id, key) => outcome(store.get_session_data(id, key).await, Outcome::Value),
        Op::Update(id, data) => outcome(store.update_session_data(id, data.clone()).await, |()| {
            Outcome::Done
        }),
        Op::Delete(id, key) => {
            outcome(store.delete_session_data(id, key).await, |()| Outcome::Done)
        }
        Op::Clear(id) => outcome(store.clear_session_data(id).await, |()| Outcome::Done),
        Op::Remove(id) => outcome(store.remove_session(id).await, |()| Outcome::Done),
        Op::UserSessions(user) => outcome(store.get_user_sessions(user).await, |sessions| {
            let count = sessions.len();
            let by_id: BTreeMap<_, _> = sessions
                .into_iter()
                .map(|s| (s.id, (s.user_id, s.data)))
                .collect();
            assert_eq!(by_id.len(), count, "a session is listed twice");
            Outcome::Sessions(by_id)
        }),
        Op::Touch(ids) => outcome(store.touch(ids).await, |mut missing| {
            missing.sort();
            Outcome::Missing(missing)
        }),
        Op::CreateResumable(id, user, n) => {
            let attach = Attach::node("a").token(token(id, *n).hash());
            outcome(
                store.create_attached_session(id, user, &attach).await,
                |session| Outcome::Session(Some(session_outcome(session))),
            )
        }
        Op::Claim(id, n, user, m) => {
            let presented = token(id, *n);
            let claim = Claim::new(
                presented.session_id(),
                presented.hash(),
                user,
                token(id, *m).hash(),
                "b",
            );
            outcome(store.claim_session(&claim).await, |claimed| {
                Outcome::Claimed(match claimed {
                    Claimed::Resumed(resumed) => Ok((resumed.epoch, resumed.previous_node)),
                    Claimed::Refused(refusal) => Err(refusal),
                })
            })
        }
        Op::Detach(id, epoch) => outcome(
            store.detach_session(id, *epoch, &detach()).await,
            |detached| Outcome::Detached(detached.detached),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The model

/// The contract as plain maps: session id -> (user id, data), and what resume needs of each.
struct Model {
    limits: Limits,
    sessions: BTreeMap<String, (String, SessionData)>,
    attachments: BTreeMap<String, Attachment>,
}

/// A session's resume token (its number), attachment count and node.
#[derive(Default)]
struct Attachment {
    token: Option<u8>,
    epoch: u64,
    node: Option<String>,
}

type Checked<T = ()> = Result<T, Failure>;

impl Model {
    fn new(limits: Limits) -> Self {
        Model {
            limits,
            sessions: BTreeMap::new(),
            attachments: BTreeMap::new(),
        }
    }

    fn check_id(&self, what: &'static str, id: &str) -> Checked {
        if id.is_empty() {
            return Err(Failure::Invalid(InvalidInput::EmptyId { what }));
        }
        if id.len() > self.limits.max_id_len {
            return Err(Failure::Invalid(InvalidInput::IdTooLong {
                what,
                len: id.len(),
                max: self.limits.max_id_len,
            }));
        }
        Ok(())
    }

    fn check_session_id(&self, id: &str) -> Checked {
        self.check_id("session id", id)
    }

    fn check_key(&self, key: &str) -> Checked {
        if key.is_empty() {
            return Err(Failure::Invalid(InvalidInput::EmptyKey));
        }
        let max = self.limits.max_key_len;
        if key.len() > max {
            let mut end = max;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            return Err(Failure::Invalid(InvalidInput::KeyTooLong {
                key: key[..end].to_owned(),
                len: key.len(),
                max,
            }));
        }
        Ok(())
    }

    fn check_value(&self, key: &str, value: &Value) -> Checked {
        let len = serde_json::to_string(value).unwrap().len();
        if len > self.limits.max_value_len {
            return Err(Failure::Invalid(InvalidInput::ValueTooLarge {
                key: key.to_owned(),
                len,
                max: self.limits.max_value_len,
            }));
        }
        Ok(())
    }

    fn too_many_keys(&self, id: &str) -> Failure {
        Failure::Invalid(InvalidInput::TooManyKeys {
            id: id.to_owned(),
            max: self.limits.max_keys,
        })
    }

    fn data_mut(&mut self, id: &str) -> Checked<&mut SessionData> {
        match self.sessions.get_mut(id) {
            Some((_, data)) => Ok(data),
            None => Err(Failure::NotFound(id.to_owned())),
        }
    }

    /// Writes `entries` into session `id`, unless that takes it past the key limit.
    fn merge(&mut self, id: &str, entries: &SessionData) -> Checked {
        let max = self.limits.max_keys;
        let too_many = self.too_many_keys(id);
        let data = self.data_mut(id)?;
        let fresh = entries.keys().filter(|k| !data.contains_key(*k)).count();
        if fresh > 0 && data.len() + fresh > max {
            return Err(too_many);
        }
        data.extend(entries.clone());
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match self.run(op) {
            Ok(outcome) => outcome,
            Err(failure) => Outcome::Failed(failure),
        }
    }

    fn run(&mut self, op: &Op) -> Checked<Outcome> {
        match op {
            Op::Create(id, user) | Op::CreateResumable(id, user, _) => {
                self.check_session_id(id)?;
                self.check_id("user id", user)?;
                if self.sessions.contains_key(id) {
                    return Err(Failure::AlreadyExists(id.clone()));
                }
                self.sessions
                    .insert(id.clone(), (user.clone(), SessionData::new()));
                let attachment = match op {
                    Op::CreateResumable(_, _, n) => Attachment {
                        token: Some(*n),
                        epoch: 1,
                        node: Some("a".to_owned()),
                    },
                    _ => Attachment {
                        epoch: 1,
                        ..Attachment::default()
                    },
                };
                self.attachments.insert(id.clone(), attachment);
                Ok(Outcome::Session(Some((
                    id.clone(),
                    user.clone(),
                    SessionData::new(),
                ))))
            }
            Op::Get(id) => {
                self.check_session_id(id)?;
                let session = self
                    .sessions
                    .get(id)
                    .map(|(user, data)| (id.clone(), user.clone(), data.clone()));
                Ok(Outcome::Session(session))
            }
            Op::Set(id, key, value) => {
                self.check_session_id(id)?;
                self.check_key(key)?;
                self.check_value(key, value)?;
                let entry = SessionData::from_iter([(key.clone(), value.clone())]);
                self.merge(id, &entry)?;
                Ok(Outcome::Done)
            }
            Op::GetData(id, key) => {
                self.check_session_id(id)?;
                self.check_key(key)?;
                Ok(Outcome::Value(self.data_mut(id)?.get(key).cloned()))
            }
            Op::Update(id, entries) => {
                self.check_session_id(id)?;
                if entries.len() > self.limits.max_keys {
                    return Err(self.too_many_keys(id));
                }
                for (key, value) in entries {
                    self.check_key(key)?;
                    self.check_value(key, value)?;
                }
                self.merge(id, entries)?;
                Ok(Outcome::Done)
            }
            Op::Delete(id, key) => {
                self.check_session_id(id)?;
                self.check_key(key)?;
                self.data_mut(id)?.remove(key);
                Ok(Outcome::Done)
            }
            Op::Clear(id) => {
                self.check_session_id(id)?;
                self.data_mut(id)?.clear();
                Ok(Outcome::Done)
            }
            Op::Remove(id) => {
                self.check_session_id(id)?;
                self.sessions.remove(id);
                self.attachments.remove(id);
                Ok(Outcome::Done)
            }
            Op::Claim(id, n, user, m) => {
                self.check_session_id(id)?;
                self.check_id("user id", user)?;
                let owner = self.sessions.get(id).map(|(owner, _)| owner.clone());
                let attachment = self.attachments.get_mut(id);
                let refusal = match (&owner, &attachment) {
                    (None, _) | (_, None) => Some(Refusal::Unknown),
                    (_, Some(Attachment { token: None, .. })) => Some(Refusal::Unknown),
                    (_, Some(Attachment { token: Some(t), .. })) if t != n => Some(Refusal::Token),
                    (Some(owner), _) if owner != user => Some(Refusal::User),
                    _ => None,
                };
                if let Some(refusal) = refusal {
                    return Ok(Outcome::Claimed(Err(refusal)));
                }
                let attachment = attachment.expect("checked above");
                attachment.token = Some(*m);
                attachment.epoch += 1;
                let previous = attachment.node.replace("b".to_owned());
                Ok(Outcome::Claimed(Ok((attachment.epoch, previous))))
            }
            Op::Detach(id, epoch) => {
                self.check_session_id(id)?;
                let detached = match self.attachments.get_mut(id) {
                    Some(attachment) if attachment.epoch == *epoch => {
                        attachment.node = None;
                        true
                    }
                    _ => false,
                };
                Ok(Outcome::Detached(detached))
            }
            Op::UserSessions(user) => {
                self.check_id("user id", user)?;
                let listed = self
                    .sessions
                    .iter()
                    .filter(|(_, (owner, _))| owner == user)
                    .map(|(id, session)| (id.clone(), session.clone()))
                    .collect();
                Ok(Outcome::Sessions(listed))
            }
            Op::Touch(ids) => {
                for id in ids {
                    self.check_session_id(id)?;
                }
                let mut missing: Vec<String> = ids
                    .iter()
                    .filter(|id| !self.sessions.contains_key(*id))
                    .cloned()
                    .collect();
                missing.sort();
                Ok(Outcome::Missing(missing))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// Runs `ops` on `store` and on a fresh model, step by step, then compares every session
/// and every user's list.
async fn check<S: Backend>(store: &S, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::new(limits());
    for (step, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let actual = apply(store, op).await;
        prop_assert_eq!(actual, expected, "step {}: {:?}", step, op);
    }
    let reads = IDS.iter().map(|id| Op::Get((*id).to_owned())).chain(
        USERS
            .iter()
            .map(|user| Op::UserSessions((*user).to_owned())),
    );
    for op in reads {
        prop_assert_eq!(
            apply(store, &op).await,
            model.apply(&op),
            "at the end: {:?}",
            op
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_store_behaves_like_the_model(ops in prop::collection::vec(op(), 1..48)) {
        let store = MemoryStore::with_ttl(TTL).limits(limits());
        RUNTIME.block_on(check(&store, &ops))?;
    }
}

#[cfg(feature = "redis")]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn redis_store_behaves_like_the_model(ops in prop::collection::vec(op(), 1..48)) {
        RUNTIME.block_on(async {
            // A fresh key prefix for every case.
            let Some(store) = super::redis_store(TTL).await else {
                eprintln!("{}", ws_session_testkit::redis_server::SKIPPED);
                return Ok(());
            };
            check(&store.limits(limits()), &ops).await
        })?;
    }
}
