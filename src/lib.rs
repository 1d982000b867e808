#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod extract;
mod handle;
pub mod hub;
mod identify;
mod layer;
mod limits;
mod registry;
pub mod resume;
mod session;
pub mod store;
mod telemetry;
mod upgrade;

pub use error::{Chain, Error, InvalidInput, Result};
pub use extract::MissingSessionLayer;
pub use handle::WsSession;
pub use identify::{Identification, UserId};
pub use layer::{OriginCheck, ResponseFuture, SessionLayer, SessionService};
pub use limits::Limits;
pub use registry::LiveSessions;
pub use session::{Session, SessionData, from_value, new_session_id, to_value};
pub use store::SessionStore;
pub use store::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use store::redis::{RedisPool, RedisStore};
