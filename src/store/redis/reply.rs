//! Reading what Redis answered: sessions from hash fields, JSON values, and clear errors for
//! replies of the wrong shape and for stored data that does not decode.

use ::redis::Value;
use serde_json::Value as Json;

use super::{DATA, META_CREATED_AT, META_LAST_ACTIVE, META_USER_ID};
use crate::error::{Error, Result};
use crate::session::record::{Session, SessionData};

/// What the store found in Redis that it did not expect.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    /// A reply of the wrong shape.
    #[error("unexpected Redis reply: expected {expected}, got {got}")]
    Reply { expected: &'static str, got: String },
    /// A field the session needs is absent.
    #[error("the field is missing")]
    Missing,
}

pub(super) fn unexpected(expected: &'static str, got: &Value) -> Error {
    let mut got = format!("{got:?}");
    if got.len() > 80 {
        let mut end = 80;
        while !got.is_char_boundary(end) {
            end -= 1;
        }
        got.truncate(end);
        got.push_str("...");
    }
    Error::Backend(Box::new(DecodeError::Reply { expected, got }))
}

pub(super) fn missing_field(id: &str, field: &str) -> Error {
    corrupt(id, field, DecodeError::Missing)
}

fn corrupt(id: &str, field: &str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Corrupt {
        id: id.to_owned(),
        field: field.to_owned(),
        source: Box::new(source),
    }
}

pub(super) fn bytes(value: Value) -> Result<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        Value::VerbatimString { text, .. } => Ok(text.into_bytes()),
        other => Err(unexpected("a string", &other)),
    }
}

pub(super) fn string(value: Value) -> Result<String> {
    let bytes = bytes(value)?;
    String::from_utf8(bytes).map_err(|err| Error::Backend(Box::new(err)))
}

/// The field-value pairs of a hash, from `HGETALL` (an array in RESP2, a map in RESP3) or
/// from a script (always an array).
pub(super) fn hash_fields(value: Value) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    match value {
        Value::Array(items) if items.len() % 2 == 0 => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(field), Some(value)) = (items.next(), items.next()) {
                pairs.push((bytes(field)?, bytes(value)?));
            }
            Ok(pairs)
        }
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(field, value)| Ok((bytes(field)?, bytes(value)?)))
            .collect(),
        other => Err(unexpected("hash fields", &other)),
    }
}

pub(super) fn decode_json(id: &str, key: &str, text: &[u8]) -> Result<Json> {
    serde_json::from_slice(text).map_err(|err| corrupt(id, key, err))
}

fn decode_millis(id: &str, field: &str, text: Option<Vec<u8>>) -> Result<u64> {
    let text = text.ok_or_else(|| missing_field(id, field))?;
    let text = String::from_utf8(text).map_err(|err| corrupt(id, field, err))?;
    text.parse().map_err(|err| corrupt(id, field, err))
}

/// Builds a session from its hash fields. Fields outside the documented layout are ignored.
pub(super) fn decode_session(id: &str, fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Session> {
    let mut data = SessionData::new();
    let (mut user_id, mut created_at, mut last_active) = (None, None, None);
    for (field, value) in fields {
        if let Some(key) = field.strip_prefix(DATA.as_bytes()) {
            let key = String::from_utf8_lossy(key).into_owned();
            let value = decode_json(id, &key, &value)?;
            data.insert(key, value);
        } else if field == META_USER_ID.as_bytes() {
            user_id = Some(value);
        } else if field == META_CREATED_AT.as_bytes() {
            created_at = Some(value);
        } else if field == META_LAST_ACTIVE.as_bytes() {
            last_active = Some(value);
        }
    }
    let user_id = user_id.ok_or_else(|| missing_field(id, META_USER_ID))?;
    let user_id = String::from_utf8(user_id).map_err(|err| corrupt(id, META_USER_ID, err))?;
    Ok(Session {
        id: id.to_owned(),
        user_id,
        data,
        created_at: decode_millis(id, META_CREATED_AT, created_at)?,
        last_active: decode_millis(id, META_LAST_ACTIVE, last_active)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_well_formed_hash_decodes() {
        let session = decode_session(
            "c1",
            fields(&[
                ("meta:user_id", "alice"),
                ("meta:created_at", "10"),
                ("meta:last_active", "20"),
                ("data:meta:user_id", "\"mallory\""),
                ("data:n", "[1,2]"),
            ]),
        )
        .unwrap();
        assert_eq!(session.user_id, "alice");
        assert_eq!((session.created_at, session.last_active), (10, 20));
        assert_eq!(session.data["meta:user_id"], "mallory");
        assert_eq!(session.data["n"], serde_json::json!([1, 2]));
    }

    #[test]
    fn bad_fields_are_corrupt_and_named() {
        let err = decode_session(
            "c1",
            fields(&[
                ("meta:user_id", "alice"),
                ("meta:created_at", "soon"),
                ("meta:last_active", "20"),
            ]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { id, field, .. } if id == "c1" && field == "meta:created_at")
        );

        let err = decode_session("c1", fields(&[("data:k", "{oops")])).unwrap_err();
        assert!(matches!(&err, Error::Corrupt { field, .. } if field == "k"));
    }
}
