//! [`OriginCheck`]: which web pages may open a WebSocket through the layer.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderValue, Uri, header};

/// Which browser origins may open a WebSocket through a [`SessionLayer`](crate::SessionLayer).
///
/// A browser sends the `Origin` of the page that opens a WebSocket, and lets any page open
/// one to any server, with the visitor's cookies. Without a check, a page on any site could
/// open a socket as your logged-in user (cross-site WebSocket hijacking). The layer therefore
/// checks `Origin` on every upgrade, before the user is identified, and refuses a foreign one
/// with `403 Forbidden`, creating nothing.
///
/// - The default, [`same_origin`](Self::same_origin), allows a page served by the same host
///   and port as the WebSocket endpoint (the request's `Host`, or its authority over HTTP/2).
/// - A request without `Origin` is allowed by every check: it does not come from a web page
///   (a native app, a server, a command-line client), and carries no ambient browser
///   credentials.
/// - `Origin: null` (a sandboxed frame, a `file:` page) is refused by every check but
///   [`any`](Self::any) and a [predicate](Self::predicate) that allows it.
///
/// ```
/// use ws_session::{MemoryStore, OriginCheck, SessionLayer};
///
/// // The app's own pages, plus a second front end.
/// let check = OriginCheck::same_origin_and(["https://admin.example.com"]);
/// let request = http::Request::get("/ws")
///     .header("host", "chat.example.com")
///     .header("origin", "https://admin.example.com")
///     .body(())
///     .unwrap();
/// let (parts, ()) = request.into_parts();
/// assert!(check.allows(&parts));
///
/// let layer = SessionLayer::new(MemoryStore::new()).check_origin(check);
/// # drop(layer);
/// ```
#[derive(Clone)]
pub struct OriginCheck {
    rule: Rule,
}

type Predicate = Arc<dyn Fn(&HeaderValue, &Parts) -> bool + Send + Sync>;

#[derive(Clone)]
enum Rule {
    /// These origins; with `same` also the request's own (the default: none, and the own).
    List {
        origins: Arc<[String]>,
        same: bool,
    },
    Predicate(Predicate),
    Any,
}

impl OriginCheck {
    /// Allows pages of the same origin as the request (the default).
    pub fn same_origin() -> Self {
        Self::list(std::iter::empty::<String>(), true)
    }

    /// Allows exactly these origins (`scheme://host[:port]`, as browsers send them; compared
    /// without regard to ASCII case, a trailing `/` ignored). The request's own origin is not
    /// allowed unless it is listed.
    pub fn allow_list<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::list(origins, false)
    }

    /// Allows pages of the same origin as the request, and these origins.
    pub fn same_origin_and<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::list(origins, true)
    }

    fn list<I, S>(origins: I, same: bool) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        OriginCheck {
            rule: Rule::List {
                origins: normalized(origins),
                same,
            },
        }
    }

    /// Allows the origins for which `allow` returns `true`; it gets the `Origin` header and
    /// the request's parts. [`is_same_origin`](Self::is_same_origin) is there to build on.
    pub fn predicate<F>(allow: F) -> Self
    where
        F: Fn(&HeaderValue, &Parts) -> bool + Send + Sync + 'static,
    {
        OriginCheck {
            rule: Rule::Predicate(Arc::new(allow)),
        }
    }

    /// Allows every origin: no check. Only for servers that no browser holding credentials
    /// reaches, or that check `Origin` in a layer of their own.
    pub fn any() -> Self {
        OriginCheck { rule: Rule::Any }
    }

    /// Whether the upgrade request `parts` may go on: it has no `Origin`, or its origin is
    /// allowed.
    pub fn allows(&self, parts: &Parts) -> bool {
        let Some(origin) = parts.headers.get(header::ORIGIN) else {
            return true;
        };
        match &self.rule {
            Rule::Any => true,
            Rule::List { origins, same } => {
                (*same && Self::is_same_origin(origin, parts))
                    || origin.to_str().is_ok_and(|origin| {
                        let origin = trimmed(origin);
                        origins
                            .iter()
                            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
                    })
            }
            Rule::Predicate(allow) => allow(origin, parts),
        }
    }

    /// Whether `origin` names the host and port the request was sent to: its `Host` header
    /// (or, over HTTP/2, its authority). A port left out on either side is the default port
    /// of the origin's scheme. `null` and anything that is not `http(s)://host[:port]` is not
    /// the same origin.
    pub fn is_same_origin(origin: &HeaderValue, parts: &Parts) -> bool {
        let Some((scheme_port, origin)) = origin
            .to_str()
            .ok()
            .and_then(|text| text.parse::<Uri>().ok())
            .and_then(|uri| {
                let port = match uri.scheme_str()? {
                    "http" | "ws" => 80,
                    "https" | "wss" => 443,
                    _ => return None,
                };
                let path_ok = uri.path_and_query().is_none_or(|path| path.as_str() == "/");
                path_ok.then_some((port, uri.authority()?.clone()))
            })
        else {
            return false;
        };
        let Some(target) = request_authority(parts) else {
            return false;
        };
        origin.host().eq_ignore_ascii_case(target.host())
            && origin.port_u16().unwrap_or(scheme_port) == target.port_u16().unwrap_or(scheme_port)
    }
}

impl Default for OriginCheck {
    fn default() -> Self {
        Self::same_origin()
    }
}

impl fmt::Debug for OriginCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::List { origins, same } => f
                .debug_struct("OriginCheck")
                .field("same_origin", same)
                .field("allowed", origins)
                .finish(),
            Rule::Predicate(_) => f.write_str("OriginCheck::predicate"),
            Rule::Any => f.write_str("OriginCheck::any"),
        }
    }
}

/// The authority the request was sent to: the URI's (HTTP/2, absolute form) or `Host`.
fn request_authority(parts: &Parts) -> Option<http::uri::Authority> {
    if let Some(authority) = parts.uri.authority() {
        return Some(authority.clone());
    }
    parts.headers.get(header::HOST)?.to_str().ok()?.parse().ok()
}

fn trimmed(origin: &str) -> &str {
    origin.strip_suffix('/').unwrap_or(origin)
}

fn normalized<I, S>(origins: I) -> Arc<[String]>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    origins
        .into_iter()
        .map(|origin| trimmed(origin.into().trim()).to_owned())
        .filter(|origin| !origin.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: Option<&str>, origin: Option<&str>) -> Parts {
        let mut request = http::Request::get("/ws");
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn same_origin_compares_host_and_port() {
        let check = OriginCheck::same_origin();
        let allowed = |host, origin| check.allows(&parts(Some(host), Some(origin)));
        assert!(allowed("127.0.0.1:3000", "http://127.0.0.1:3000"));
        assert!(allowed("Chat.Example.com", "https://chat.example.com"));
        assert!(allowed("chat.example.com:443", "https://chat.example.com"));
        assert!(allowed("chat.example.com", "http://chat.example.com:80"));
        assert!(!allowed("127.0.0.1:3000", "http://127.0.0.1:3001"));
        assert!(!allowed("127.0.0.1:3000", "http://localhost:3000"));
        assert!(!allowed("chat.example.com", "https://evil.example"));
        assert!(!allowed(
            "chat.example.com",
            "https://chat.example.com.evil.example"
        ));
        assert!(!allowed("chat.example.com", "http://chat.example.com:8080"));
        assert!(!allowed("chat.example.com", "null"));
        assert!(!allowed("chat.example.com", "file://chat.example.com"));
        assert!(!allowed(
            "chat.example.com",
            "https://chat.example.com/path"
        ));
    }

    #[test]
    fn no_origin_is_allowed_and_no_host_refuses_an_origin() {
        assert!(OriginCheck::same_origin().allows(&parts(Some("a"), None)));
        assert!(OriginCheck::allow_list(["https://a"]).allows(&parts(None, None)));
        assert!(!OriginCheck::same_origin().allows(&parts(None, Some("https://a"))));
    }

    #[test]
    fn lists_replace_or_extend_the_default() {
        let only = OriginCheck::allow_list(["https://admin.example/", " HTTPS://B.example "]);
        assert!(only.allows(&parts(Some("chat.example"), Some("https://admin.example"))));
        assert!(only.allows(&parts(Some("chat.example"), Some("https://b.example"))));
        assert!(!only.allows(&parts(Some("chat.example"), Some("https://chat.example"))));
        let plus = OriginCheck::same_origin_and(["https://admin.example"]);
        assert!(plus.allows(&parts(Some("chat.example"), Some("https://admin.example"))));
        assert!(plus.allows(&parts(Some("chat.example"), Some("https://chat.example"))));
        assert!(!plus.allows(&parts(Some("chat.example"), Some("https://evil.example"))));
    }

    #[test]
    fn a_predicate_and_any_decide_alone() {
        let nulls = OriginCheck::predicate(|origin, _| origin == "null");
        assert!(nulls.allows(&parts(Some("a"), Some("null"))));
        assert!(!nulls.allows(&parts(Some("a"), Some("http://a"))));
        assert!(OriginCheck::any().allows(&parts(Some("a"), Some("https://evil.example"))));
    }
}
