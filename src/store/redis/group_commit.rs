//! Group commit: concurrent writes of one store share a call of the write script.
//!
//! A script call has a fixed cost in Redis (about 20,000 instructions before the script does
//! anything, more than a whole `HSET`), and Redis runs one command at a time. So the store
//! sends its writes (`set_session_data`, `update_session_data`, `delete_session_data`,
//! `clear_session_data` and `touch`) this way:
//!
//! - A write that finds fewer than [`MAX_IN_FLIGHT`] calls in flight and nothing queued goes
//!   out at once, alone: no timer, no wait.
//! - Writes that arrive while [`MAX_IN_FLIGHT`] calls are in flight wait in a queue. When a
//!   call has answered, the next call takes the queue, up to [`MAX_SESSIONS`] session writes
//!   and [`MAX_BYTES`] bytes of arguments, so that no call holds Redis for long (a write
//!   larger than the bounds goes alone). Several calls in flight keep both sides busy: while
//!   Redis runs one, the application hands out the answers of another and gathers the next.
//!   (At 32 writers, 2, 4 and 8 calls in flight measured about alike; 1 left Redis idle
//!   while the application worked, and 4 did best in the load bench's `ops`.)
//! - The write script applies the writes in their order, each with its own checks, and answers
//!   each apart; each caller gets its own answer, or, when the whole call failed (Redis down,
//!   out of time), the same failure as the others.
//!
//! Each caller keeps its own deadline: one that runs out while its write waits gets
//! `Unavailable`, and a write whose caller has given up before its call is sent is not sent.
//!
//! The bound on calls in flight holds per store (and its clones), whatever the size of its
//! pool: with several connections, each call goes out on whichever the pool gives. Writes of
//! one caller, which awaits each, keep their order.
//!
//! On a Redis Cluster a call carries the writes of one slot only (the sessions of one user
//! tag): a batch takes the queued writes of its first write's slot, and the others wait for
//! a later batch. Writes of different users rarely share a slot, so there the bound is
//! [`MAX_IN_FLIGHT_ON_CLUSTER`]: the masters work on many calls at once, and writes queue
//! only past it.
//!
//! [`GroupCommit`] owns the queue and the right to send (the turn); it is the only state here.

use std::collections::VecDeque;
use std::sync::Mutex;

use ::redis::{ErrorKind, RedisError, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::RedisStore;
use super::conn::Failure;
use super::write::{Write, batch_call};
use crate::error::{Error, Result};

/// At most this many sessions are written by one call (a touch counts its sessions).
pub(super) const MAX_SESSIONS: usize = 64;
/// At most this many bytes of keys and arguments go in one call.
pub(super) const MAX_BYTES: usize = 256 * 1024;
/// At most this many calls of the write script are in flight at once.
pub(super) const MAX_IN_FLIGHT: usize = 4;
/// On a cluster, at most this many: a call carries the writes of one slot, so writes of
/// different slots cannot share one, and the masters work on several at once.
pub(super) const MAX_IN_FLIGHT_ON_CLUSTER: usize = 64;

/// The queue of writes waiting for the next call, and whether a call is in flight.
#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// How many callers or drain tasks hold a turn: each sends a call and waits for it.
    in_flight: usize,
    queue: VecDeque<Waiting>,
}

/// A write waiting in the queue, and where its answer goes.
struct Waiting {
    write: Write,
    deadline: Instant,
    answer: oneshot::Sender<std::result::Result<Value, Failure>>,
}

impl GroupCommit {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is consistent between any two statements that hold the lock.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the next batch off the queue, leaving out writes whose callers have given up;
    /// with nothing left to send, gives the turn back. A batch holds writes of one slot (on a
    /// cluster, one script call touches one slot; elsewhere every write has the same): those
    /// of the first write's slot, in their order, and the others wait for a later batch.
    fn next_batch(&self) -> Vec<Waiting> {
        let mut state = self.lock();
        let now = Instant::now();
        let (mut sessions, mut bytes) = (0, 0);
        let mut batch: Vec<Waiting> = Vec::new();
        let mut i = 0;
        while let Some(next) = state.queue.get(i) {
            let gone = next.answer.is_closed() || next.deadline <= now;
            if gone {
                state.queue.remove(i);
                continue;
            }
            if batch
                .first()
                .is_some_and(|first| first.write.slot() != next.write.slot())
            {
                i += 1;
                continue;
            }
            let fits = batch.is_empty()
                || (sessions + next.write.sessions() <= MAX_SESSIONS
                    && bytes + next.write.bytes() <= MAX_BYTES);
            if !fits {
                break;
            }
            let next = state.queue.remove(i).expect("the write exists");
            sessions += next.write.sessions();
            bytes += next.write.bytes();
            batch.push(next);
        }
        if batch.is_empty() {
            state.in_flight -= 1;
        }
        batch
    }

    /// Gives a turn back, failing every queued write: for a runtime that is going away.
    fn abandon(&self) {
        let mut state = self.lock();
        state.in_flight -= 1;
        // Dropping their senders tells the waiting callers.
        state.queue.clear();
    }
}

impl RedisStore {
    /// Sends `write` through the group commit and returns its own result from the write
    /// script.
    pub(super) async fn commit(&self, write: Write) -> Result<Value> {
        let deadline = Instant::now() + self.inner.timeout;
        let queue = &self.inner.commit;
        let answer = {
            let mut state = queue.lock();
            let most = if self.on_cluster() {
                MAX_IN_FLIGHT_ON_CLUSTER
            } else {
                MAX_IN_FLIGHT
            };
            if state.in_flight >= most || !state.queue.is_empty() {
                let (answer, receiver) = oneshot::channel();
                state.queue.push_back(Waiting {
                    write,
                    deadline,
                    answer,
                });
                Err(receiver)
            } else {
                state.in_flight += 1;
                Ok(write)
            }
        };
        match answer {
            Ok(write) => {
                let turn = Turn { store: self };
                let reply = self
                    .send_batch(std::slice::from_ref(&write), deadline)
                    .await;
                drop(turn);
                match reply {
                    Ok(mut results) => Ok(results.pop().expect("one result per write")),
                    Err(failure) => Err(self.error(failure)),
                }
            }
            Err(receiver) => match tokio::time::timeout_at(deadline, receiver).await {
                Ok(Ok(reply)) => reply.map_err(|failure| self.error(failure)),
                Ok(Err(_)) => Err(Error::Unavailable {
                    reason: "the write was dropped unsent: its runtime is shutting down".to_owned(),
                    source: None,
                }),
                Err(_) => Err(Error::timed_out(self.inner.timeout)),
            },
        }
    }

    /// One call of the write script for `writes`, awaited until `deadline`: one result per
    /// write, in order. (The script answers a call of one write with its result alone.)
    async fn send_batch(
        &self,
        writes: &[Write],
        deadline: Instant,
    ) -> std::result::Result<Vec<Value>, Failure> {
        let command = batch_call(&self.inner.scripts.write, writes.iter());
        let reply = self.run_until(&command, deadline).await?;
        if self.on_cluster() {
            return self.cluster_results(writes, reply).await;
        }
        match reply {
            result if writes.len() == 1 => Ok(vec![result]),
            Value::Array(results) if results.len() == writes.len() => Ok(results),
            other => Err(Failure::Redis(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "the write script did not answer one result per write",
                format!("{} writes, answer {other:?}", writes.len()),
            )))),
        }
    }
}

/// Sends the queue's batches one after the other until it is empty, holding the turn.
async fn drain(mut turn: DrainTurn) {
    let store = &turn.store;
    let queue = &store.inner.commit;
    loop {
        // The callers that the last answers woke queue their next writes first.
        tokio::task::yield_now().await;
        let batch = queue.next_batch();
        if batch.is_empty() {
            // `next_batch` gave the turn back.
            turn.given_back = true;
            return;
        }
        let deadline = batch
            .iter()
            .map(|waiting| waiting.deadline)
            .max()
            .expect("a batch is not empty");
        let (writes, answers): (Vec<Write>, Vec<_>) = batch
            .into_iter()
            .map(|waiting| (waiting.write, waiting.answer))
            .unzip();
        match store.send_batch(&writes, deadline).await {
            Ok(results) => {
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(Ok(result));
                }
            }
            Err(failure) => {
                for answer in answers {
                    let _ = answer.send(Err(failure.clone()));
                }
            }
        }
    }
}

/// The turn of a caller whose write went out alone. When the call is over, or the caller's
/// future is dropped mid-call, the turn passes on: to nobody when the queue is empty, else to
/// a drain task.
struct Turn<'a> {
    store: &'a RedisStore,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let queue = &self.store.inner.commit;
        {
            let mut state = queue.lock();
            if state.queue.is_empty() {
                state.in_flight -= 1;
                return;
            }
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(drain(DrainTurn {
                store: self.store.clone(),
                given_back: false,
            }))),
            Err(_) => queue.abandon(),
        }
    }
}

/// The turn held by a drain task. It is dropped only when the task is dropped unfinished
/// (polled or not), which happens when its runtime shuts down: the turn is given back and the
/// queued writes fail, rather than wait forever.
struct DrainTurn {
    store: RedisStore,
    given_back: bool,
}

impl Drop for DrainTurn {
    fn drop(&mut self) {
        if !self.given_back {
            self.store.inner.commit.abandon();
        }
    }
}
