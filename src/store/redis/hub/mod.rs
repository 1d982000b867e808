//! The Redis side of the hub: the publisher's pipelines (plain publishes, publishes kept in a
//! history, messages to one session), the reading of missed messages, and each node's
//! [`transport`] (its pub/sub connection and its publisher task).

pub(crate) mod transport;
mod wanted;

use ::redis::{ErrorKind, Pipeline, ServerErrorKind, Value};
use bytes::Bytes;

use super::RedisStore;
use super::command::Command;
use super::reply::{bytes, unexpected};
use super::resume::offset;
use super::scripts::{self, StoreScript};
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
    /// # Errors
    ///
    /// When the pipeline as a whole fails (Redis unreachable, timeout), that error.
    pub(crate) async fn send_hub(&self, sends: &[HubSend]) -> Result<Vec<Result<()>>> {
        let mut answers: Vec<Option<Result<()>>> = (0..sends.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..sends.len()).collect();
        for attempt in 0..2 {
            let mut pipeline = ::redis::pipe();
            for &i in &pending {
                self.add_send(&mut pipeline, &sends[i]);
            }
            let values = self.run_pipeline(&pipeline, pending.len()).await?;
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
                    value => answers[i] = Some(answer(&sends[i], value)),
                }
            }
            if unknown_script.is_empty() {
                break;
            }
            let scripts = &self.inner.scripts;
            for script in [&scripts.publish, &scripts.send] {
                self.run_pipeline(&load(script), 1).await?;
            }
            pending = unknown_script;
        }
        Ok(answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Err(Error::Backend("no answer".into()))))
            .collect())
    }

    fn add_send(&self, pipeline: &mut Pipeline, send: &HubSend) {
        let keys = &self.inner.keys;
        let scripts = &self.inner.scripts;
        match send {
            HubSend::Plain { channel, envelope } => {
                pipeline.cmd("PUBLISH").arg(channel).arg(envelope.as_ref());
            }
            HubSend::Kept {
                channel,
                stream,
                message,
            } => {
                let reached_by = keys.reached_by(stream);
                let mut command =
                    Command::script(&scripts.publish, 2 + usize::from(reached_by.is_some()));
                command.arg(&keys.clock).arg(keys.history(stream));
                if let Some(set) = reached_by {
                    command.arg(set);
                }
                command.arg(channel);
                message.args(&mut command);
                pipeline.add_command(command.cmd().clone());
            }
            HubSend::Session { id, message } => {
                let mut command = Command::script(&scripts.send, 3);
                command
                    .joined(&keys.session, id)
                    .arg(&keys.clock)
                    .arg(keys.history(&Stream::Session(id.clone())));
                message.args(&mut command);
                pipeline.add_command(command.cmd().clone());
            }
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

/// `SCRIPT LOAD` of `script`, as a pipeline of one.
fn load(script: &StoreScript) -> Pipeline {
    let mut pipeline = ::redis::pipe();
    pipeline.add_command(script.load_cmd());
    pipeline
}

/// The answer to one send.
fn answer(send: &HubSend, value: Value) -> Result<()> {
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
