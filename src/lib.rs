#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod limits;
mod session;
pub mod store;

pub use error::{Error, InvalidInput, Result};
pub use limits::Limits;
pub use session::{Session, SessionData, from_value, new_session_id, to_value};
pub use store::SessionStore;
pub use store::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use store::redis::RedisStore;
