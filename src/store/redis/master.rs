//! Finding the master of a Redis Sentinel deployment: the last master the sentinels announced,
//! if it still answers as master, otherwise the address the sentinels give.

use std::sync::Mutex;

use ::redis::sentinel::SentinelClient;
use ::redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisError,
    Value,
};

/// Finds the current master of one name.
pub(super) struct MasterFinder {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// How to talk to the master: user, password, database, protocol.
    settings: RedisConnectionInfo,
    /// The last master a sentinel announced (a promoted replica, or a new master). A new
    /// connection tries it first, if it answers as master: the sentinels go on giving the old
    /// master's address until the failover ends, and a sentinel that has not heard of it yet
    /// goes on giving it for a few seconds more; an old master restarted meanwhile calls itself
    /// master until the sentinels demote it, and writes it took would be lost.
    announced: Mutex<Option<(String, u16)>>,
}

impl MasterFinder {
    pub(super) fn new(sentinel: SentinelClient, settings: RedisConnectionInfo) -> Self {
        MasterFinder {
            sentinel: tokio::sync::Mutex::new(sentinel),
            settings,
            announced: Mutex::new(None),
        }
    }

    /// Notes the master a sentinel announced.
    pub(super) fn announce(&self, master: (String, u16)) {
        *self
            .announced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(master);
    }

    /// A client of the master: the last one announced if it answers as master, otherwise the
    /// master the sentinels name (which the redis crate checks the same way).
    pub(super) async fn master(&self) -> Result<Client, RedisError> {
        let announced = self
            .announced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some((host, port)) = announced {
            match self.checked(host, port).await {
                Ok(client) => return Ok(client),
                Err(error) => tracing::debug!(%error, "the announced master is not a master"),
            }
        }
        self.sentinel.lock().await.async_get_client().await
    }

    /// Whether the server at `host:port` answers `ROLE` as a master.
    pub(super) async fn answers_as_master(&self, host: String, port: u16) -> bool {
        self.checked(host, port).await.is_ok()
    }

    /// A client of the server at `host:port`, after checking that it answers as master.
    async fn checked(&self, host: String, port: u16) -> Result<Client, RedisError> {
        let info: ConnectionInfo = ConnectionAddr::Tcp(host, port)
            .into_connection_info()?
            .set_redis_settings(self.settings.clone());
        let client = Client::open(info)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let role: Value = ::redis::cmd("ROLE").query_async(&mut conn).await?;
        match role {
            Value::Array(role) if is_master(&role) => Ok(client),
            _ => Err(RedisError::from((
                ::redis::ErrorKind::Server(::redis::ServerErrorKind::ReadOnly),
                "not a master",
            ))),
        }
    }
}

/// Whether a `ROLE` reply names a master.
pub(super) fn is_master(role: &[Value]) -> bool {
    match role.first() {
        Some(Value::BulkString(name)) => name == b"master",
        Some(Value::SimpleString(name)) => name == "master",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_reply_is_a_master_only_when_it_says_so() {
        let master = [Value::BulkString(b"master".to_vec()), Value::Int(0)];
        let replica = [Value::BulkString(b"slave".to_vec())];
        assert!(is_master(&master));
        assert!(!is_master(&replica));
        assert!(!is_master(&[]));
    }
}
