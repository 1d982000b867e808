//! Finding the master of a Redis Sentinel deployment: the last master the sentinels announced,
//! if it still answers as master, otherwise the address most sentinels give.

use std::sync::Mutex;
use std::time::Duration;

use ::redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisError,
    Value,
};
use futures_util::future::join_all;

/// How long a sentinel has to say which server is the master.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Finds the current master of one name.
pub(super) struct MasterFinder {
    /// A client of each sentinel.
    sentinels: Vec<Client>,
    /// The master's name, as the sentinels know it.
    name: String,
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
    pub(super) fn new(sentinels: Vec<Client>, name: String, settings: RedisConnectionInfo) -> Self {
        MasterFinder {
            sentinels,
            name,
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
    /// one most sentinels name, if it answers as master.
    ///
    /// Every sentinel is asked, not the first that answers: one that has not yet heard of a
    /// failover names the old master, which, restarted empty, calls itself master until the
    /// sentinels demote it.
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
        let mut candidates = self.named().await?;
        let mut last = None;
        while let Some((host, port)) = candidates.pop() {
            match self.checked(host, port).await {
                Ok(client) => return Ok(client),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| {
            RedisError::from((
                ::redis::ErrorKind::Server(::redis::ServerErrorKind::MasterDown),
                "no sentinel names a master",
            ))
        }))
    }

    /// The addresses the sentinels name as the master, the one most of them name last.
    async fn named(&self) -> Result<Vec<(String, u16)>, RedisError> {
        let asks = self.sentinels.iter().map(|sentinel| async move {
            let ask = async {
                let mut conn = sentinel.get_multiplexed_async_connection().await?;
                ::redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.name)
                    .query_async::<Option<(String, u16)>>(&mut conn)
                    .await
            };
            match tokio::time::timeout(ASK_TIMEOUT, ask).await {
                Ok(answer) => answer,
                Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
            }
        });
        let mut votes: Vec<((String, u16), usize)> = Vec::new();
        let mut last_error = None;
        for answer in join_all(asks).await {
            match answer {
                Ok(Some(address)) => match votes.iter_mut().find(|(named, _)| *named == address) {
                    Some((_, count)) => *count += 1,
                    None => votes.push((address, 1)),
                },
                Ok(None) => {}
                Err(error) => last_error = Some(error),
            }
        }
        if votes.is_empty() {
            return Err(last_error.unwrap_or_else(|| {
                RedisError::from((
                    ::redis::ErrorKind::Server(::redis::ServerErrorKind::MasterDown),
                    "no sentinel knows the master",
                ))
            }));
        }
        // Fewest votes first, so that popping gives the most named.
        votes.sort_by_key(|(_, count)| *count);
        Ok(votes.into_iter().map(|(address, _)| address).collect())
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
