//! Size limits shared by every store, and the checks that enforce them.

use std::io;

use serde_json::Value;

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: 256,
            max_value_len: 64 * 1024,
            max_keys: 1024,
            max_id_len: 256,
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

    /// Checks a value's JSON length without building the text.
    pub(crate) fn check_value(&self, key: &str, value: &Value) -> Result<(), InvalidInput> {
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

    /// Checks every key and value of a batch, and that the batch alone fits.
    pub(crate) fn check_entries<'a>(
        &self,
        id: &str,
        entries: impl IntoIterator<Item = (&'a String, &'a Value)>,
    ) -> Result<()> {
        let mut count = 0;
        for (key, value) in entries {
            self.check_key(key)?;
            self.check_value(key, value)?;
            count += 1;
        }
        self.check_key_count(id, count)?;
        Ok(())
    }
}

/// The length of `value` as compact JSON text, counted without allocating.
pub(crate) fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` cannot fail: its map keys are strings and the sink never errors.
    serde_json::to_writer(&mut counter, value).expect("a JSON value always serializes");
    counter.0
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
}
