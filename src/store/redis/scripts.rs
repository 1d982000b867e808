//! The Lua scripts of the Redis store, one per operation that writes or reads more than one key.
//!
//! Each script is `lua/common.lua` followed by the operation's own file. A [`Script`] hashes its
//! text once; calls send `EVALSHA` and load the script only when the server answers `NOSCRIPT`.

use std::sync::LazyLock;

use ::redis::Script;

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

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/common.lua"),
                "\n",
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

pub(super) static CREATE: LazyLock<Script> = script!("create.lua");
pub(super) static SET: LazyLock<Script> = script!("set.lua");
pub(super) static DELETE: LazyLock<Script> = script!("delete.lua");
pub(super) static CLEAR: LazyLock<Script> = script!("clear.lua");
pub(super) static REMOVE: LazyLock<Script> = script!("remove.lua");
pub(super) static LIST: LazyLock<Script> = script!("list.lua");
pub(super) static TOUCH: LazyLock<Script> = script!("touch.lua");
