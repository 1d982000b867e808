//! [`SessionLayer`]: gives every WebSocket upgrade a session that lives as long as its socket.

mod admission;
mod future;
mod identify;
mod open;
mod origin;
mod service;
mod upgrade;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use tower_layer::Layer;

pub use self::admission::Admission;
use self::admission::Admitter;
pub use self::future::ResponseFuture;
pub use self::identify::{Identification, UserId};
use self::identify::{Identifier, from_extensions, identifier};
pub use self::origin::OriginCheck;
pub use self::service::SessionService;
use crate::hub::{Hub, InboxLimits};
use crate::resume::attempts::Attempts;
use crate::resume::{Presented, Reader, Resume, from_query};
use crate::session::LiveSessions;
use crate::session::live::Live;
use crate::store::{AnyStore, SessionStore};

/// A tower [`Layer`] that opens a session for each WebSocket upgrade request.
///
/// For an upgrade (HTTP/1.1 `Upgrade: websocket`, or HTTP/2 extended CONNECT) it
/// 0. checks the request's `Origin` ([`OriginCheck`]; by default the page must come from the
///    same host and port, or the request must carry no `Origin`) — a foreign one gets `403`;
/// 1. identifies the user — by default from a [`UserId`](crate::UserId) that an earlier
///    authentication layer put into the request extensions; nobody identified → `401`,
///    unless [anonymous sessions](Self::allow_anonymous) are allowed;
/// 2. with a [resume window](Self::resume), claims the session the request presents a resume
///    token for — that session, its data and rooms, if the claim succeeds;
/// 3. otherwise gives the client a fresh id of 128 random bits and creates the session in the
///    store — store unreachable → `503`, nothing upgraded;
/// 4. puts a [`WsSession`](crate::WsSession) into the request extensions and calls the inner
///    service. When the response is not a successful upgrade, the session is removed at once.
///
/// Every other request goes straight to the inner service, with no store call and no
/// allocation.
///
/// While a socket is open, one timer per layer refreshes the TTL of all its open sessions in
/// batches (by default every third of the store's TTL), so the TTL can be short: the sessions
/// of a crashed server instance expire on their own.
///
/// ```no_run
/// use axum::{Router, extract::ws::WebSocketUpgrade, response::IntoResponse, routing::get};
/// use ws_session::{MemoryStore, SessionLayer, WsSession};
///
/// async fn ws_handler(ws: WebSocketUpgrade, session: WsSession) -> impl IntoResponse {
///     ws.on_upgrade(move |_socket| async move {
///         let _ = session.set("joined", &true).await;
///     })
/// }
///
/// # async fn run() {
/// let layer = SessionLayer::new(MemoryStore::new())
///     // A demo identity step: a real application checks a token here.
///     .identify(|parts: &http::request::Parts| {
///         let user = parts.headers.get("x-user").and_then(|v| v.to_str().ok()).map(str::to_owned);
///         async move { Ok(user) }
///     });
/// let app = Router::new().route("/ws", get(ws_handler)).layer(layer);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
/// axum::serve(listener, app).await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    live: Arc<Live>,
    config: Arc<Config>,
}

/// What a layer's services need besides its live sessions.
#[derive(Clone)]
pub(crate) struct Config {
    /// Which web pages may open a socket.
    pub(crate) origin: OriginCheck,
    pub(crate) identify: Identifier,
    /// Whether `identify` is the default step, which reads a [`UserId`](crate::UserId) from
    /// the extensions (so a missing one points at the order of the layers).
    pub(crate) identifies_from_extensions: bool,
    pub(crate) allow_anonymous: bool,
    pub(crate) refresh_interval: Duration,
    pub(crate) refresh_batch: usize,
    pub(crate) inbox_limits: InboxLimits,
    /// Whether sessions are resumable (a window above zero).
    pub(crate) resumable: bool,
    /// Reads what an upgrade presents to resume.
    pub(crate) read_resume: Reader,
    /// The bound on resume attempts per session, with a resume window.
    pub(crate) resume_attempts: Option<Arc<Attempts>>,
    /// How fast sessions are opened, if bounded.
    pub(crate) admission: Option<Arc<Admitter>>,
}

/// The default number of sessions refreshed by one store call.
const DEFAULT_REFRESH_BATCH: usize = 1000;

impl SessionLayer {
    /// A layer keeping its sessions in `store`.
    pub fn new(store: impl Into<AnyStore>) -> Self {
        crate::telemetry::describe();
        let store = store.into();
        let refresh_interval = (store.ttl() / 2).max(Duration::from_millis(10));
        SessionLayer {
            live: Arc::new(Live::new(store, None)),
            config: Arc::new(Config {
                origin: OriginCheck::same_origin(),
                identify: from_extensions(),
                identifies_from_extensions: true,
                allow_anonymous: false,
                refresh_interval,
                refresh_batch: DEFAULT_REFRESH_BATCH,
                inbox_limits: InboxLimits::default(),
                resumable: false,
                read_resume: Arc::new(from_query),
                resume_attempts: None,
                admission: None,
            }),
        }
    }

    /// Sets the resume window (default: none, a session is removed when its socket drops).
    ///
    /// With a window, the session of a socket that drops is detached and kept for the window;
    /// a client that reconnects within it, presenting the session's
    /// [`resume_token`](crate::WsSession::resume_token), gets it back with the messages it
    /// missed. See [`resume`](crate::resume). A zero window turns resume off.
    ///
    /// Configure the layer before serving: the window applies to every clone of the layer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_session::{MemoryStore, SessionLayer, resume::Resume};
    ///
    /// let layer = SessionLayer::new(MemoryStore::new())
    ///     .resume(Resume::within(Duration::from_secs(120)));
    /// ```
    #[must_use]
    pub fn resume(mut self, resume: Resume) -> Self {
        self.live = Arc::new(Live::new(self.live.store.clone(), Some(resume)));
        let config = Arc::make_mut(&mut self.config);
        config.resumable = !resume.window().is_zero();
        config.resume_attempts = Some(Arc::new(resume.attempts()));
        self
    }

    /// Replaces the step that reads a resume token (and the client's last offset) from an
    /// upgrade request. The default, [`from_query`](crate::resume::from_query), reads the
    /// `resume` and `offset` query parameters.
    #[must_use]
    pub fn resume_from<F>(mut self, read: F) -> Self
    where
        F: Fn(&Parts) -> Option<Presented> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).read_resume = Arc::new(read);
        self
    }

    /// Shuts this instance's sessions down gracefully: see [`LiveSessions::shutdown`].
    pub async fn shutdown(&self) -> usize {
        self.live_sessions().shutdown().await
    }

    /// Replaces the check of the `Origin` of upgrade requests (default:
    /// [`OriginCheck::same_origin`]). A refused upgrade gets `403 Forbidden` before the user
    /// is identified, and nothing is created.
    ///
    /// ```
    /// use ws_session::{MemoryStore, OriginCheck, SessionLayer};
    ///
    /// let layer = SessionLayer::new(MemoryStore::new())
    ///     .check_origin(OriginCheck::allow_list(["https://app.example.com"]));
    /// ```
    #[must_use]
    pub fn check_origin(mut self, check: OriginCheck) -> Self {
        Arc::make_mut(&mut self.config).origin = check;
        self
    }

    /// Replaces the identification step.
    ///
    /// `identify` gets the request's parts (headers, URI, extensions) and returns a future of
    /// an [`Identification`]: `Ok(Some(user_id))`, `Ok(None)` for nobody, or `Err(response)`
    /// to answer with that response instead. Copy what you need out of the parts before the
    /// `async` block; the future may then do I/O, such as checking a token in a database.
    ///
    /// **Security**: this is where the user is authenticated. The session store trusts the
    /// user id it returns.
    #[must_use]
    pub fn identify<F, Fut>(mut self, identify: F) -> Self
    where
        F: Fn(&Parts) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Identification> + Send + 'static,
    {
        let config = Arc::make_mut(&mut self.config);
        config.identify = identifier(identify);
        config.identifies_from_extensions = false;
        self
    }

    /// Allows upgrades that nobody is identified for (default: `false`, they get `401`).
    ///
    /// An anonymous session's user id is its own session id, so each anonymous client is a
    /// user of its own.
    #[must_use]
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        Arc::make_mut(&mut self.config).allow_anonymous = allow;
        self
    }

    /// How often open sessions are refreshed (default: half the store's TTL).
    ///
    /// Each refresh restarts the TTL of every open session, with one command per session on
    /// Redis, many sessions per call (see [`refresh_batch`](Self::refresh_batch)); the keys
    /// that index them (users' and rooms' sets) are renewed once every two TTLs. Keep the
    /// interval well below the TTL: a session whose refresh is late by more than the TTL
    /// expires even though its socket is open.
    #[must_use]
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        Arc::make_mut(&mut self.config).refresh_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Opens sessions at a bounded rate, with a short queue, and answers the upgrades past
    /// it with `503` and `Retry-After` (default: no bound). See [`Admission`].
    #[must_use]
    pub fn admission(mut self, admission: Admission) -> Self {
        Arc::make_mut(&mut self.config).admission = Some(Arc::new(Admitter::new(admission)));
        self
    }

    /// How many sessions one refresh call to the store carries (default 1,000).
    #[must_use]
    pub fn refresh_batch(mut self, sessions: usize) -> Self {
        Arc::make_mut(&mut self.config).refresh_batch = sessions.max(1);
        self
    }

    /// Bounds each connection's inbox (default [`InboxLimits::default`]: 1,024 messages,
    /// 4 MiB). A connection whose inbox would pass either bound is closed with 4001.
    #[must_use]
    pub fn inbox_limits(mut self, limits: InboxLimits) -> Self {
        Arc::make_mut(&mut self.config).inbox_limits = limits;
        self
    }

    /// The hub of this layer's connections: send to sessions, users, rooms or everyone, on
    /// every instance sharing the store. Also a layer, for routes that extract a [`Hub`].
    pub fn hub(&self) -> Hub {
        self.live.hub()
    }

    /// The sessions this layer has open, for metrics and for graceful shutdown.
    pub fn live_sessions(&self) -> LiveSessions {
        LiveSessions {
            live: Arc::clone(&self.live),
            batch: self.config.refresh_batch,
        }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, Arc::clone(&self.live), Arc::clone(&self.config))
    }
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("origin", &self.config.origin)
            .field("allow_anonymous", &self.config.allow_anonymous)
            .field("refresh_interval", &self.config.refresh_interval)
            .field("refresh_batch", &self.config.refresh_batch)
            .field("resume", &self.live.detach())
            .field("open_sessions", &self.live.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
