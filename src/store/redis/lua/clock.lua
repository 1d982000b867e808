-- On a cluster, where a new session's hash and the hub's clock live in different slots: the
-- hub's offset now, which the session keeps as `meta:since`.
-- KEYS[1] the hub's clock
return clock_now(KEYS[1], server_ms())
