//! # The Redis layout, for operators
//!
//! With the prefix `app`:
//!
//! | key                          | type | holds | TTL |
//! |------------------------------|------|-------|-----|
//! | `app:session:{id}`           | Hash | one session | the session TTL, renewed by every keep-alive tick (one `PEXPIRE`), and by every write that finds less than 63/64 of it left (a 64th is at most a second) |
//! | `app:user_sessions:{user}`   | Set  | the ids of the user's sessions | at least four session TTLs and a second longer than that of its longest-lived member: when a write would leave it less, it is set to five TTLs and a second; the keep-alive of open sessions renews it once every two TTLs |
//! | `app:session_rooms:{id}`     | Hash | the rooms of one session, each with the hub offset at which it joined | like a user set's, set whenever the session's TTL is; the resume window once detached |
//! | `app:room_members:{room}`    | Set  | the ids of the room's sessions | like a user set's |
//! | `app:user_detached:{user}`   | Sorted set | the user's detached sessions, scored by the time they detached (for the cap) | twice the window and a second, from the last detach |
//! | `app:hub:clock`              | String | the last offset the hub gave a message | a day (or four retentions), renewed by every kept message |
//! | `app:history:all`            | Stream | messages sent to everyone, kept for resumes | twice the retention and a second, renewed by every message |
//! | `app:history:user:{user}`    | Stream | messages sent to a user | as above |
//! | `app:history:room:{room}`    | Stream | messages sent to a room | as above |
//! | `app:history:session:{id}`   | Stream | messages sent to one session | no longer than the session's |
//! | `app:hub:kept`               | Hash | the payload bytes each history holds, by its key | twice the retention and two seconds, renewed by every kept message |
//! | `app:hub:kept_at`            | Sorted set | each history's key, scored by when it was last written (the least recent go first past the bound in all) | as above |
//! | `app:hub:kept_total`         | String | the payload bytes every history holds together | as above |
//!
//! The `history` streams, the clock and the detached sets exist only with a resume window. A
//! history entry has the message's offset as its id (`{offset}-0`) and two fields, `k` (the kind
//! byte) and `p` (the payload); a message to a room without members or a user without sessions
//! is kept nowhere. Entries past the count or the bytes of a target, or older than the
//! retention, are dropped with `XDEL` on every write, which records the highest id dropped, so a
//! resume can tell that something it needed is gone; past the bound in all, the least recently
//! written histories are emptied whole (`XTRIM`, with `XSETID ... MAXDELETEDID` recording what
//! was dropped). A user's or a room's set may name an expired session until it is
//! read (which prunes it) or its own TTL runs out.
//!
//! The hub's channels (pub/sub, no keys):
//!
//! | channel | carries | subscribed by |
//! |---------|---------|---------------|
//! | `app:hub:all`          | messages for everyone | every node with a connection |
//! | `app:hub:node:{node}`  | messages and closes for single sessions held by that node | that node, while it holds a connection |
//! | `app:hub:user:{user}`  | messages and kicks for every connection of a user | every node holding a connection of the user |
//! | `app:hub:room:{room}`  | messages for every member of a room | every node holding a member of the room |
//!
//! A channel message is one kind byte (`T` text, `B` binary, `C` close, `X` takeover), the
//! offset's length (one byte; 0 without a resume window) and decimal digits, the target
//! session's length (two bytes) and id (empty on all but node channels), then the text or
//! bytes, a close's code (two bytes) and reason, or a takeover's epoch.
//!
//! Fields of `app:session:{id}`:
//!
//! | field              | value |
//! |--------------------|-------|
//! | `meta:user_id`     | the user |
//! | `meta:created_at`  | creation time, ms since the Unix epoch |
//! | `meta:last_active` | last write or `touch`, ms since the Unix epoch (the keep-alive of open sessions leaves it) |
//! | `meta:node`        | the hub node holding the session's connection (a session the layer opened; none while detached) |
//! | `meta:rooms`       | how many rooms the session is in, when it is in any |
//! | `meta:epoch`       | which attachment holds the session: 1, one more on each resume |
//! | `meta:since`       | the hub offset when the session was created: older messages are not its |
//! | `meta:token`       | the SHA-256 of its resume token, in hex (a session the layer opened) |
//! | `meta:detached`    | when it was detached, ms since the Unix epoch, while it is |
//! | `meta:set_until`   | a time (Redis's clock, ms) until which the user's set is known to live, written at creation: a write looks at the set's TTL only when that time is near (a touch always looks) |
//! | `meta:lives_until` | when (Redis's clock, ms) the TTL that the session's creation or last renewing write gave it runs out: a write renews the TTL only when that time is less than 63/64 of a TTL away, so a session written all the time pays for its renewal about once per 64th of its TTL, and at most once a second |
//! | `meta:bytes`       | the bytes of the session's data (every key's length plus its value's JSON length), checked against `Limits::max_session_bytes` on every write |
//! | `data:{key}`       | the value of data key `{key}`, as compact JSON text |
//!
//! ```text
//! $ redis-cli HGETALL app:session:5d41402abc4b2a76b9719d911017c592
//! 1) "meta:user_id"
//! 2) "alice"
//! 3) "meta:created_at"
//! 4) "1764000000000"
//! 5) "meta:last_active"
//! 6) "1764000042000"
//! 7) "meta:epoch"
//! 8) "1"
//! 9) "meta:since"
//! 10) "1151268864000000"
//! 11) "meta:node"
//! 12) "4c1a3e0f9b2d7a6e8f5c1b0a9d8e7f6a"
//! 13) "meta:token"
//! 14) "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! 15) "data:preferences"
//! 16) "{\"theme\":\"dark\"}"
//! $ redis-cli SMEMBERS app:user_sessions:alice
//! 1) "5d41402abc4b2a76b9719d911017c592"
//! $ redis-cli PTTL app:session:5d41402abc4b2a76b9719d911017c592
//! (integer) 58140
//! ```
//!
//! Rules the store keeps:
//!
//! - Every operation is one round trip (`HGETALL`, `HMGET`, or a Lua script sent by SHA) and
//!   atomic: two instances writing different keys of one session at once both win.
//! - Writes in the air at the same time share one script call (a *group commit*): a lone write
//!   goes out at once; while four calls are in flight, new writes queue for the next one, at
//!   most 64 sessions and 256 KiB of arguments per call, so that no call holds Redis for long.
//!   Each write is still checked and applied on its own, and its caller gets its own result
//!   (or error) within its own timeout.
//! - Every key carries a TTL; a write to an expired session fails with `NotFound` and
//!   recreates nothing.
//! - `get_user_sessions` returns live sessions only, and removes the ids of expired ones from
//!   the set; `room_members` does the same for a room.
//! - `remove_session` removes the session from its user set and from every room in the same
//!   script; a room left by its last member leaves no key (Redis deletes an empty set).
//! - A stored value that is not valid JSON is reported as `Error::Corrupt` with its session and
//!   field, never a panic.
//! - Redis down: every operation fails within the store's timeout (2 s by default) with
//!   `Error::Unavailable`; once Redis is back the same store works again.
//!
//! The scripts derive the user set's key from the session hash, so the store needs one Redis
//! (or Valkey) master, alone or with replicas behind Sentinel (below); Redis Cluster is not
//! supported yet. They carry the store's configuration (prefix, TTL, key limit) as constants, so
//! each configuration has scripts of its own in Redis's script cache; a store loads them when
//! Redis first answers `NOSCRIPT` (a new server, a restart, a `SCRIPT FLUSH`).
//!
//! # Redis Sentinel
//!
//! For a Redis that must survive the loss of its server, run a master with replicas and three
//! or more sentinels, and build the store with
//! [`RedisStore::connect_sentinel`](crate::RedisStore::connect_sentinel) (the sentinels'
//! addresses and the master's name) instead of a URL. The keys are the ones above, on the
//! master. The chat example does this when `REDIS_SENTINEL=host:port,...` is set (with
//! `REDIS_SENTINEL_MASTER`, default `mymaster`).
//!
//! What the store does:
//!
//! - Every connection it opens, the pool's and the hub's pub/sub connection, asks every
//!   sentinel for the master, goes to the one most of them name, and checks that the server
//!   answers `ROLE` as a master. A sentinel that missed a failover (it was down, and came back
//!   with its old configuration) names the old master, which, restarted empty, calls itself
//!   master until the sentinels demote it: the other sentinels outvote it.
//! - It listens to every sentinel. When the sentinel leading a failover selects a replica
//!   (`+selected-slave`), the store asks that replica every 20 ms whether it is master yet;
//!   as soon as it is (or a sentinel announces it, `+promoted-slave`, `+switch-master`), the
//!   store replaces its connections and the hub subscribes again there, without waiting for
//!   an operation to fail or for the sentinels to finish the failover. From then on, a new
//!   connection tries that announced master first, so a sentinel that has not heard of the
//!   failover yet cannot send the store back to the old master.
//! - An operation that finds its server read-only (`READONLY`), short of replicas
//!   (`NOREPLICAS`), without a master (`MASTERDOWN`), gone, or silent past the timeout makes
//!   the store check its connections in the background, and replace any whose server no longer
//!   answers as a master.
//! - While no master answers, every operation fails with `Error::Unavailable` within the
//!   store's timeout, and the layer answers upgrades with `503`. Once the sentinels have
//!   promoted a replica, the same store works again: no restart.
//! - A demoted master that comes back (restarted, or woken from a pause) takes no write from
//!   the store: its connections moved to the new master when it was promoted, and every new
//!   connection checks the role of the server it reaches.
//! - Operations already waiting on a master that was paused or cut off wait out their timeout;
//!   the ones sent after the move go to the new master. `docs/performance.md` in the
//!   repository has the time from the outage to the store's first write, beside Redis's own.
//!
//! What a failover can lose. Redis replicates asynchronously: a write that the master
//! acknowledged but had not yet sent to a replica is gone when that replica is promoted. For
//! this crate that can be a session created, a data write, a join or leave, a detach or a
//! claim that the replicas had not received when the master died, and the hub messages published in the gap, which pub/sub never stores. A session
//! whose creation was lost makes its next operation fail with `NotFound`; a claim that was lost
//! lets the same token claim once more on the new master. Hub messages that a node's
//! subscriber missed while it moved are not delivered live; a client that resumes gets the kept
//! ones from the history, if the history write itself reached the replica.
//!
//! How an operator closes most of that window: set `min-replicas-to-write 1` and
//! `min-replicas-max-lag 10` on the master (and on every replica, which may become the
//! master). A master that has lost touch with all its replicas for ten seconds then refuses
//! writes (`NOREPLICAS`, which the store reports as `Error::Unavailable`), so a master cut off
//! from the others stops taking writes that a failover would throw away. It bounds the loss
//! to the replication lag; it does not remove it: a write is still acknowledged before any
//! replica has it. Redis has no fully synchronous mode; `WAIT` after each write would give one
//! write's durability at the cost of a replica round trip per write, and this crate does not
//! send it.
