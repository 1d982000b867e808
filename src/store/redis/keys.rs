//! Every key and channel name the Redis store and its hub use, built in this one place.
//!
//! With the prefix `app`:
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
//! | `app:hub:all`                  | channel | envelopes for every connection |
//! | `app:hub:node:{node}`          | channel | envelopes for single sessions held by one node |
//! | `app:hub:user:{user}`          | channel | envelopes for every connection of a user |
//! | `app:hub:room:{room}`          | channel | envelopes for every member of a room |

use std::sync::Arc;

use crate::store::envelope::{Stream, Topic};

/// The prefixes of one store's keys and channels.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) prefix: String,
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
    pub(crate) fn new(prefix: String) -> Self {
        Keys {
            session: format!("{prefix}:session:"),
            user_sessions: format!("{prefix}:user_sessions:"),
            session_rooms: format!("{prefix}:session_rooms:"),
            room_members: format!("{prefix}:room_members:"),
            user_detached: format!("{prefix}:user_detached:"),
            clock: format!("{prefix}:hub:clock"),
            kept_bytes: format!("{prefix}:hub:kept"),
            kept_at: format!("{prefix}:hub:kept_at"),
            kept_total: format!("{prefix}:hub:kept_total"),
            history_all: format!("{prefix}:history:all"),
            history_user: format!("{prefix}:history:user:"),
            history_room: format!("{prefix}:history:room:"),
            history_session: format!("{prefix}:history:session:"),
            channel_all: format!("{prefix}:hub:all"),
            channel_node: format!("{prefix}:hub:node:"),
            channel_user: format!("{prefix}:hub:user:"),
            channel_room: format!("{prefix}:hub:room:"),
            prefix,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_name_their_topics_and_back() {
        let keys = Keys::new("app".into());
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
}
