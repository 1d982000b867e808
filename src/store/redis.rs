//! `RedisStore`: placeholder, being written.
#![allow(missing_docs, unused)]
use std::time::Duration;
use serde_json::Value;
use crate::{Result, Session, SessionData, SessionStore};

#[derive(Clone, Debug)]
pub struct RedisStore {}


impl SessionStore for RedisStore {
    fn ttl(&self) -> Duration { todo!() }
    async fn create_session(&self, id: &str, user_id: &str) -> Result<Session> { todo!() }
    async fn get_session(&self, id: &str) -> Result<Option<Session>> { todo!() }
    async fn set_session_data(&self, id: &str, key: &str, value: Value) -> Result<()> { todo!() }
    async fn get_session_data(&self, id: &str, key: &str) -> Result<Option<Value>> { todo!() }
    async fn update_session_data(&self, id: &str, data: SessionData) -> Result<()> { todo!() }
    async fn delete_session_data(&self, id: &str, key: &str) -> Result<()> { todo!() }
    async fn clear_session_data(&self, id: &str) -> Result<()> { todo!() }
    async fn remove_session(&self, id: &str) -> Result<()> { todo!() }
    async fn get_user_sessions(&self, user_id: &str) -> Result<Vec<Session>> { todo!() }
    async fn touch(&self, ids: &[String]) -> Result<Vec<String>> { todo!() }
}
