//! An object-safe view of [`SessionStore`], so handles need not name the store's type.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::error::Result;
use crate::session::{Session, SessionData};
use crate::store::SessionStore;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`SessionStore`] with boxed futures; implemented for every store.
pub(crate) trait DynStore: Send + Sync + 'static {
    fn create_session<'a>(
        &'a self,
        id: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Session>>;
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

impl<S: SessionStore> DynStore for S {
    fn create_session<'a>(
        &'a self,
        id: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Session>> {
        Box::pin(SessionStore::create_session(self, id, user_id))
    }
    fn get_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Session>>> {
        Box::pin(SessionStore::get_session(self, id))
    }
    fn set_session_data<'a>(
        &'a self,
        id: &'a str,
        key: &'a str,
        value: Value,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(SessionStore::set_session_data(self, id, key, value))
    }
    fn get_session_data<'a>(
        &'a self,
        id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>>> {
        Box::pin(SessionStore::get_session_data(self, id, key))
    }
    fn update_session_data<'a>(
        &'a self,
        id: &'a str,
        data: SessionData,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(SessionStore::update_session_data(self, id, data))
    }
    fn delete_session_data<'a>(&'a self, id: &'a str, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(SessionStore::delete_session_data(self, id, key))
    }
    fn clear_session_data<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(SessionStore::clear_session_data(self, id))
    }
    fn remove_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(SessionStore::remove_session(self, id))
    }
    fn get_user_sessions<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<Session>>> {
        Box::pin(SessionStore::get_user_sessions(self, user_id))
    }
    fn touch<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(SessionStore::touch(self, ids))
    }
}
