//! One session as the memory store holds it, and the hasher of the store's maps.

use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use dashmap::mapref::one::RefMut;
use foldhash::SharedSeed;
use foldhash::fast::{FoldHasher, SeedableRandomState};
use litemap::LiteMap;

use crate::session::record::{Session, SessionData};
use crate::store::attachment::TokenHash;
use crate::store::message::Offset;

/// The hasher of the store's maps and sets: foldhash, keyed from the operating system's CSPRNG.
///
/// Session ids are random, but user ids and data keys may come from clients, so the keys stay
/// secret; each map and set draws its own. Much cheaper than the standard library's SipHash on
/// the short strings the store hashes on every operation.
#[derive(Clone)]
pub(super) struct Keyed(SeedableRandomState);

impl Default for Keyed {
    fn default() -> Self {
        static SHARED: OnceLock<SharedSeed> = OnceLock::new();
        // `rand::random` draws from the thread-local ChaCha generator, seeded from the OS.
        let shared = SHARED.get_or_init(|| SharedSeed::from_u64(rand::random()));
        Keyed(SeedableRandomState::with_seed(rand::random(), shared))
    }
}

impl BuildHasher for Keyed {
    type Hasher = FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// A guard on one session of the store.
pub(super) type EntryGuard<'a> = RefMut<'a, String, Entry>;

/// One session as the store holds it.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) user_id: String,
    pub(super) data: SessionData,
    /// The bytes of `data`, as [`Limits::max_session_bytes`](crate::Limits) counts them.
    pub(super) data_bytes: usize,
    pub(super) created_at: u64,
    pub(super) last_active: u64,
    pub(super) expires_at: Instant,
    /// The hub node holding the session's connection, if it has one.
    pub(super) node: Option<Arc<str>>,
    /// The rooms the session is in, each with the hub's offset when it joined.
    pub(super) rooms: LiteMap<String, Offset>,
    /// The hash of the session's resume token, if it can be resumed.
    pub(super) token: Option<TokenHash>,
    /// Which attachment of the session holds it now.
    pub(super) epoch: u64,
    /// The hub's offset when the session was created.
    pub(super) since: Offset,
    /// When the session was detached (ms since the Unix epoch), while it is.
    pub(super) detached_at: Option<u64>,
}

impl Entry {
    /// What one key and its value count towards the session's data bytes.
    pub(super) fn size_of(key: &str, value: &serde_json::Value) -> usize {
        key.len() + crate::limits::json_len(value)
    }

    /// The data bytes the session would hold with `entries` written over its data.
    pub(super) fn bytes_after<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, usize)>,
    ) -> usize {
        entries
            .into_iter()
            .fold(self.data_bytes, |bytes, (key, size)| {
                let old = self
                    .data
                    .get(key)
                    .map_or(0, |held| Self::size_of(key, held));
                bytes - old + size
            })
    }

    pub(super) fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    pub(super) fn to_session(&self, id: &str) -> Session {
        Session {
            id: id.to_owned(),
            user_id: self.user_id.clone(),
            data: self.data.clone(),
            created_at: self.created_at,
            last_active: self.last_active,
        }
    }
}
