//! An object-safe view of [`SessionStore`], so handles need not name the store's type.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::error::Result;
use crate::hub::{Broker, Member};
use crate::limits::Limits;
use crate::resume::{Attach, Claim, Claimed, Detach, Detached};
use crate::session::{Session, SessionData};
use crate::store::SessionStore;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`SessionStore`] with boxed futures; implemented for every store.
pub(crate) trait DynStore: Send + Sync + 'static {
    fn limits(&self) -> Limits;
    fn broker(&self) -> Broker;
    fn create_attached_session<'a>(
        &'a self,
        id: &'a str,
        user_id: &'a str,
        attach: &'a Attach<'a>,
    ) -> BoxFuture<'a, Result<Session>>;
    fn claim_session<'a>(&'a self, claim: &'a Claim<'a>) -> BoxFuture<'a, Result<Claimed>>;
    fn detach_session<'a>(
        &'a self,
        id: &'a str,
        epoch: u64,
        detach: &'a Detach,
    ) -> BoxFuture<'a, Result<Detached>>;
    fn session_node<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<String>>>;
    fn join_room<'a>(&'a self, id: &'a str, room: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn leave_room<'a>(&'a self, id: &'a str, room: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn room_members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<Member>>>;
    fn remove_user_sessions<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<String>>>;
    fn get_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Session>>>;
    fn set_session_data<'a>(
        &'a self,
        id: &'a str,
        key: &'a str,
        value: Value,
    ) -> BoxFuture<'a, Result<()>>;
    fn get_session_data<'a>(
        &'a self,
        id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>>>;
    fn update_session_data<'a>(
        &'a self,
        id: &'a str,
        data: SessionData,
    ) -> BoxFuture<'a, Result<()>>;
    fn delete_session_data<'a>(&'a self, id: &'a str, key: &'a str) -> BoxFuture<'a, Result<()>>;
    fn clear_session_data<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    fn remove_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    fn get_user_sessions<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<Session>>>;
    fn touch<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<String>>>;
}

/// Runs a store operation, and records its time and any failure of the store's.
#[cfg(feature = "metrics")]
async fn measured<T>(operation: &'static str, run: impl Future<Output = Result<T>>) -> Result<T> {
    let started = std::time::Instant::now();
    let result = run.await;
    crate::telemetry::store_operation(operation, started.elapsed(), &result);
    result
}

/// Without the `metrics` feature, nothing is measured.
#[cfg(not(feature = "metrics"))]
async fn measured<T>(_: &'static str, run: impl Future<Output = Result<T>>) -> Result<T> {
    run.await
}

impl<S: SessionStore> DynStore for S {
    fn limits(&self) -> Limits {
        SessionStore::enforced_limits(self)
    }
    fn broker(&self) -> Broker {
        SessionStore::broker(self)
    }
    fn create_attached_session<'a>(
        &'a self,
        id: &'a str,
        user_id: &'a str,
        attach: &'a Attach<'a>,
    ) -> BoxFuture<'a, Result<Session>> {
        Box::pin(measured(
            "create_attached_session",
            SessionStore::create_attached_session(self, id, user_id, attach),
        ))
    }
    fn claim_session<'a>(&'a self, claim: &'a Claim<'a>) -> BoxFuture<'a, Result<Claimed>> {
        Box::pin(measured(
            "claim_session",
            SessionStore::claim_session(self, claim),
        ))
    }
    fn detach_session<'a>(
        &'a self,
        id: &'a str,
        epoch: u64,
        detach: &'a Detach,
    ) -> BoxFuture<'a, Result<Detached>> {
        Box::pin(measured(
            "detach_session",
            SessionStore::detach_session(self, id, epoch, detach),
        ))
    }
    fn session_node<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(measured(
            "session_node",
            SessionStore::session_node(self, id),
        ))
    }
    fn join_room<'a>(&'a self, id: &'a str, room: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(measured(
            "join_room",
            SessionStore::join_room(self, id, room),
        ))
    }
    fn leave_room<'a>(&'a self, id: &'a str, room: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(measured(
            "leave_room",
            SessionStore::leave_room(self, id, room),
        ))
    }
    fn room_members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<Member>>> {
        Box::pin(measured(
            "room_members",
            SessionStore::room_members(self, room),
        ))
    }
    fn remove_user_sessions<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(measured(
            "remove_user_sessions",
            SessionStore::remove_user_sessions(self, user_id),
        ))
    }
    fn get_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Session>>> {
        Box::pin(measured("get_session", SessionStore::get_session(self, id)))
    }
    fn set_session_data<'a>(
        &'a self,
        id: &'a str,
        key: &'a str,
        value: Value,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(measured(
            "set_session_data",
            SessionStore::set_session_data(self, id, key, value),
        ))
    }
    fn get_session_data<'a>(
        &'a self,
        id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>>> {
        Box::pin(measured(
            "get_session_data",
            SessionStore::get_session_data(self, id, key),
        ))
    }
    fn update_session_data<'a>(
        &'a self,
        id: &'a str,
        data: SessionData,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(measured(
            "update_session_data",
            SessionStore::update_session_data(self, id, data),
        ))
    }
    fn delete_session_data<'a>(&'a self, id: &'a str, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(measured(
            "delete_session_data",
            SessionStore::delete_session_data(self, id, key),
        ))
    }
    fn clear_session_data<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(measured(
            "clear_session_data",
            SessionStore::clear_session_data(self, id),
        ))
    }
    fn remove_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(measured(
            "remove_session",
            SessionStore::remove_session(self, id),
        ))
    }
    fn get_user_sessions<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<Session>>> {
        Box::pin(measured(
            "get_user_sessions",
            SessionStore::get_user_sessions(self, user_id),
        ))
    }
    fn touch<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(measured("touch", SessionStore::touch(self, ids)))
    }
}
