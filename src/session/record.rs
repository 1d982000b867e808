//! The session record, session ids, and typed access to JSON values.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The data of one session: JSON values under string keys.
pub type SessionData = Map<String, Value>;

/// One client's session, as a store holds it.
///
/// Timestamps are milliseconds since the Unix epoch, so the record reads the same in JSON,
/// in Redis and in Rust.
///
/// ```
/// use serde_json::json;
/// use ws_session::Session;
///
/// let mut session = Session::new("c1", "alice", 1_700_000_000_000);
/// session.data.insert("theme".into(), json!("dark"));
///
/// let theme: Option<String> = session.get("theme")?;
/// assert_eq!(theme.as_deref(), Some("dark"));
///
/// let text = serde_json::to_string(&session).unwrap();
/// assert_eq!(serde_json::from_str::<Session>(&text).unwrap(), session);
/// # Ok::<(), ws_session::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The client (connection) id.
    pub id: String,
    /// The user the client belongs to.
    pub user_id: String,
    /// The session's data.
    pub data: SessionData,
    /// When the session was created, in ms since the Unix epoch.
    pub created_at: u64,
    /// When the session was last written or [`touch`](crate::SessionStore::touch)ed, in ms
    /// since the Unix epoch. The layer's keep-alive of open sessions restarts their TTL
    /// without moving it.
    pub last_active: u64,
}

impl Session {
    /// A session with no data, created and last active at `now_ms`.
    pub fn new(id: impl Into<String>, user_id: impl Into<String>, now_ms: u64) -> Self {
        Session {
            id: id.into(),
            user_id: user_id.into(),
            data: SessionData::new(),
            created_at: now_ms,
            last_active: now_ms,
        }
    }

    /// The value at `key`, turned into `T`; `Ok(None)` when the key is missing.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] naming the key when the stored value does not fit `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.data
            .get(key)
            .map(|v| from_value(key, v.clone()))
            .transpose()
    }

    /// When the session was created.
    pub fn created_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.created_at)
    }

    /// When the session was last written or touched.
    pub fn last_active_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.last_active)
    }
}

/// Turns a stored JSON value into `T`, naming the key when it does not fit.
///
/// # Errors
///
/// [`Error::Serialization`] when `value` does not have the shape of `T`.
///
/// ```
/// use serde_json::json;
///
/// let n: u32 = ws_session::from_value("count", json!(3))?;
/// assert_eq!(n, 3);
/// assert!(ws_session::from_value::<u32>("count", json!("three")).is_err());
/// # Ok::<(), ws_session::Error>(())
/// ```
pub fn from_value<T: DeserializeOwned>(key: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|source| Error::Serialization {
        key: key.to_owned(),
        source,
    })
}

/// Turns any serializable value into the JSON value a store keeps, naming the key on failure.
///
/// # Errors
///
/// [`Error::Serialization`] when `value` cannot be represented as JSON (a map with non-string
/// keys, say).
///
/// ```
/// let v = ws_session::to_value("tags", &vec!["a", "b"])?;
/// assert_eq!(v, serde_json::json!(["a", "b"]));
/// # Ok::<(), ws_session::Error>(())
/// ```
pub fn to_value<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|source| Error::Serialization {
        key: key.to_owned(),
        source,
    })
}

/// A fresh session id: 128 bits from the operating system's CSPRNG, as 32 hex digits.
///
/// ```
/// let a = ws_session::new_session_id();
/// let b = ws_session::new_session_id();
/// assert_eq!(a.len(), 32);
/// assert_ne!(a, b);
/// ```
pub fn new_session_id() -> String {
    // `rand::random` draws from the thread-local ChaCha generator, seeded from the OS CSPRNG.
    format!("{:032x}", rand::random::<u128>())
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
