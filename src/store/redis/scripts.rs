//! The Lua scripts of the Redis store, one per operation that writes or reads more than one key.
//!
//! Each script is a header that fixes the store's configuration as constants (its key
//! prefixes, its TTL, its key limit), then `lua/common.lua`, then the helpers of `lua/lib/` it
//! calls, then the operation's own file. So a call sends only what changes from call to call,
//! and the server runs no string-to-number conversions for values that never change. Stores
//! configured alike share the same scripts; stores configured differently each load their own.
//!
//! A [`StoreScript`] hashes its text once; calls send `EVALSHA` and load the script only when
//! the server answers `NOSCRIPT`.

use std::fmt::Write as _;
use std::time::Duration;

use ::redis::{Cmd, Script};

use super::keys::{Keys, Layout, TAG_LEN};
use crate::store::keep_alive::INDEX_FLOOR_TTLS;
use crate::store::message::{CLOCK_EPOCH_MS, OFFSETS_PER_MS};

/// The script finished and wrote what it was asked to.
pub(super) const OK: i64 = 1;
/// The session does not exist; nothing was written.
pub(super) const NOT_FOUND: i64 = -1;
/// The session hash exists but has no `meta:user_id`; nothing was written.
pub(super) const NO_OWNER: i64 = -2;
/// The write would leave the session with too many data keys; nothing was written.
pub(super) const TOO_MANY_KEYS: i64 = -3;
/// `create_session` found the id taken; nothing was written.
pub(super) const TAKEN: i64 = -4;
/// Joining would put the session in too many rooms; nothing was written.
pub(super) const TOO_MANY_ROOMS: i64 = -5;
/// The write would leave the session with too many bytes of data; nothing was written. The
/// script answers `{TOO_LARGE, bytes}`.
pub(super) const TOO_LARGE: i64 = -6;
/// The user has too many sessions for another; nothing was written.
pub(super) const TOO_MANY_SESSIONS: i64 = -7;
/// The session was in the room already (join), was not in it (leave), or is held by a newer
/// connection (detach).
pub(super) const UNCHANGED: i64 = 0;
/// A claim found no resumable session of that id.
pub(super) const REFUSED_UNKNOWN: i64 = -10;
/// A claim presented a token that is not the session's.
pub(super) const REFUSED_TOKEN: i64 = -11;
/// A claim came from another user than the session's.
pub(super) const REFUSED_USER: i64 = -12;
/// On a cluster: the script needs keys the call did not declare; nothing was written.
pub(super) const NEED_KEYS: i64 = -13;

/// An index key is kept alive at least this much longer than the session TTLs it is given.
const SET_MARGIN_MS: u64 = 1000;

/// A session written all the time has its TTL renewed at most this often: a 64th of its TTL,
/// at most a second (see `lua/write.lua`).
const RENEW_EVERY_MAX_MS: u64 = 1000;

/// How often, at most, the writes to a session renew its TTL, for a store of `ttl_ms`: so a
/// session has at least 63/64 of its TTL left after any write.
fn renew_every_ms(ttl_ms: u64) -> u64 {
    (ttl_ms / 64).min(RENEW_EVERY_MAX_MS)
}

/// What the scripts of one store take as constants.
pub(super) struct Config<'a> {
    pub(super) keys: &'a Keys,
    /// Whether every script checks, as it runs, that each key it touches is one it declared
    /// (test builds on a cluster, see `lua/lib/strict.lua`).
    pub(super) strict: bool,
    pub(super) ttl: Duration,
    pub(super) max_keys: usize,
    pub(super) max_rooms: usize,
    pub(super) max_session_bytes: usize,
    pub(super) max_user_sessions: usize,
}

/// The scripts of one store.
pub(super) struct Scripts {
    pub(super) create: StoreScript,
    /// The writes of one group commit: sets, updates, deletes, clears and touches.
    pub(super) write: StoreScript,
    pub(super) remove: StoreScript,
    pub(super) list: StoreScript,
    pub(super) join: StoreScript,
    pub(super) leave: StoreScript,
    pub(super) rooms: StoreScript,
    pub(super) members: StoreScript,
    pub(super) remove_user: StoreScript,
    pub(super) claim: StoreScript,
    pub(super) detach: StoreScript,
    pub(crate) publish: StoreScript,
    pub(crate) send: StoreScript,
    pub(super) replay: StoreScript,
    pub(super) keep_alive: StoreScript,
    /// On a cluster: the hub's offset now, for a new session.
    pub(super) clock: StoreScript,
    /// On a cluster: a session's indexes kept alive after its TTL was renewed.
    pub(super) keep_index: StoreScript,
    /// On a cluster: a room's set of members in the hub's slot.
    pub(super) room_index: StoreScript,
    /// On a cluster: the members of a room among the sessions of one slot.
    pub(super) verify_members: StoreScript,
    /// On a cluster: the histories a kept message named for eviction.
    pub(crate) evict: StoreScript,
}

/// The helpers of `lua/lib/`, each included only by the scripts that call it.
const OWNER_OF: &str = include_str!("lua/lib/owner_of.lua");
const OUTLIVE: &str = include_str!("lua/lib/outlive.lua");
const DATA_FIELDS: &str = include_str!("lua/lib/data_fields.lua");
const KEEP_LISTED_ROOMS: &str = include_str!("lua/lib/keep_listed_rooms.lua");
/// `keep_rooms` calls `keep_listed_rooms`, so it comes with it.
const KEEP_ROOMS: &str = concat!(
    include_str!("lua/lib/keep_listed_rooms.lua"),
    include_str!("lua/lib/keep_rooms.lua")
);
/// `forget` names its keys with `slotted`, so it comes with it.
const FORGET: &str = concat!(
    include_str!("lua/lib/slotted.lua"),
    include_str!("lua/lib/forget.lua")
);
const HISTORY: &str = include_str!("lua/lib/history.lua");
const SLOTTED: &str = include_str!("lua/lib/slotted.lua");
const NEEDS_LOOK: &str = include_str!("lua/lib/needs_look.lua");
const FIRST_SEND: &str = include_str!("lua/lib/first_send.lua");

impl Scripts {
    pub(super) fn new(config: &Config<'_>) -> Self {
        let head = header(config);
        let script = |helpers: &[&str], body: &str| {
            let mut code = head.clone();
            if config.strict {
                code.push_str(include_str!("lua/lib/strict.lua"));
            }
            code.push_str(include_str!("lua/common.lua"));
            for helper in helpers {
                code.push_str(helper);
            }
            code.push_str(body);
            StoreScript::new(code)
        };
        Scripts {
            create: script(&[OUTLIVE, HISTORY, SLOTTED], include_str!("lua/create.lua")),
            write: script(&[DATA_FIELDS], include_str!("lua/write.lua")),
            remove: script(&[FORGET], include_str!("lua/remove.lua")),
            list: script(&[SLOTTED], include_str!("lua/list.lua")),
            join: script(
                &[OWNER_OF, OUTLIVE, KEEP_ROOMS, HISTORY, SLOTTED, NEEDS_LOOK],
                include_str!("lua/join.lua"),
            ),
            leave: script(
                &[OWNER_OF, OUTLIVE, KEEP_ROOMS, SLOTTED, NEEDS_LOOK],
                include_str!("lua/leave.lua"),
            ),
            rooms: script(&[], include_str!("lua/rooms.lua")),
            members: script(&[], include_str!("lua/members.lua")),
            remove_user: script(&[FORGET], include_str!("lua/remove_user.lua")),
            claim: script(
                &[OUTLIVE, KEEP_LISTED_ROOMS, SLOTTED],
                include_str!("lua/claim.lua"),
            ),
            detach: script(
                &[OUTLIVE, KEEP_ROOMS, FORGET],
                include_str!("lua/detach.lua"),
            ),
            publish: script(&[HISTORY, FIRST_SEND], include_str!("lua/publish.lua")),
            send: script(&[HISTORY, FIRST_SEND], include_str!("lua/send.lua")),
            replay: script(&[], include_str!("lua/replay.lua")),
            keep_alive: script(&[], include_str!("lua/keep_alive.lua")),
            clock: script(&[HISTORY], include_str!("lua/clock.lua")),
            keep_index: script(&[OUTLIVE, HISTORY], include_str!("lua/keep_index.lua")),
            room_index: script(&[OUTLIVE, HISTORY], include_str!("lua/room_index.lua")),
            verify_members: script(&[], include_str!("lua/verify_members.lua")),
            evict: script(&[HISTORY], include_str!("lua/evict.lua")),
        }
    }
}

/// The constants every script of the store starts with. Durations that go to `PEXPIRE` as they
/// are stay strings; those the scripts compute with are numbers.
fn header(config: &Config<'_>) -> String {
    // PEXPIRE 0 would delete the key at once.
    let ttl_ms = u64::try_from(config.ttl.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let cluster = config.keys.layout == Layout::Cluster;
    // On a cluster a script starts with a shebang: Redis then refuses any key of a slot other
    // than its declared keys', where it would let a script without one run.
    let mut head = String::from(if cluster { "#!lua\n" } else { "" });
    head.push_str("-- The configuration of the store these scripts belong to.\n");
    let mut constant = |name: &str, value: &str| {
        writeln!(head, "local {name} = {value}").expect("writing to a String cannot fail");
    };
    constant("SESSION_PREFIX", &lua_string(&config.keys.session));
    constant("USER_SET_PREFIX", &lua_string(&config.keys.user_sessions));
    constant(
        "SESSION_ROOMS_PREFIX",
        &lua_string(&config.keys.session_rooms),
    );
    constant(
        "ROOM_MEMBERS_PREFIX",
        &lua_string(&config.keys.room_members),
    );
    constant(
        "USER_DETACHED_PREFIX",
        &lua_string(&config.keys.user_detached),
    );
    constant(
        "HISTORY_SESSION_PREFIX",
        &lua_string(&config.keys.history_session),
    );
    constant(
        "NODE_CHANNEL_PREFIX",
        &lua_string(&config.keys.channel_node),
    );
    constant("KEPT_BYTES_KEY", &lua_string(&config.keys.kept_bytes));
    constant("KEPT_AT_KEY", &lua_string(&config.keys.kept_at));
    constant("KEPT_TOTAL_KEY", &lua_string(&config.keys.kept_total));
    constant("CLUSTER", if cluster { "true" } else { "false" });
    constant("TAG_LEN", &TAG_LEN.to_string());
    // Where a session id starts in its hash's key, after the kind and, on a cluster, the tag.
    let id_at = config.keys.session.len() + 1 + if cluster { TAG_LEN + 3 } else { 0 };
    constant("SESSION_ID_AT", &id_at.to_string());
    constant("CLOCK_EPOCH_MS", &CLOCK_EPOCH_MS.to_string());
    constant("OFFSETS_PER_MS", &OFFSETS_PER_MS.to_string());
    constant("TTL_MS", &format!("'{ttl_ms}'"));
    // An index key (a user set, a room's members, a session's rooms) outlives its sessions
    // by INDEX_FLOOR_TTLS TTLs, so that the keep-alive renews it seldom (see `keep_alive.rs`);
    // one TTL more when it is renewed, so that most writes only read its TTL.
    let index_ttls = |ttls: u32| {
        ttl_ms
            .saturating_mul(u64::from(ttls))
            .saturating_add(SET_MARGIN_MS)
    };
    constant("SET_FLOOR_MS", &index_ttls(INDEX_FLOOR_TTLS).to_string());
    constant(
        "SET_TTL_MS",
        &format!("'{}'", index_ttls(INDEX_FLOOR_TTLS + 1)),
    );
    constant("SET_MARGIN_MS", &SET_MARGIN_MS.to_string());
    let renew_every = renew_every_ms(ttl_ms);
    constant("RENEW_EVERY_MS", &renew_every.to_string());
    constant("RENEW_BELOW_MS", &(ttl_ms - renew_every).to_string());
    constant("MAX_KEYS", &config.max_keys.to_string());
    constant("MAX_ROOMS", &config.max_rooms.to_string());
    constant("MAX_SESSION_BYTES", &config.max_session_bytes.to_string());
    constant("MAX_USER_SESSIONS", &config.max_user_sessions.to_string());
    head
}

/// `text` as a Lua string literal: bytes other than letters, digits and `:_-.` are written as
/// three-digit decimal escapes, so any prefix is safe to embed.
fn lua_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('\'');
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b":_-.".contains(&byte) {
            literal.push(char::from(byte));
        } else {
            write!(literal, "\\{byte:03}").expect("writing to a String cannot fail");
        }
    }
    literal.push('\'');
    literal
}

/// The text of a script and its SHA1, the name `EVALSHA` calls it by.
pub(crate) struct StoreScript {
    code: String,
    hash: String,
}

impl StoreScript {
    fn new(code: String) -> Self {
        let hash = Script::new(&code).get_hash().to_owned();
        StoreScript { code, hash }
    }

    /// The SHA1 of the script, in hex.
    pub(crate) fn hash(&self) -> &str {
        &self.hash
    }

    /// `SCRIPT LOAD` of the script, for a server that does not know it yet.
    pub(crate) fn load_cmd(&self) -> Cmd {
        let mut cmd = ::redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(&self.code);
        cmd
    }

    /// The script's text.
    pub(crate) fn code(&self) -> &str {
        &self.code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_fixes_the_configuration() {
        let keys = Keys::new("app".into(), Layout::Server);
        let head = header(&Config {
            keys: &keys,
            strict: false,
            ttl: Duration::from_secs(60),
            max_keys: 10,
            max_rooms: 5,
            max_session_bytes: 1000,
            max_user_sessions: 3,
        });
        assert_eq!(
            head.lines().skip(1).collect::<Vec<_>>(),
            [
                "local SESSION_PREFIX = 'app:session:'",
                "local USER_SET_PREFIX = 'app:user_sessions:'",
                "local SESSION_ROOMS_PREFIX = 'app:session_rooms:'",
                "local ROOM_MEMBERS_PREFIX = 'app:room_members:'",
                "local USER_DETACHED_PREFIX = 'app:user_detached:'",
                "local HISTORY_SESSION_PREFIX = 'app:history:session:'",
                "local NODE_CHANNEL_PREFIX = 'app:hub:node:'",
                "local KEPT_BYTES_KEY = 'app:hub:kept'",
                "local KEPT_AT_KEY = 'app:hub:kept_at'",
                "local KEPT_TOTAL_KEY = 'app:hub:kept_total'",
                "local CLUSTER = false",
                "local TAG_LEN = 4",
                "local SESSION_ID_AT = 13",
                "local CLOCK_EPOCH_MS = 1767225600000",
                "local OFFSETS_PER_MS = 4096",
                "local TTL_MS = '60000'",
                "local SET_FLOOR_MS = 241000",
                "local SET_TTL_MS = '301000'",
                "local SET_MARGIN_MS = 1000",
                "local RENEW_EVERY_MS = 937",
                "local RENEW_BELOW_MS = 59063",
                "local MAX_KEYS = 10",
                "local MAX_ROOMS = 5",
                "local MAX_SESSION_BYTES = 1000",
                "local MAX_USER_SESSIONS = 3",
            ]
        );
    }

    #[test]
    fn any_prefix_becomes_a_safe_literal() {
        assert_eq!(lua_string("a:b_c-1.2"), "'a:b_c-1.2'");
        assert_eq!(lua_string("it's]]\n"), r"'it\039s\093\093\010'");
        assert_eq!(lua_string("é"), r"'\195\169'");
    }

    #[test]
    fn stores_configured_differently_have_different_scripts() {
        let keys = Keys::new("app".into(), Layout::Server);
        let config = |ttl, max_keys| Config {
            keys: &keys,
            strict: false,
            ttl: Duration::from_secs(ttl),
            max_keys,
            max_rooms: 64,
            max_session_bytes: 1 << 20,
            max_user_sessions: 64,
        };
        let a = Scripts::new(&config(60, 10));
        assert_eq!(a.write.hash(), Scripts::new(&config(60, 10)).write.hash());
        assert_ne!(a.write.hash(), Scripts::new(&config(61, 10)).write.hash());
        assert_ne!(a.write.hash(), Scripts::new(&config(60, 11)).write.hash());
        assert_ne!(a.write.hash(), a.create.hash());
    }
}
