-- Shared by every script of the Redis store. Each script is the store's configuration
-- (key and channel prefixes, TTL_MS, SET_FLOOR_MS, SET_TTL_MS, SET_MARGIN_MS, MAX_KEYS,
-- MAX_ROOMS, the hub clock's constants; see
-- `scripts.rs`), then this file, then the helpers of `lib/` it uses, then its own body.
--
-- A script runs from its first line on every call, so every helper it includes is built
-- anew each time: a script includes only the helpers it calls, and helpers take what they
-- need as arguments rather than capturing the locals above, which would cost more per call.
--
-- Status codes returned to Rust (keep in step with `scripts.rs`).
local OK = 1
local NOT_FOUND = -1
local NO_OWNER = -2
local TOO_MANY_KEYS = -3
local TAKEN = -4
local TOO_MANY_ROOMS = -5
local TOO_LARGE = -6
local TOO_MANY_SESSIONS = -7
local UNCHANGED = 0
local REFUSED_UNKNOWN = -10
local REFUSED_TOKEN = -11
local REFUSED_USER = -12
-- On a cluster: the script needs keys it was not given (it names them, or the caller reads
-- them); nothing was written.
local NEED_KEYS = -13
