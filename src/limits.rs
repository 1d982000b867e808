//! Size limits shared by every store, and the checks that enforce them.

use std::io;
use std::sync::OnceLock;

use serde_json::{Number, Value};

use crate::error::{InvalidInput, Result};

/// The size limits a store enforces before it writes anything.
///
/// Both stores use the same defaults, so code that works against [`MemoryStore`](crate::MemoryStore)
/// in tests behaves the same against Redis in production.
///
/// ```
/// use ws_session::Limits;
///
/// let limits = Limits::default().max_value_len(16 * 1024);
/// assert_eq!(limits.max_key_len, 256);
/// assert_eq!(limits.max_value_len, 16 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest data key, in bytes (default 256). Keys must also be non-empty.
    pub max_key_len: usize,
    /// Largest value, measured as its JSON text in bytes (default 64 KiB).
    pub max_value_len: usize,
    /// Most data keys one session may hold (default 1,024).
    pub max_keys: usize,
    /// Longest session id or user id, in bytes (default 256). Ids must also be non-empty.
    pub max_id_len: usize,
    /// Longest room name, in bytes (default 256). Names must also be non-empty.
    pub max_room_len: usize,
    /// Most rooms one session may be in at once (default 64).
    pub max_rooms: usize,
    /// Largest message the hub sends, in bytes of text or binary payload (default 64 KiB).
    pub max_message_len: usize,
    /// Most data one session may hold, in bytes: the length of every key plus the JSON length
    /// of every value (default 1 MiB).
    pub max_session_bytes: usize,
    /// Most sessions one user may have at once, live or detached (default 64). A session past
    /// it is not created: the layer answers the upgrade with `429 Too Many Requests`.
    pub max_user_sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: 256,
            max_value_len: 64 * 1024,
            max_keys: 1024,
            max_id_len: 256,
            max_room_len: 256,
            max_rooms: 64,
            max_message_len: 64 * 1024,
            max_session_bytes: 1024 * 1024,
            max_user_sessions: 64,
        }
    }
}

impl Limits {
    /// Sets [`max_key_len`](Self::max_key_len).
    #[must_use]
    pub fn max_key_len(mut self, bytes: usize) -> Self {
        self.max_key_len = bytes;
        self
    }

    /// Sets [`max_value_len`](Self::max_value_len).
    #[must_use]
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// Sets [`max_keys`](Self::max_keys).
    #[must_use]
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// Sets [`max_id_len`](Self::max_id_len).
    #[must_use]
    pub fn max_id_len(mut self, bytes: usize) -> Self {
        self.max_id_len = bytes;
        self
    }

    /// Sets [`max_room_len`](Self::max_room_len).
    #[must_use]
    pub fn max_room_len(mut self, bytes: usize) -> Self {
        self.max_room_len = bytes;
        self
    }

    /// Sets [`max_rooms`](Self::max_rooms).
    #[must_use]
    pub fn max_rooms(mut self, rooms: usize) -> Self {
        self.max_rooms = rooms;
        self
    }

    /// Sets [`max_message_len`](Self::max_message_len).
    #[must_use]
    pub fn max_message_len(mut self, bytes: usize) -> Self {
        self.max_message_len = bytes;
        self
    }

    /// Sets [`max_session_bytes`](Self::max_session_bytes).
    #[must_use]
    pub fn max_session_bytes(mut self, bytes: usize) -> Self {
        self.max_session_bytes = bytes;
        self
    }

    /// Sets [`max_user_sessions`](Self::max_user_sessions) (at least 1).
    #[must_use]
    pub fn max_user_sessions(mut self, sessions: usize) -> Self {
        self.max_user_sessions = sessions.max(1);
        self
    }

    /// Checks the data bytes a session would hold after a write.
    pub(crate) fn check_session_bytes(&self, id: &str, bytes: usize) -> Result<(), InvalidInput> {
        if bytes > self.max_session_bytes {
            return Err(InvalidInput::SessionTooLarge {
                id: id.to_owned(),
                len: bytes,
                max: self.max_session_bytes,
            });
        }
        Ok(())
    }

    /// Checks a room name.
    pub(crate) fn check_room(&self, room: &str) -> Result<(), InvalidInput> {
        if room.is_empty() {
            return Err(InvalidInput::EmptyRoom);
        }
        if room.len() > self.max_room_len {
            return Err(InvalidInput::RoomTooLong {
                room: truncate(room, self.max_room_len).to_owned(),
                len: room.len(),
                max: self.max_room_len,
            });
        }
        Ok(())
    }

    /// Checks the size of a message's payload.
    pub(crate) fn check_message(&self, len: usize) -> Result<(), InvalidInput> {
        if len > self.max_message_len {
            return Err(InvalidInput::MessageTooLarge {
                len,
                max: self.max_message_len,
            });
        }
        Ok(())
    }

    /// Checks a session id.
    pub(crate) fn check_session_id(&self, id: &str) -> Result<(), InvalidInput> {
        self.check_id("session id", id)
    }

    /// Checks a user id.
    pub(crate) fn check_user_id(&self, id: &str) -> Result<(), InvalidInput> {
        self.check_id("user id", id)
    }

    fn check_id(&self, what: &'static str, id: &str) -> Result<(), InvalidInput> {
        if id.is_empty() {
            return Err(InvalidInput::EmptyId { what });
        }
        if id.len() > self.max_id_len {
            return Err(InvalidInput::IdTooLong {
                what,
                len: id.len(),
                max: self.max_id_len,
            });
        }
        Ok(())
    }

    /// Checks a data key.
    pub(crate) fn check_key(&self, key: &str) -> Result<(), InvalidInput> {
        if key.is_empty() {
            return Err(InvalidInput::EmptyKey);
        }
        if key.len() > self.max_key_len {
            return Err(InvalidInput::KeyTooLong {
                key: truncate(key, self.max_key_len).to_owned(),
                len: key.len(),
                max: self.max_key_len,
            });
        }
        Ok(())
    }

    /// Checks the length of a value's JSON text, already encoded.
    pub(crate) fn check_encoded_len(&self, key: &str, len: usize) -> Result<(), InvalidInput> {
        if len > self.max_value_len {
            return Err(InvalidInput::ValueTooLarge {
                key: key.to_owned(),
                len,
                max: self.max_value_len,
            });
        }
        Ok(())
    }

    /// Checks a value's JSON length without building the text, and without counting it at all
    /// when a cheap upper bound of the length already fits.
    pub(crate) fn check_value(&self, key: &str, value: &Value) -> Result<(), InvalidInput> {
        if fits(self, value) {
            return Ok(());
        }
        self.check_encoded_len(key, json_len(value))
    }

    /// Checks a key count after a write.
    pub(crate) fn check_key_count(&self, id: &str, count: usize) -> Result<(), InvalidInput> {
        if count > self.max_keys {
            return Err(InvalidInput::TooManyKeys {
                id: id.to_owned(),
                max: self.max_keys,
            });
        }
        Ok(())
    }

    /// Checks every key and value of a batch, in order.
    pub(crate) fn check_entries<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a String, &'a Value)>,
    ) -> Result<()> {
        for (key, value) in entries {
            self.check_key(key)?;
            self.check_value(key, value)?;
        }
        Ok(())
    }
}

/// The length of `value` as compact JSON text, counted without allocating.
pub(crate) fn json_len(value: &Value) -> usize {
    let mut counter = Counted::new(io::sink());
    // Writing a `Value` cannot fail: its map keys are strings and the sink never errors.
    serde_json::to_writer(&mut counter, value).expect("a JSON value always serializes");
    counter.len()
}

/// A writer that passes its bytes on to another and counts them, so that a value's encoded
/// length is known once it is written, wherever it is written to.
pub(crate) struct Counted<W> {
    inner: W,
    len: usize,
}

impl<W> Counted<W> {
    pub(crate) fn new(inner: W) -> Self {
        Counted { inner, len: 0 }
    }

    /// The bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<W: io::Write> io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.len += written;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether a cheap upper bound of the JSON length of `value` is within the value limit: when
/// it is, the exact check passes.
fn fits(limits: &Limits, value: &Value) -> bool {
    item_budget_left(value, limits.max_value_len).is_some()
}

/// What is left of `budget` after taking off an upper bound of the length of `value` as
/// compact JSON; `None` when the bound is over budget or unknown.
///
/// The walk stops as soon as the budget runs out, so a large value costs little more here
/// before it is counted exactly.
fn json_budget_left(value: &Value, budget: usize) -> Option<usize> {
    match value {
        Value::Array(items) => {
            // The brackets and at most one comma per item.
            let mut left = budget.checked_sub(items.len().checked_add(2)?)?;
            for item in items {
                left = item_budget_left(item, left)?;
            }
            Some(left)
        }
        Value::Object(entries) => {
            // The braces, and at most one comma and one colon per entry.
            let mut left = budget.checked_sub(entries.len().checked_mul(2)?.checked_add(2)?)?;
            for (key, item) in entries {
                left = left.checked_sub(quoted_len_bound(key))?;
                left = item_budget_left(item, left)?;
            }
            Some(left)
        }
        scalar => budget.checked_sub(scalar_len_bound(scalar)?),
    }
}

/// [`json_budget_left`], where a scalar costs no call.
#[inline(always)]
fn item_budget_left(item: &Value, budget: usize) -> Option<usize> {
    match item {
        Value::Array(_) | Value::Object(_) => json_budget_left(item, budget),
        scalar => budget.checked_sub(scalar_len_bound(scalar)?),
    }
}

/// An upper bound of the JSON length of a scalar; `None` when unknown.
#[inline(always)]
fn scalar_len_bound(scalar: &Value) -> Option<usize> {
    match scalar {
        // `null`, `true`, `false`.
        Value::Null | Value::Bool(_) => Some(5),
        Value::Number(_) => short_numbers().then_some(MAX_NUMBER_LEN),
        Value::String(text) => Some(quoted_len_bound(text)),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// An upper bound of the length of `text` as a JSON string: the quotes, and at most six bytes
/// (`\u001f`) for each byte.
fn quoted_len_bound(text: &str) -> usize {
    text.len().saturating_mul(6).saturating_add(2)
}

/// The longest JSON text of a number written from its binary value: 20 bytes for an integer
/// (`-9223372036854775808`), 24 for a float (`-2.2250738585072014e-308`).
const MAX_NUMBER_LEN: usize = 24;

/// Whether serde_json writes numbers from their binary value, so that none is longer than
/// [`MAX_NUMBER_LEN`]. With its `arbitrary_precision` feature (which any crate in the build may
/// turn on) a number keeps the text it was parsed from, of any length; then numbers are
/// counted exactly.
fn short_numbers() -> bool {
    static SHORT: OnceLock<bool> = OnceLock::new();
    *SHORT.get_or_init(|| {
        "1.50"
            .parse::<Number>()
            .ok()
            .and_then(|number| serde_json::to_string(&number).ok())
            .is_some_and(|text| text == "1.5")
    })
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn room_names_must_be_non_empty_and_short() {
        let limits = Limits::default().max_room_len(4);
        assert_eq!(limits.check_room(""), Err(InvalidInput::EmptyRoom));
        assert_eq!(limits.check_room("abcd"), Ok(()));
        assert_eq!(
            limits.check_room("abcdé"),
            Err(InvalidInput::RoomTooLong {
                room: "abcd".into(),
                len: 6,
                max: 4
            })
        );
    }

    #[test]
    fn messages_are_checked_at_their_byte_length() {
        let limits = Limits::default();
        assert_eq!(limits.max_message_len, 65536);
        assert_eq!(limits.check_message(65536), Ok(()));
        assert_eq!(
            limits.check_message(65537),
            Err(InvalidInput::MessageTooLarge {
                len: 65537,
                max: 65536
            })
        );
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn json_len_matches_encoded_text() {
        for value in [
            json!(null),
            json!("héllo \"q\""),
            json!({"a": [1, 2.5, true]}),
        ] {
            assert_eq!(
                json_len(&value),
                serde_json::to_string(&value).unwrap().len()
            );
        }
    }

    #[test]
    fn keys_are_checked_at_their_byte_length() {
        let limits = Limits::default().max_key_len(4);
        assert_eq!(limits.check_key(""), Err(InvalidInput::EmptyKey));
        assert!(limits.check_key("abcd").is_ok());
        let err = limits.check_key("ééé").unwrap_err();
        assert_eq!(
            err,
            InvalidInput::KeyTooLong {
                key: "éé".into(),
                len: 6,
                max: 4
            }
        );
    }

    #[test]
    fn ids_must_be_non_empty_and_short() {
        let limits = Limits::default().max_id_len(3);
        assert_eq!(
            limits.check_user_id(""),
            Err(InvalidInput::EmptyId { what: "user id" })
        );
        assert!(matches!(
            limits.check_session_id("abcd"),
            Err(InvalidInput::IdTooLong { len: 4, max: 3, .. })
        ));
    }

    /// Values whose JSON text is easy to misjudge: escapes, wide characters, extreme numbers,
    /// empty and nested containers.
    fn awkward_values() -> Vec<Value> {
        vec![
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(-2.225_073_858_507_201_4e-308),
            json!(f64::MAX),
            json!(5e-324),
            json!(0.1),
            json!(""),
            json!("plain"),
            json!("\u{0}\u{1f}\u{7f}\"\\\n\r\t\u{8}\u{c}/"),
            json!("é😀\u{2028}"),
            json!("\u{1}".repeat(8)),
            json!([]),
            json!({}),
            json!([[], {}, [null, [1.5, -3]], "x"]),
            json!({"\u{1}key\"": {"": [true, false, {"n": -0.0}]}, "a": "\u{1f}".repeat(40)}),
            json!({ "theme": "dark", "font_size": 14, "notifications": true }),
        ]
    }

    #[test]
    fn the_cheap_value_check_agrees_with_the_exact_one() {
        for value in awkward_values() {
            let len = json_len(&value);
            let bound = usize::MAX - json_budget_left(&value, usize::MAX).expect("a bound");
            assert!(
                bound >= len,
                "bound {bound} under the length {len} of {value}"
            );
            // Both sides of the exact length and of the bound.
            for max in 0..=bound + 1 {
                let limits = Limits::default().max_value_len(max);
                assert_eq!(
                    limits.check_value("k", &value),
                    limits.check_encoded_len("k", json_len(&value)),
                    "{value} at max {max}"
                );
            }
        }
    }

    #[test]
    fn numbers_are_written_short_in_this_build() {
        assert!(short_numbers());
    }
}
