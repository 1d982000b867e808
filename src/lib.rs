#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
pub mod hub;
mod layer;
mod limits;
pub mod resume;
mod session;
pub mod store;
mod telemetry;

pub use error::{Chain, Error, InvalidInput, Result};
pub use layer::{
    Identification, OriginCheck, ResponseFuture, SessionLayer, SessionService, UserId,
};
pub use limits::Limits;
pub use session::{
    LiveSessions, MissingSessionLayer, Session, SessionData, WsSession, from_value, new_session_id,
    to_value,
};
pub use store::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use store::redis::{RedisPool, RedisStore};
pub use store::{AnyStore, SessionStore};
