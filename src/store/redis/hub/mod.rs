//! The Redis side of the hub: the publisher's pipelines (plain publishes, publishes kept in a
//! history, messages to one session), the reading of missed messages, and each node's
//! [`transport`] (its pub/sub connection and its publisher task).

mod subscription;
pub(crate) mod transport;
mod wanted;

use ::redis::{ErrorKind, Pipeline, ServerErrorKind, Value};
use bytes::Bytes;

use super::RedisStore;
use super::command::Command;
use super::keys::Keys;
use super::reply::{bytes, string, unexpected};
use super::resume::offset;
use super::scripts;
use crate::error::{Error, Result};
use crate::store::envelope::{Stream, payload, split_target};
use crate::store::history::{HistoryPolicy, ReadBudget, ReadFrom, Replayed};
use crate::store::message::{Delivery, Payload};

/// One send of a node's publisher.
pub(crate) enum HubSend {
    /// A `PUBLISH` of an envelope, kept nowhere.
    Plain { channel: Vec<u8>, envelope: Bytes },
    /// A message kept in `stream`'s history, then published on `channel` with its offset.
    Kept {
        channel: Vec<u8>,
        stream: Stream,
        message: KeptMessage,
    },
    /// A message to session `id` alone: kept in its history (when the policy keeps one) and
    /// published to its node. Fails with `NotFound` when there is no such session.
    Session { id: String, message: KeptMessage },
}

/// A message as the scripts that keep it take it: its kind byte, its envelope's target part,
/// its payload, and what the history keeps.
pub(crate) struct KeptMessage {
    pub(crate) kind: u8,
    pub(crate) target: Vec<u8>,
    pub(crate) payload: Payload,
    pub(crate) policy: HistoryPolicy,
}

impl KeptMessage {
    /// The scripts' last seven arguments.
    fn args(&self, command: &mut Command<'_>) {
        command
            .arg(&[self.kind][..])
            .arg(&self.target)
            .arg(self.payload.as_bytes())
            .arg(self.policy.keep)
            .arg(self.policy.retention_ms())
            .arg(self.policy.keep_bytes)
            .arg(self.policy.total_bytes);
    }
}

impl RedisStore {
    /// Sends `sends` in order in one pipeline and answers each one. A script the server does
    /// not know (after a restart or a `SCRIPT FLUSH`) is loaded, and the sends it refused are
    /// sent again, in order.
    ///
    /// On a cluster the pipeline goes to the hub's slot, and each send carries the next number
    /// of node `node_id` after `seq`, so that a send the client repeats after a dropped
    /// connection is neither kept nor published twice (see `lua/lib/first_send.lua`). A send
    /// to one session first reads the session, whose hash lives in another slot; the
    /// histories the scripts name for eviction are evicted after.
    ///
    /// # Errors
    ///
    /// When the pipeline as a whole fails (Redis unreachable, timeout), that error.
    pub(crate) async fn send_hub(
        &self,
        sends: &[HubSend],
        node_id: &str,
        seq: &mut u64,
    ) -> Result<Vec<Result<()>>> {
        let mut answers: Vec<Option<Result<()>>> = (0..sends.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..sends.len()).collect();
        let mut targets: Vec<Option<SessionTarget>> = (0..sends.len()).map(|_| None).collect();
        if self.on_cluster() {
            self.read_targets(sends, &mut answers, &mut targets).await?;
            pending.retain(|&i| answers[i].is_none());
        }
        let mut evict = Vec::new();
        for attempt in 0..2 {
            let mut pipeline = ::redis::pipe();
            for &i in &pending {
                *seq += 1;
                self.add_send(&mut pipeline, &sends[i], targets[i].as_ref(), node_id, *seq);
            }
            let values = if pending.is_empty() {
                Vec::new()
            } else {
                self.run_pipeline(&pipeline, pending.len()).await?
            };
            let mut unknown_script = Vec::new();
            for (&i, value) in pending.iter().zip(values) {
                match value {
                    Value::ServerError(error)
                        if attempt == 0
                            && ::redis::RedisError::from(error.clone()).kind()
                                == ErrorKind::Server(ServerErrorKind::NoScript) =>
                    {
                        unknown_script.push(i);
                    }
                    value => answers[i] = Some(answer(&sends[i], value, &mut evict)),
                }
            }
            if unknown_script.is_empty() {
                break;
            }
            let scripts = &self.inner.scripts;
            // On a cluster, into the master of the hub's slot, where the sends go.
            let node = if self.on_cluster() {
                Some(subscription::hub_master(self).await?)
            } else {
                None
            };
            for script in [&scripts.publish, &scripts.send] {
                self.load_script(script, node.clone()).await?;
            }
            pending = unknown_script;
        }
        if !evict.is_empty() {
            self.evict(evict, sends).await;
        }
        Ok(answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Err(Error::Backend("no answer".into()))))
            .collect())
    }

    /// On a cluster, reads the node and TTL of every session `sends` sends to (their hashes
    /// live in the sessions' slots, all read at once), and answers `NotFound` for those that
    /// are gone.
    async fn read_targets(
        &self,
        sends: &[HubSend],
        answers: &mut [Option<Result<()>>],
        targets: &mut [Option<SessionTarget>],
    ) -> Result<()> {
        let keys = &self.inner.keys;
        let reads = sends.iter().enumerate().filter_map(|(i, send)| {
            let HubSend::Session { id, .. } = send else {
                return None;
            };
            Some(async move {
                let slot = match keys.session_slot(id) {
                    Ok(slot) => slot,
                    Err(_) => return (i, Ok(None)),
                };
                let mut pipeline = ::redis::pipe();
                let mut meta = Command::new("HMGET");
                meta.key(&keys.session, slot, id)
                    .arg(super::META_USER_ID)
                    .arg(super::META_NODE);
                let mut ttl = Command::new("PTTL");
                ttl.key(&keys.session, slot, id);
                pipeline.add_command(meta.cmd().clone());
                pipeline.add_command(ttl.cmd().clone());
                (i, self.run_pipeline(&pipeline, 2).await.map(target))
            })
        });
        for (i, read) in futures_util::future::join_all(reads).await {
            match read? {
                Some(found) => targets[i] = Some(found),
                None => {
                    if let HubSend::Session { id, .. } = &sends[i] {
                        answers[i] = Some(Err(Error::not_found(id)));
                    }
                }
            }
        }
        Ok(())
    }

    fn add_send(
        &self,
        pipeline: &mut Pipeline,
        send: &HubSend,
        target: Option<&SessionTarget>,
        node_id: &str,
        seq: u64,
    ) {
        let keys = &self.inner.keys;
        let scripts = &self.inner.scripts;
        let cluster = self.on_cluster();
        match send {
            HubSend::Plain { channel, envelope } => {
                let publish = if cluster { "SPUBLISH" } else { "PUBLISH" };
                pipeline.cmd(publish).arg(channel).arg(envelope.as_ref());
            }
            HubSend::Kept {
                channel,
                stream,
                message,
            } => {
                let reached_by = keys.reached_by(stream);
                let mut command = if cluster {
                    // A user's set lives in the user's slot: a message to a user is kept even
                    // when the user has no session.
                    let reached_by = reached_by.filter(|_| matches!(stream, Stream::Room(_)));
                    let mut command =
                        Command::script(&scripts.publish, 6 + usize::from(reached_by.is_some()));
                    command.arg(&keys.clock).arg(keys.history(stream));
                    kept_keys(&mut command, keys, node_id);
                    if let Some(set) = reached_by {
                        command.arg(set);
                    }
                    command
                } else {
                    let mut command =
                        Command::script(&scripts.publish, 2 + usize::from(reached_by.is_some()));
                    command.arg(&keys.clock).arg(keys.history(stream));
                    if let Some(set) = reached_by {
                        command.arg(set);
                    }
                    command
                };
                command.arg(channel);
                message.args(&mut command);
                if cluster {
                    command.arg(node_id).arg(seq);
                }
                pipeline.add_command(command.cmd().clone());
            }
            HubSend::Session { id, message } => {
                let history = keys.history(&Stream::Session(id.clone()));
                let mut command = Command::script(&scripts.send, if cluster { 6 } else { 3 });
                if cluster {
                    command.joined(&keys.hub_sent, node_id);
                } else if let Ok(slot) = keys.session_slot(id) {
                    command.key(&keys.session, slot, id);
                }
                command.arg(&keys.clock).arg(history);
                if cluster {
                    command
                        .arg(&keys.kept_bytes)
                        .arg(&keys.kept_at)
                        .arg(&keys.kept_total);
                }
                message.args(&mut command);
                if let Some(target) = target {
                    command
                        .arg(target.node.as_deref().unwrap_or(""))
                        .arg(target.ttl_ms)
                        .arg(node_id)
                        .arg(seq);
                }
                pipeline.add_command(command.cmd().clone());
            }
        }
    }

    /// Evicts the histories the scripts named (see `lua/evict.lua`), with the retention and
    /// bound of the first kept send. A failure is logged: the next kept message names them
    /// again.
    async fn evict(&self, mut names: Vec<String>, sends: &[HubSend]) {
        let Some(policy) = sends.iter().find_map(|send| match send {
            HubSend::Kept { message, .. } | HubSend::Session { message, .. } => {
                Some(message.policy)
            }
            HubSend::Plain { .. } => None,
        }) else {
            return;
        };
        names.sort_unstable();
        names.dedup();
        let keys = &self.inner.keys;
        let mut command = Command::script(&self.inner.scripts.evict, 3 + names.len());
        kept_keys_only(&mut command, keys);
        for name in &names {
            command.arg(name);
        }
        command.arg(policy.retention_ms()).arg(policy.total_bytes);
        if let Err(error) = self.run(&command).await {
            tracing::debug!(%error, "histories named for eviction were not evicted");
        }
    }

    /// The newest messages the histories `from` hold after their starting points, as many as
    /// fit `budget`, in offset order.
    ///
    /// The histories are read newest first, in steps of one script call that each read at
    /// most [`STEP_MESSAGES`] messages per history, a few at a time, and stop once past
    /// [`STEP_BYTES`], and merged here as they come: a resume holds Redis for a short step at
    /// a time, and never holds more than the budget and one step.
    pub(crate) async fn replay(
        &self,
        reader: &str,
        from: &[ReadFrom],
        budget: ReadBudget,
    ) -> Result<Replayed> {
        let mut cursors: Vec<Cursor> = from.iter().map(|_| Cursor::default()).collect();
        let mut complete = true;
        let mut taken: Vec<Delivery> = Vec::new();
        let mut bytes = 0usize;
        loop {
            let empty: Vec<usize> = (0..cursors.len())
                .filter(|&i| cursors[i].buffer.is_empty() && cursors[i].more)
                .collect();
            if !empty.is_empty() {
                let per_history = budget
                    .messages
                    .saturating_sub(taken.len())
                    .clamp(1, STEP_MESSAGES);
                let read = self
                    .replay_step(reader, from, &cursors, &empty, per_history)
                    .await?;
                for (&i, (lost, more, entries)) in empty.iter().zip(read) {
                    complete &= !lost;
                    let cursor = &mut cursors[i];
                    cursor.more = more;
                    cursor.before = entries
                        .last()
                        .map(|(last, _)| last.offset)
                        .or(cursor.before);
                    cursor.buffer.extend(entries);
                }
            }
            let newest = (0..cursors.len())
                .filter_map(|i| Some((cursors[i].buffer.front()?.0.offset, i)))
                .max();
            let Some((_, i)) = newest else {
                break;
            };
            let Some((delivery, left_out)) = cursors[i].buffer.pop_front() else {
                break;
            };
            if left_out {
                continue;
            }
            let len = delivery.payload.len();
            if taken.len() >= budget.messages || bytes.saturating_add(len) > budget.bytes {
                complete = false;
                break;
            }
            if taken
                .last()
                .is_some_and(|last| last.offset == delivery.offset)
            {
                continue;
            }
            bytes += len;
            taken.push(delivery);
        }
        taken.reverse();
        Ok(Replayed {
            missed: taken,
            complete,
        })
    }

    /// One step of [`replay`](Self::replay): reads the histories `which` of `from` below
    /// their cursors. Returns for each whether messages it needed were dropped, whether it may
    /// hold more, and the messages read, newest first.
    async fn replay_step(
        &self,
        reader: &str,
        from: &[ReadFrom],
        cursors: &[Cursor],
        which: &[usize],
        per_history: usize,
    ) -> Result<Vec<(bool, bool, Vec<(Delivery, bool)>)>> {
        let keys = &self.inner.keys;
        let mut command = Command::script(&self.inner.scripts.replay, which.len());
        for &i in which {
            command.arg(keys.history(&from[i].stream));
        }
        for &i in which {
            command.arg(from[i].after.to_string());
        }
        for &i in which {
            match cursors[i].before {
                Some(before) => command.arg(before.to_string()),
                None => command.arg("+"),
            };
        }
        command.arg(per_history).arg(STEP_BYTES);
        let items = match self.run(&command).await? {
            Value::Array(items) if items.len() == 3 * which.len() => items,
            other => return Err(unexpected("a replay's answer", &other)),
        };
        let mut read = Vec::with_capacity(which.len());
        let mut items = items.into_iter();
        while let (Some(lost), Some(more), Some(entries)) =
            (items.next(), items.next(), items.next())
        {
            let Value::Array(entries) = entries else {
                return Err(unexpected("a history's messages", &entries));
            };
            let entries = entries
                .into_iter()
                .map(|entry| {
                    let (delivery, left_out) = delivery(entry)?;
                    Ok((delivery, left_out.is_some_and(|id| id == reader.as_bytes())))
                })
                .collect::<Result<_>>()?;
            read.push((lost == Value::Int(1), more == Value::Int(1), entries));
        }
        Ok(read)
    }
}

/// Most messages one step of a replay reads from one history.
const STEP_MESSAGES: usize = 64;
/// The payload bytes after which one step of a replay stops reading.
const STEP_BYTES: usize = 256 * 1024;

/// Where the reading of one history stands during a replay.
struct Cursor {
    /// The oldest offset read so far: the next step reads below it.
    before: Option<crate::store::message::Offset>,
    /// Read and not yet merged, newest first, each with whether it leaves the reader out.
    buffer: std::collections::VecDeque<(Delivery, bool)>,
    /// Whether the history may hold more below `before`.
    more: bool,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            before: None,
            buffer: std::collections::VecDeque::new(),
            more: true,
        }
    }
}

/// Where a send to one session goes on a cluster, as read from the session's hash.
struct SessionTarget {
    /// The node holding its connection, if any.
    node: Option<String>,
    /// Its TTL left, in ms: its history lives no longer.
    ttl_ms: i64,
}

/// A session's `HMGET` of owner and node and its `PTTL`, as a target; `None` for a session
/// that is gone.
fn target(values: Vec<Value>) -> Option<SessionTarget> {
    let mut values = values.into_iter();
    let (Some(Value::Array(meta)), Some(Value::Int(ttl_ms))) = (values.next(), values.next())
    else {
        return None;
    };
    let mut meta = meta.into_iter();
    match (meta.next(), meta.next()) {
        (Some(Value::Nil) | None, _) => None,
        (_, node) => Some(SessionTarget {
            node: node.and_then(|node| string(node).ok()),
            ttl_ms,
        }),
    }
}

/// The keys of the histories' accounting, then the record of node `node_id`'s last send:
/// what a kept message declares on a cluster after its clock and history.
fn kept_keys(command: &mut Command<'_>, keys: &Keys, node_id: &str) {
    kept_keys_only(command, keys);
    command.joined(&keys.hub_sent, node_id);
}

/// The keys of the histories' accounting.
fn kept_keys_only(command: &mut Command<'_>, keys: &Keys) {
    command
        .arg(&keys.kept_bytes)
        .arg(&keys.kept_at)
        .arg(&keys.kept_total);
}

/// The answer to one send; on a cluster, the histories it names for eviction go to `evict`.
fn answer(send: &HubSend, value: Value, evict: &mut Vec<String>) -> Result<()> {
    let value = match value {
        Value::Array(parts) if parts.len() == 2 => {
            let mut parts = parts.into_iter();
            let (Some(status), Some(Value::Array(names))) = (parts.next(), parts.next()) else {
                return Err(Error::Backend("a send answered with missing parts".into()));
            };
            for name in names {
                evict.push(string(name)?);
            }
            status
        }
        value => value,
    };
    match (send, value) {
        (_, Value::ServerError(error)) => Err(super::conn::redis_error(error.into())),
        (HubSend::Session { id, .. }, Value::Int(scripts::NOT_FOUND)) => Err(Error::not_found(id)),
        (HubSend::Session { .. }, Value::Int(scripts::OK)) => Ok(()),
        (HubSend::Session { .. }, other) => Err(unexpected("a send's status", &other)),
        // A publish answers with how many subscribers got it.
        (_, Value::Int(_)) => Ok(()),
        (_, other) => Err(unexpected("a publish's answer", &other)),
    }
}

/// One stream entry, `[id, ['k', kind, 'p', payload]]`, as a delivery and the session it leaves
/// out: a message that leaves one out keeps, after its kind byte, the target part of its
/// envelope (two bytes of length, then the session id).
fn delivery(entry: Value) -> Result<(Delivery, Option<Vec<u8>>)> {
    let Value::Array(parts) = entry else {
        return Err(unexpected("a history entry", &entry));
    };
    let mut parts = parts.into_iter();
    let (Some(id), Some(Value::Array(fields))) = (parts.next(), parts.next()) else {
        return Err(Error::Backend("a history entry without fields".into()));
    };
    let id = bytes(id)?;
    let position = id.iter().position(|b| *b == b'-').unwrap_or(id.len());
    let at = offset(Value::BulkString(id[..position].to_vec()))?;
    let mut kind = None;
    let mut left_out = None;
    let mut body = None;
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        match bytes(name)?.as_slice() {
            b"k" => {
                let field = bytes(value)?;
                kind = field.first().copied();
                left_out = field
                    .get(1..)
                    .and_then(split_target)
                    .map(|(id, _)| id)
                    .filter(|id| !id.is_empty())
                    .map(<[u8]>::to_vec);
            }
            b"p" => body = Some(bytes(value)?),
            _ => {}
        }
    }
    let payload = kind
        .zip(body)
        .and_then(|(kind, body)| payload(kind, &body))
        .ok_or_else(|| Error::Backend("a history entry that is not a message".into()))?;
    Ok((
        Delivery {
            offset: at,
            payload,
        },
        left_out,
    ))
}
