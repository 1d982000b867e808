//! The commands the Redis store sends, built in place.
//!
//! Every argument is written straight into the command's own buffer: a key is its prefix and
//! its name written one after the other, and a value is serialized into the buffer as JSON.
//! So building a command costs no intermediate strings, and a script call is an `EVALSHA`
//! command like any other, with no argument list copied on the way.

use std::io;

use ::redis::{Cmd, RedisWrite, ToRedisArgs};
use serde_json::Value as Json;

use super::keys::Slot;
use super::scripts::StoreScript;
use crate::error::{Error, Result};
use crate::limits::{Counted, Limits};

/// One command of the store, and the script it calls, if it calls one.
pub(super) struct Command<'s> {
    cmd: Cmd,
    script: Option<&'s StoreScript>,
}

impl<'s> Command<'s> {
    /// The command `name`, its arguments to follow.
    pub(super) fn new(name: &'static str) -> Self {
        let mut cmd = Cmd::new();
        cmd.arg(name);
        Command { cmd, script: None }
    }

    /// A call of `script` by its SHA1, with `keys` keys to follow, then its other arguments.
    pub(super) fn script(script: &'s StoreScript, keys: usize) -> Self {
        let mut cmd = Cmd::new();
        cmd.arg("EVALSHA").arg(script.hash()).arg(keys);
        Command {
            cmd,
            script: Some(script),
        }
    }

    /// A list of arguments to be copied into a command later (see [`append`](Self::append)).
    pub(super) fn parts() -> Self {
        Command {
            cmd: Cmd::new(),
            script: None,
        }
    }

    /// Appends the arguments of `parts` from the `skip`-th on, `take` of them at most, in
    /// order.
    pub(super) fn append(&mut self, parts: &Command<'_>, skip: usize, take: usize) -> &mut Self {
        // The store builds its parts from plain arguments only: no cursors.
        for arg in parts.cmd.args_iter().skip(skip).take(take) {
            if let ::redis::Arg::Simple(bytes) = arg {
                self.cmd.arg(bytes);
            }
        }
        self
    }

    /// How many bytes the command's arguments hold together.
    pub(super) fn bytes(&self) -> usize {
        self.cmd
            .args_iter()
            .map(|arg| match arg {
                ::redis::Arg::Simple(arg) => arg.len(),
                _ => 0,
            })
            .sum()
    }

    /// Appends one argument.
    pub(super) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Appends one argument made of `head` followed by `tail`, such as a key prefix and an id.
    pub(super) fn joined(&mut self, head: &str, tail: &str) -> &mut Self {
        {
            // The argument ends when its writer is dropped.
            let mut arg = self.cmd.writer_for_next_arg();
            write_all(&mut arg, head.as_bytes());
            write_all(&mut arg, tail.as_bytes());
        }
        self
    }

    /// Appends a key: the `head` of its kind, its slot segment and its `name`, one after the
    /// other (see `keys.rs`).
    pub(super) fn key(&mut self, head: &str, slot: Slot, name: &str) -> &mut Self {
        {
            // The argument ends when its writer is dropped.
            let mut arg = self.cmd.writer_for_next_arg();
            write_all(&mut arg, head.as_bytes());
            write_all(&mut arg, slot.as_str().as_bytes());
            write_all(&mut arg, name.as_bytes());
        }
        self
    }

    /// Appends the JSON text of `value`, the value of data key `key`, and checks the text's
    /// length against `limits`. (The caller checks the key itself.)
    pub(super) fn json(&mut self, key: &str, value: &Json, limits: &Limits) -> Result<&mut Self> {
        let len = {
            // The argument ends when its writer is dropped.
            let mut arg = Counted::new(self.cmd.writer_for_next_arg());
            serde_json::to_writer(&mut arg, value).map_err(|source| Error::Serialization {
                key: key.to_owned(),
                source,
            })?;
            arg.len()
        };
        limits.check_encoded_len(key, len)?;
        Ok(self)
    }

    /// The command to send.
    pub(super) fn cmd(&self) -> &Cmd {
        &self.cmd
    }

    /// For a call of a script by its SHA1, the same call with the script's text (`EVAL`),
    /// which also loads the script into the server that runs it: on a cluster, the node of
    /// the call's keys, where `SCRIPT LOAD` would go to every node.
    pub(super) fn with_text(&self) -> Option<Cmd> {
        let script = self.script?;
        let mut cmd = Cmd::new();
        cmd.arg("EVAL").arg(script.code());
        for arg in self.cmd.args_iter().skip(2) {
            if let ::redis::Arg::Simple(bytes) = arg {
                cmd.arg(bytes);
            }
        }
        Some(cmd)
    }

    /// The script this command calls, which the server must load before the command runs.
    pub(super) fn script_called(&self) -> Option<&'s StoreScript> {
        self.script
    }
}

/// Writing into a command's buffer cannot fail: it only grows a `Vec`.
fn write_all(out: &mut impl io::Write, bytes: &[u8]) {
    out.write_all(bytes)
        .expect("writing into a command's buffer cannot fail");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The arguments of `cmd` as text.
    fn args(command: &Command<'_>) -> Vec<String> {
        command
            .cmd()
            .args_iter()
            .map(|arg| match arg {
                ::redis::Arg::Simple(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
                other => panic!("a plain argument, not {other:?}"),
            })
            .collect()
    }

    #[test]
    fn arguments_are_written_in_order() {
        let mut command = Command::new("HMGET");
        command.joined("app:session:", "c1").arg("meta:user_id");
        let value = json!({"theme": "dark", "sizes": [1, 2.5]});
        command.json("prefs", &value, &Limits::default()).unwrap();
        let args = args(&command);
        assert_eq!(
            args,
            [
                "HMGET",
                "app:session:c1",
                "meta:user_id",
                r#"{"sizes":[1,2.5],"theme":"dark"}"#
            ]
        );
        assert_eq!(serde_json::from_str::<Json>(&args[3]).unwrap(), value);
    }

    #[test]
    fn an_oversized_value_is_refused_with_its_length() {
        let limits = Limits::default().max_value_len(10);
        let mut command = Command::new("HSET");
        command.json("fits", &json!("12345678"), &limits).unwrap();
        let err = command
            .json("big", &json!("123456789"), &limits)
            .err()
            .unwrap();
        assert!(
            matches!(
                &err,
                Error::InvalidInput(crate::InvalidInput::ValueTooLarge { key, len: 11, max: 10 })
                    if key == "big"
            ),
            "{err:?}"
        );
    }
}
