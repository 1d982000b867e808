//! Every key and channel name the Redis store and its hub use, built in this one place.
//!
//! On one server (or through Sentinel), with the prefix `app`:
//!
//! | name                           | kind    | what |
//! |--------------------------------|---------|------|
//! | `app:session:{id}`             | Hash    | one session |
//! | `app:user_sessions:{user}`     | Set     | the ids of a user's sessions |
//! | `app:session_rooms:{id}`       | Hash    | the rooms of one session, each with the offset it joined at |
//! | `app:room_members:{room}`      | Set     | the ids of a room's sessions |
//! | `app:user_detached:{user}`     | Sorted set | a user's detached sessions, by the time they detached |
//! | `app:hub:clock`                | String  | the last offset the hub gave a message |
//! | `app:history:all`              | Stream  | messages sent to everyone, kept for resumes |
//! | `app:history:user:{user}`      | Stream  | messages sent to a user |
//! | `app:history:room:{room}`      | Stream  | messages sent to a room |
//! | `app:history:session:{id}`     | Stream  | messages sent to one session |
//! | `app:hub:kept`                 | Hash    | the payload bytes each history holds |
//! | `app:hub:kept_at`              | Sorted set | each history, by when it was last written |
//! | `app:hub:kept_total`           | String  | the payload bytes every history holds together |
//! | `app:hub:sent:{node}`          | String  | on a cluster only: the number of a publishing node's last send |
//! | `app:hub:all`                  | channel | envelopes for every connection |
//! | `app:hub:node:{node}`          | channel | envelopes for single sessions held by one node |
//! | `app:hub:user:{user}`          | channel | envelopes for every connection of a user |
//! | `app:hub:room:{room}`          | channel | envelopes for every member of a room |
//!
//! On a Redis Cluster the same names carry a hash tag after their kind, so that the keys one
//! operation touches share a slot ([`Layout::Cluster`]):
//!
//! - the keys of a user and of the user's sessions (`session`, `user_sessions`,
//!   `session_rooms`, `user_detached`) carry `{T}:`, where `T` is the user's *slot tag*: four
//!   hex digits of the SHA-256 of the user id (an anonymous session, whose user id is its own
//!   session id, has a random tag). A session id on a cluster starts with its user's tag, so `app:session:{3f2a}:3f2a9c…` is found from the id alone, and the sessions
//!   of different users spread over every master;
//! - the hub's keys and channels, the histories and the rooms' member sets carry `{app}:` (the
//!   prefix): they share one slot, so one script keeps a message under its offset and
//!   publishes it, as on one server. For example `app:hub:{app}:clock`,
//!   `app:room_members:{app}:lobby`, `app:history:{app}:session:3f2a9c…`,
//!   `app:hub:{app}:room:lobby`.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::InvalidInput;
use crate::store::envelope::{Stream, Topic};

/// How a store lays its keys out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One master (alone or behind Sentinel): the seed's names, untagged.
    Server,
    /// A Redis Cluster: names carry hash tags, so that each operation's keys share a slot.
    Cluster,
}

/// How many hex digits of a user's hash make the user's slot tag.
pub(crate) const TAG_LEN: usize = 4;

/// The hash-tag segment of one key, between its kind and its name: empty on one server,
/// `{T}:` on a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Slot {
    text: [u8; TAG_LEN + 3],
    len: usize,
}

impl Slot {
    /// No segment: a key of the one-server layout.
    pub(crate) const NONE: Slot = Slot {
        text: [0; TAG_LEN + 3],
        len: 0,
    };

    /// The segment `{tag}:`; `tag` is `TAG_LEN` ASCII hex digits.
    fn tagged(tag: &[u8]) -> Slot {
        let mut text = [0; TAG_LEN + 3];
        text[0] = b'{';
        text[1..=TAG_LEN].copy_from_slice(tag);
        text[TAG_LEN + 1] = b'}';
        text[TAG_LEN + 2] = b':';
        Slot {
            text,
            len: TAG_LEN + 3,
        }
    }

    /// The segment as text.
    pub(crate) fn as_str(&self) -> &str {
        // Built from ASCII only.
        std::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }
}

/// The prefixes of one store's keys and channels.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) prefix: String,
    pub(crate) layout: Layout,
    /// `{prefix}:session:`
    pub(crate) session: String,
    /// `{prefix}:user_sessions:`
    pub(crate) user_sessions: String,
    /// `{prefix}:session_rooms:`
    pub(crate) session_rooms: String,
    /// `{prefix}:room_members:`
    pub(crate) room_members: String,
    /// `{prefix}:user_detached:`
    pub(crate) user_detached: String,
    /// `{prefix}:hub:clock`
    pub(crate) clock: String,
    /// `{prefix}:hub:kept`
    pub(crate) kept_bytes: String,
    /// `{prefix}:hub:kept_at`
    pub(crate) kept_at: String,
    /// `{prefix}:hub:kept_total`
    pub(crate) kept_total: String,
    /// `{prefix}:hub:sent:`: on a cluster, a publishing node's last send
    pub(crate) hub_sent: String,
    /// `{prefix}:history:all`
    history_all: String,
    /// `{prefix}:history:user:`
    history_user: String,
    /// `{prefix}:history:room:`
    history_room: String,
    /// `{prefix}:history:session:`
    pub(crate) history_session: String,
    /// `{prefix}:hub:all`
    channel_all: String,
    /// `{prefix}:hub:node:`
    pub(crate) channel_node: String,
    /// `{prefix}:hub:user:`
    channel_user: String,
    /// `{prefix}:hub:room:`
    channel_room: String,
}

impl Keys {
    /// The names of a store under `prefix`, laid out for `layout`. On a cluster the prefix
    /// holds no `{` or `}` (see [`check_cluster_prefix`]).
    pub(crate) fn new(prefix: String, layout: Layout) -> Self {
        // The hub's slot: every hub key and channel, history and room set carries it.
        let hub = match layout {
            Layout::Server => String::new(),
            Layout::Cluster => format!("{{{prefix}}}:"),
        };
        Keys {
            session: format!("{prefix}:session:"),
            user_sessions: format!("{prefix}:user_sessions:"),
            session_rooms: format!("{prefix}:session_rooms:"),
            room_members: format!("{prefix}:room_members:{hub}"),
            user_detached: format!("{prefix}:user_detached:"),
            clock: format!("{prefix}:hub:{hub}clock"),
            kept_bytes: format!("{prefix}:hub:{hub}kept"),
            kept_at: format!("{prefix}:hub:{hub}kept_at"),
            kept_total: format!("{prefix}:hub:{hub}kept_total"),
            hub_sent: format!("{prefix}:hub:{hub}sent:"),
            history_all: format!("{prefix}:history:{hub}all"),
            history_user: format!("{prefix}:history:{hub}user:"),
            history_room: format!("{prefix}:history:{hub}room:"),
            history_session: format!("{prefix}:history:{hub}session:"),
            channel_all: format!("{prefix}:hub:{hub}all"),
            channel_node: format!("{prefix}:hub:{hub}node:"),
            channel_user: format!("{prefix}:hub:{hub}user:"),
            channel_room: format!("{prefix}:hub:{hub}room:"),
            prefix,
            layout,
        }
    }

    /// The slot segment of the keys of `user` and of the user's sessions.
    pub(crate) fn user_slot(&self, user: &str) -> Slot {
        match self.layout {
            Layout::Server => Slot::NONE,
            Layout::Cluster => Slot::tagged(user_tag(user).as_bytes()),
        }
    }

    /// The slot segment of the keys of session `id`: on a cluster, the tag the id starts
    /// with.
    ///
    /// # Errors
    ///
    /// On a cluster, an id that does not start with a slot tag.
    pub(crate) fn session_slot(&self, id: &str) -> Result<Slot, InvalidInput> {
        match self.layout {
            Layout::Server => Ok(Slot::NONE),
            Layout::Cluster => match tag_of(id) {
                Some(tag) => Ok(Slot::tagged(tag)),
                None => Err(InvalidInput::IdWithoutSlot { id: id.to_owned() }),
            },
        }
    }

    /// A fresh session id for `user` (`None`: an anonymous session, whose user id is its
    /// own id): on a cluster, the user's tag (a random one for an anonymous session) and then
    /// a [`new_session_id`](crate::new_session_id).
    pub(crate) fn new_session_id(&self, user: Option<&str>) -> String {
        match (self.layout, user) {
            (Layout::Server, _) => crate::new_session_id(),
            (Layout::Cluster, Some(user)) => {
                format!("{}{}", user_tag(user), crate::new_session_id())
            }
            (Layout::Cluster, None) => {
                format!("{:04x}{}", rand::random::<u16>(), crate::new_session_id())
            }
        }
    }

    /// Whether a session id of `user` is laid out for its user: always on one server.
    pub(crate) fn id_fits_user(&self, id: &str, user: &str) -> bool {
        match self.layout {
            Layout::Server => true,
            Layout::Cluster => tag_of(id) == Some(user_tag(user).as_bytes()),
        }
    }

    /// The channel that carries `topic`.
    pub(crate) fn channel(&self, topic: &Topic) -> Vec<u8> {
        let (head, tail): (&str, &str) = match topic {
            Topic::All => (&self.channel_all, ""),
            Topic::Node(node) => (&self.channel_node, node),
            Topic::User(user) => (&self.channel_user, user),
            Topic::Room(room) => (&self.channel_room, room),
        };
        let mut channel = Vec::with_capacity(head.len() + tail.len());
        channel.extend_from_slice(head.as_bytes());
        channel.extend_from_slice(tail.as_bytes());
        channel
    }

    /// The key of the stream that keeps `stream`'s messages.
    pub(crate) fn history(&self, stream: &Stream) -> String {
        match stream {
            Stream::All => self.history_all.clone(),
            Stream::User(user) => format!("{}{user}", self.history_user),
            Stream::Room(room) => format!("{}{room}", self.history_room),
            Stream::Session(id) => format!("{}{id}", self.history_session),
        }
    }

    /// The set of the sessions a message kept in `stream` could reach: a room's members, a
    /// user's sessions; `None` for everyone and for one session (whose script checks it).
    pub(crate) fn reached_by(&self, stream: &Stream) -> Option<String> {
        match stream {
            Stream::Room(room) => Some(format!("{}{room}", self.room_members)),
            Stream::User(user) => Some(format!("{}{user}", self.user_sessions)),
            Stream::All | Stream::Session(_) => None,
        }
    }

    /// The topic a channel of this store carries, or `None` for any other channel.
    pub(crate) fn topic(&self, channel: &[u8]) -> Option<Topic> {
        if channel == self.channel_all.as_bytes() {
            return Some(Topic::All);
        }
        let tail = |head: &str| {
            channel
                .strip_prefix(head.as_bytes())
                .and_then(|tail| std::str::from_utf8(tail).ok())
        };
        if let Some(room) = tail(&self.channel_room) {
            return Some(Topic::Room(room.to_owned()));
        }
        if let Some(user) = tail(&self.channel_user) {
            return Some(Topic::User(user.to_owned()));
        }
        tail(&self.channel_node).map(|node| Topic::Node(Arc::from(node)))
    }
}

/// The slot tag of `user`: the first `TAG_LEN` hex digits of the SHA-256 of its id; for a
/// user id that is itself a session id of the cluster's (an anonymous session's user is its
/// session), the tag it starts with.
fn user_tag(user: &str) -> String {
    if user.len() == TAG_LEN + 32
        && user
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return user[..TAG_LEN].to_owned();
    }
    let digest = Sha256::digest(user.as_bytes());
    let mut tag = hex::encode(&digest[..TAG_LEN / 2]);
    tag.truncate(TAG_LEN);
    tag
}

/// The slot tag session id `id` starts with, if it starts with one.
fn tag_of(id: &str) -> Option<&[u8]> {
    let tag = id.as_bytes().get(..TAG_LEN)?;
    let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    (id.len() > TAG_LEN && tag.iter().all(lower_hex)).then_some(tag)
}

/// Checks that `prefix` can name the keys of a store on a cluster: it holds no brace, which
/// would start or end a hash tag of its own.
pub(crate) fn check_cluster_prefix(prefix: &str) -> Result<(), String> {
    if prefix.contains(['{', '}']) {
        return Err(format!(
            "the key prefix {prefix:?} holds a brace, which would make its own hash tag on a \
             Redis Cluster"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_name_their_topics_and_back() {
        let keys = Keys::new("app".into(), Layout::Server);
        let topics = [
            Topic::All,
            Topic::Node("n1".into()),
            Topic::User("alice".into()),
            Topic::Room("lobby:1".into()),
            Topic::Room(String::new()),
        ];
        for topic in topics {
            let channel = keys.channel(&topic);
            assert_eq!(keys.topic(&channel), Some(topic));
        }
        assert_eq!(keys.channel(&Topic::All), b"app:hub:all");
        assert_eq!(keys.channel(&Topic::Room("r".into())), b"app:hub:room:r");
        assert_eq!(keys.topic(b"other:hub:all"), None);
        assert_eq!(
            keys.history(&Stream::Room("r".into())),
            "app:history:room:r"
        );
        assert_eq!(
            keys.history(&Stream::Session("s".into())),
            "app:history:session:s"
        );
        assert_eq!(keys.topic(b"app:hub:alll"), None);
    }

    #[test]
    fn on_a_cluster_names_carry_the_tag_of_their_user_or_of_the_hub() {
        let keys = Keys::new("app".into(), Layout::Cluster);
        let id = keys.new_session_id(Some("alice"));
        assert_eq!(id.len(), TAG_LEN + 32);
        let anonymous = keys.new_session_id(None);
        assert!(keys.id_fits_user(&anonymous, &anonymous));
        assert!(keys.id_fits_user(&id, "alice"));
        let slot = keys.session_slot(&id).unwrap();
        assert_eq!(slot, keys.user_slot("alice"));
        assert_eq!(slot.as_str(), format!("{{{}}}:", &id[..TAG_LEN]));
        assert_eq!(
            keys.session_slot("s1"),
            Err(InvalidInput::IdWithoutSlot { id: "s1".into() })
        );
        assert_eq!(
            keys.session_slot("ABCD0"),
            Err(InvalidInput::IdWithoutSlot { id: "ABCD0".into() })
        );
        // Users spread over many tags.
        let tags: std::collections::HashSet<_> = (0..200)
            .map(|n| keys.user_slot(&format!("user{n}")))
            .collect();
        assert!(tags.len() > 190, "{} tags", tags.len());
        assert_eq!(keys.clock, "app:hub:{app}:clock");
        assert_eq!(
            keys.channel(&Topic::Room("r".into())),
            b"app:hub:{app}:room:r"
        );
        assert_eq!(
            keys.history(&Stream::Session("s".into())),
            "app:history:{app}:session:s"
        );
        assert_eq!(
            keys.topic(b"app:hub:{app}:user:bob"),
            Some(Topic::User("bob".into()))
        );
        assert!(check_cluster_prefix("a{b").is_err());
        assert!(check_cluster_prefix("app:v2").is_ok());
        // One server keeps the seed's names.
        let server = Keys::new("app".into(), Layout::Server);
        assert_eq!(server.session_slot("s1"), Ok(Slot::NONE));
        assert!(server.id_fits_user("s1", "alice"));
    }
}
