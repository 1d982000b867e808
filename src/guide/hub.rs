//! # The hub: every connection, on every instance
//!
//! The [hub](crate::hub) holds the clients, users and rooms of every instance. Every connection
//! the layer opens is registered with the hub *node* of its instance for as long as its
//! [`WsSession`](crate::WsSession) lives; nothing to call. Each layer is one node, with a random node id of its own (new at every start).
//!
//! | from | call | what it does |
//! |------|------|--------------|
//! | the handle | `session.join(room)`, `session.leave(room)` | joins or leaves a room, on every instance (rooms live in the store) |
//! | the handle | `session.rooms()` | this connection's rooms |
//! | the socket loop | [`SessionSocket::recv`](crate::socket::SessionSocket::recv) | writes what the hub sends this connection while it waits for the client's next frame |
//! | the handle | `session.recv()`, `session.recv_many(&mut buf, n)` | what the hub sends this connection, for a loop of one's own: `HubEvent::Message(delivery)` or `HubEvent::Close(reason)` |
//! | a `Hub` | `send_to_session(id, m)`, `send_to_user(user, m)`, `send_to_room(room, m)`, `broadcast(m)` | text (`&str`, `String`) or binary (`Vec<u8>`, `Bytes`) messages, to connections on any instance |
//! | a `Hub` | `send_to_room_except(room, id, m)` | to a room but one session (the sender's own connection), live and when that session resumes |
//! | a `Hub` | `disconnect(id)`, `kick(user)` | close one session, or every connection of a user, with 4000; the sessions are removed (with their rooms and index entries) |
//! | a `Hub` | `user_sessions(user)` | every live session of a user on every instance, with its data |
//! | a `Hub` | `members(room)` | every member of the room on every instance (session id, user id), from the store in one round trip; never a session that is gone |
//! | a `Hub` | `stats()` | this node's connections, subscriptions, envelopes received, slow-consumer closes, queued messages and bytes |
//!
//! Get a `Hub` from the layer (`layer.hub()`), from a handle (`session.hub()`), or as an axum
//! extractor: WebSocket routes behind the layer have it, and `.layer(layer.hub())` adds it to
//! ordinary routes (a `POST /notify` handler, say). Without it the extractor answers `500` and
//! says which layer to add.
//!
//! **Delivery guarantees.** Delivery is *at most once*: a message reaches each connection it
//! targets once or not at all — what counts is who is there when the message reaches the
//! node: a connection that is not open, or not yet in the room, at that moment misses it (so
//! does one whose node's Redis pub/sub connection is down), and one that opened or joined there
//! just after the `PUBLISH` but before the message arrived gets it. Messages sent from one instance reach each connection *in the order they were
//! sent*, whatever mix of targets they had: `send_to_user`, `send_to_room` and `broadcast` take
//! their place in that order when they are called (their futures only say whether the broker
//! took the message), one publisher task per instance sends them to Redis in pipelines, and
//! each node reads them from its single pub/sub connection. Each delivery carries an `offset`,
//! higher for every later message on a connection: 1, 2, 3, … without a resume window; with
//! one, the message's place in the store's history (see [the resume guide](super::resume)), which a client
//! presents to get what it missed. Every connection's inbox is *bounded* (`InboxLimits`, by default 1,024
//! messages and 4 MiB; `SessionLayer::inbox_limits` changes it): a message that would pass a
//! bound drops what the inbox holds and closes the connection with 4001 (logged at `warn`), and
//! delivery to everyone else goes on untouched, so a client that stops reading costs at most
//! the bound. A server-initiated close (4000 kick, 4001 too slow) jumps the queue.
//!
//! **Where the messages travel.** `MemoryStore` connects the layers that share it inside one
//! process (no network). `RedisStore` uses Redis pub/sub: a node subscribes to a user's channel
//! while it holds a connection of that user, to a room's channel while it holds a member of the
//! room, and to its own channel and the channel for everyone while it holds any connection;
//! subscriptions are made when the first local member appears and dropped with the last, so a
//! node receives nothing for rooms it has no member of. One dedicated pub/sub connection per
//! node. When it is lost (a Redis restart, `CLIENT KILL TYPE pubsub`), the node reconnects with
//! backoff (50 ms doubling to 5 s) and subscribes again to everything it needs, by itself;
//! publishing while Redis is down fails within the store's timeout with `Unavailable`. A store
//! made with `RedisStore::new(pool, ..)` needs `.pubsub_client(client)` for this (a pool cannot
//! give a pub/sub connection); `RedisStore::connect` makes one.
//!
//! **Limits.** A room name is 1–256 bytes (`Limits::max_room_len`), a connection is in at most
//! 64 rooms (`Limits::max_rooms`, checked atomically by the store), a message is at most 64 KiB
//! (`Limits::max_message_len`). Breaking one is `Error::InvalidInput` (`EmptyRoom`,
//! `RoomTooLong`, `TooManyRooms`, `MessageTooLarge`): nothing is written and nothing is sent.
//!
//! **Tracing.** `debug` when a node subscribes to or unsubscribes from a topic, and when Redis
//! confirms subscriptions; `warn` when the pub/sub connection is lost or cannot be opened, and
//! for every slow-consumer close; `info` when the pub/sub connection is back and for every kick.
