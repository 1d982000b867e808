//! Sessions: the record a store keeps, the handle a WebSocket handler holds and its extractor,
//! and the live sessions of one layer.

mod extract;
pub(crate) mod live;
pub(crate) mod record;
mod ws_session;

pub use self::extract::MissingSessionLayer;
pub use self::live::LiveSessions;
pub use self::record::{Session, SessionData, from_value, new_session_id, to_value};
pub use self::ws_session::WsSession;
