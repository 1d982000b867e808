//! The keep-alive of open sessions: what a layer renews, how often, and the rule that lets it
//! renew the indexes of its sessions far less often than the sessions themselves.
//!
//! A session's TTL starts again on every keep-alive: one renewal per session and tick. The
//! keys that index sessions (a user's set of sessions, a room's set of members, a session's
//! list of rooms) must outlive every session they index, but renewing them on every tick
//! would cost as much again. So every script that sets an index key's TTL gives it at least
//! [`INDEX_FLOOR_TTLS`] session TTLs, and a layer renews the indexes of its open sessions at
//! least once every [`INDEXES_EVERY_TTLS`] TTLs. Between two renewals of the indexes a
//! session's TTL is restarted by ticks that come at most `INDEXES_EVERY_TTLS` TTLs after the
//! last write to its indexes, so it runs out at most `INDEXES_EVERY_TTLS + 1` TTLs after it:
//! a tick may come a whole TTL late before an index could run out under a live session.

use std::time::Duration;

/// An index key, when any script sets its TTL, lives at least this many session TTLs (plus a
/// second).
pub(crate) const INDEX_FLOOR_TTLS: u32 = 4;

/// How many session TTLs may pass between two renewals of the indexes of open sessions.
pub(crate) const INDEXES_EVERY_TTLS: u32 = 2;

/// The index keys of a layer's open sessions, renewed together by one keep-alive.
#[derive(Debug, Default)]
pub(crate) struct Indexes {
    /// Sessions whose lists of rooms are renewed (a session in no room has none to renew).
    pub(crate) sessions: Vec<String>,
    /// Users whose sets of sessions are renewed.
    pub(crate) users: Vec<String>,
    /// Rooms whose sets of members are renewed.
    pub(crate) rooms: Vec<String>,
}

impl Indexes {
    /// How many keys these indexes are.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len() + self.users.len() + self.rooms.len()
    }

    /// Whether there is no key to renew.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// These indexes in parts of at most `keys` keys each, each part of one kind.
    pub(crate) fn split(self, keys: usize) -> Vec<Indexes> {
        let keys = keys.max(1);
        let chunks = |list: Vec<String>| {
            list.chunks(keys)
                .map(<[String]>::to_vec)
                .collect::<Vec<_>>()
        };
        let sessions = chunks(self.sessions).into_iter().map(|sessions| Indexes {
            sessions,
            ..Indexes::default()
        });
        let users = chunks(self.users).into_iter().map(|users| Indexes {
            users,
            ..Indexes::default()
        });
        let rooms = chunks(self.rooms).into_iter().map(|rooms| Indexes {
            rooms,
            ..Indexes::default()
        });
        sessions.chain(users).chain(rooms).collect()
    }
}

/// Whether a keep-alive tick due `every` after this one would come more than
/// [`INDEXES_EVERY_TTLS`] TTLs after the last renewal of the indexes (`since` ago): then this
/// tick renews them.
pub(crate) fn indexes_due(since: Duration, every: Duration, ttl: Duration) -> bool {
    since + every > ttl * INDEXES_EVERY_TTLS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, count: usize) -> Vec<String> {
        (0..count).map(|i| format!("{prefix}{i}")).collect()
    }

    fn indexes_len(parts: &[Indexes]) -> usize {
        parts.iter().map(Indexes::len).sum()
    }

    #[test]
    fn split_keeps_every_key_once_and_within_the_bound() {
        let indexes = Indexes {
            sessions: names("s", 7),
            users: names("u", 3),
            rooms: names("r", 4),
        };
        let parts = indexes.split(5);
        assert_eq!(indexes_len(&parts), 14);
        assert_eq!(
            parts.iter().map(Indexes::len).collect::<Vec<_>>(),
            [5, 2, 3, 4]
        );
        let all: Vec<String> = parts
            .into_iter()
            .flat_map(|part| [part.sessions, part.users, part.rooms].concat())
            .collect();
        assert_eq!(all, [names("s", 7), names("u", 3), names("r", 4)].concat());
        assert!(Indexes::default().split(10).is_empty());
    }

    #[test]
    fn indexes_are_renewed_before_the_gap_passes_its_bound() {
        let ttl = Duration::from_secs(60);
        let every = ttl / 2;
        // Ticks every half TTL: the fourth tick after a renewal renews again.
        let due: Vec<bool> = (1..=4)
            .map(|tick| indexes_due(every * tick, every, ttl))
            .collect();
        assert_eq!(due, [false, false, false, true]);
        // A late tick renews at once.
        assert!(indexes_due(ttl * 2, every, ttl));
    }
}
