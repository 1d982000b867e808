//! # The Redis layout, for operators
//!
//! On one server, alone or behind Sentinel, with the prefix `app` (a Redis Cluster adds hash
//! tags to these names: see [Redis Cluster](#redis-cluster) below):
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
//! On one server, the scripts derive the user set's key from the session hash, and a session's
//! rooms' keys from its rooms: this layout needs one Redis (or Valkey) master, alone or with
//! replicas behind Sentinel (below). [`RedisStore::connect`](crate::RedisStore::connect)
//! refuses a node of a Redis Cluster, which has a layout of its own (further below). The
//! scripts carry the store's configuration (prefix, TTL, key limit) as constants, so each
//! configuration has scripts of its own in Redis's script cache; a store loads them when Redis
//! first answers `NOSCRIPT` (a new server, a restart, a `SCRIPT FLUSH`, a promoted replica).
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
//!
//! # Redis Cluster
//!
//! For more sessions than one master holds, run a Redis Cluster (a replica per master, for
//! failover) and build the store with
//! [`RedisStore::connect_cluster`](crate::RedisStore::connect_cluster) from a few of its nodes.
//! The chat example does this when `REDIS_CLUSTER=host:port,...` is set.
//!
//! **Session ids carry a slot.** A session's keys and its user's set and detached sessions
//! share one slot, so that creating, writing, listing and removing stay single atomic scripts.
//! The slot comes from a *slot tag*: four hex digits of the SHA-256 of the user id. A session
//! id on a cluster starts with its user's tag, so that the store finds a session's slot from
//! its id alone: [`SessionStore::new_session_id`](crate::SessionStore::new_session_id) makes
//! such ids (the layer uses it), and [`create_session`](crate::SessionStore::create_session)
//! refuses an id that does not start with its user's tag (`InvalidInput::IdWithoutSlot`). An
//! anonymous session, whose user id is its own id, has a random tag. With 65,536 tags, the
//! sessions of different users spread over every master; one user's sessions share a slot.
//!
//! **Keys.** Every name of the table above carries a hash tag after its kind:
//!
//! | key | slot |
//! |-----|------|
//! | `app:session:{T}:{id}`, `app:session_rooms:{T}:{id}` | the tag `T` of the session's user (the first four characters of the id) |
//! | `app:user_sessions:{T}:{user}`, `app:user_detached:{T}:{user}` | the user's tag |
//! | `app:room_members:{app}:{room}` | the hub's: `{app}`, the prefix |
//! | `app:hub:{app}:clock`, `app:hub:{app}:kept`, `app:hub:{app}:kept_at`, `app:hub:{app}:kept_total`, `app:hub:{app}:sent:{node}` | the hub's |
//! | `app:history:{app}:all`, `app:history:{app}:user:{user}`, `app:history:{app}:room:{room}`, `app:history:{app}:session:{id}` | the hub's |
//!
//! and the channels are `app:hub:{app}:all`, `app:hub:{app}:node:{node}`,
//! `app:hub:{app}:user:{user}` and `app:hub:{app}:room:{room}`, shard channels in the hub's
//! slot, which the hub publishes with `SPUBLISH` and subscribes with `SSUBSCRIBE`. For
//! example `app:session:{3f2a}:3f2a9c41...` and `app:user_sessions:{3f2a}:alice`. The prefix
//! may hold no `{` or `}`. `app:hub:{app}:sent:{node}` holds the number of a hub node's last
//! send (see below), for a day after it.
//!
//! **One slot for the hub.** The clock, the histories, the rooms' sets and the channels share
//! the hub's slot, so that one script keeps a message under the next offset and publishes it,
//! as on one server. Sessions do not: they spread. The hub's throughput is then one master's
//! (`docs/performance.md` in the repository has the fan-out figure beside one server's); a
//! room's membership and the hub's messages are as busy as that one master allows.
//!
//! **Every script touches only keys it declares**, all of one slot: Redis refuses a script
//! whose declared keys span slots, and the store's scripts name no key that is not among
//! their `KEYS` (the crate's tests run every script against a single-node cluster, where any
//! other slot fails, with a check that fails any undeclared key). Where one server's script
//! also wrote a key of another slot, the store makes a second call in that slot, after the
//! first, before the operation answers:
//!
//! - A room's set is an index of the sessions' own records of their rooms
//!   (`session_rooms`), which are the truth: a join adds the session to the room's set
//!   first, then to its record (taking it out again if the record refuses); a leave, a
//!   removal or a detach that evicts a session takes it out of its record first, then out of
//!   the set. So the set holds every member, and a read of a room's members
//!   ([`members`]) reads it, checks each session against its record (one script per slot),
//!   and drops the sessions that are gone.
//! - A write that renews a session's TTL keeps its user set and rooms alive with a call of
//!   their own; the histories a kept message pushes past the bound in all are evicted by one;
//!   a new session reads the hub's clock first.
//! - Listing a user's sessions, creating at the cap, removing all of a user's sessions and a
//!   detach that evicts need the keys of the user's other sessions: the store reads the
//!   user's set (or detached set), then sends the script with those keys; a script that finds
//!   the set changed in between answers so, writes nothing, and the store reads again.
//!
//! A crash between the two calls leaves a room's set naming a session that has left (the
//! reads of members skip it, and drop it once the session is gone), or a user set or a room's
//! set with a shorter TTL than it should have (the next renewal or the keep-alive repairs it).
//!
//! **Sent again, applied once.** The cluster client sends a request again after the
//! connection it went out on drops, even if the request had reached the server. A create
//! carries a nonce its session keeps, so the same create sent again answers `OK`, not
//! `AlreadyExists`; a claim sent again finds its own new token in place and answers as it did
//! (without counting another attachment); every message the hub keeps or sends to a session
//! carries its node's next number, and a number not above the last one
//! `app:hub:{app}:sent:{node}` records is neither kept nor published again. Writes of data,
//! touches, joins, leaves and removals give the same state when applied twice.
//!
//! **Failover.** When a master fails, its replica is promoted by the cluster itself (after
//! `cluster-node-timeout`). What the store does:
//!
//! - It keeps one connection to each node and follows slots as they move (`MOVED`). It asks a
//!   node for the map of slots to masters every 500 ms, and when the masters change, or an
//!   operation fails on a connection that is gone, silent past the timeout, read-only, or sent
//!   to a node without the slot (`CLUSTERDOWN`), it opens a new connection from a map that
//!   covers every slot (a node that came back empty, knowing no slot, is not asked) and puts it
//!   in place of the old one.
//! - The hub's subscriber connects to the master of the hub's slot, as the cluster names it,
//!   and subscribes there. When the connection drops, the server drops its subscriptions (the
//!   slot left it), or another master serves the slot (asked every 500 ms), it connects to
//!   the new master and subscribes again to every channel. All its channels share one slot, so
//!   none can be left behind on a connection that resubscribed only some.
//! - While a slot has no master, the operations on it fail with `Error::Unavailable` within
//!   the store's timeout (the others go on), and upgrades whose session lands there, or that
//!   need the hub, get `503`. Once a replica is promoted, everything works again without a
//!   restart. A demoted master that comes back takes no write from the store: the store's
//!   connection has moved to the new map, and the old master, now a replica or empty, serves
//!   no slot.
//!
//! What a failover can lose, and how to close the window: as with Sentinel, replication is
//! asynchronous, and a write a master acknowledged before its replica had it is lost when the
//! replica is promoted. `min-replicas-to-write 1` with `min-replicas-max-lag 10` on every
//! master bounds that loss to the replication lag (a master cut off from its replica stops
//! taking writes), at the price of refusing writes (`NOREPLICAS`, reported as
//! `Error::Unavailable`) on a master whose replica is down. Messages published while a node's
//! subscriber moves to the new master are not delivered live to that node; a client that
//! resumes gets the kept ones from the history.
//!
//! [`members`]: crate::hub::Hub::members
