//! Telling WebSocket upgrade requests from every other request.

use http::{HeaderMap, Method, Request, Response, StatusCode, Version, header};

/// How a request asks for a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpgradeKind {
    /// HTTP/1.1: `GET` with `Connection: upgrade` and `Upgrade: websocket` (RFC 6455).
    Http1,
    /// HTTP/2 extended CONNECT with the `:protocol` pseudo-header `websocket` (RFC 8441), with
    /// the `http2` feature.
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    Http2Connect,
}

impl UpgradeKind {
    /// Whether `response` means the socket was handed over: 101 for HTTP/1.1, any 2xx for
    /// HTTP/2 extended CONNECT.
    pub(crate) fn succeeded<B>(self, response: &Response<B>) -> bool {
        match self {
            UpgradeKind::Http1 => response.status() == StatusCode::SWITCHING_PROTOCOLS,
            UpgradeKind::Http2Connect => response.status().is_success(),
        }
    }
}

/// The kind of WebSocket upgrade `request` asks for, or `None` for any other request.
///
/// Only reads headers and extensions: it neither allocates nor changes the request.
pub(crate) fn websocket_upgrade<B>(request: &Request<B>) -> Option<UpgradeKind> {
    let method = request.method();
    if method == Method::GET && request.version() <= Version::HTTP_11 {
        let headers = request.headers();
        let asks = header_has_token(headers, header::CONNECTION, "upgrade")
            && header_has_token(headers, header::UPGRADE, "websocket");
        return asks.then_some(UpgradeKind::Http1);
    }
    #[cfg(feature = "http2")]
    if method == Method::CONNECT {
        let protocol = request.extensions().get::<hyper::ext::Protocol>()?;
        return protocol
            .as_str()
            .eq_ignore_ascii_case("websocket")
            .then_some(UpgradeKind::Http2Connect);
    }
    None
}

/// Whether any value of header `name` holds `token` in its comma-separated list,
/// ignoring ASCII case and surrounding white space.
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|list| {
            list.split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/ws");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn http1_upgrade_is_detected_case_insensitively_in_comma_lists() {
        let req = get(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert_eq!(websocket_upgrade(&req), Some(UpgradeKind::Http1));

        let req = get(&[
            ("connection", "keep-alive"),
            ("connection", "upgrade"),
            ("upgrade", "h2c, websocket"),
        ]);
        assert_eq!(websocket_upgrade(&req), Some(UpgradeKind::Http1));
    }

    #[test]
    fn other_requests_are_not_upgrades() {
        assert_eq!(websocket_upgrade(&get(&[])), None);
        assert_eq!(websocket_upgrade(&get(&[("upgrade", "websocket")])), None);
        assert_eq!(websocket_upgrade(&get(&[("connection", "upgrade")])), None);
        let wrong_protocol = get(&[("connection", "upgrade"), ("upgrade", "h2c")]);
        assert_eq!(websocket_upgrade(&wrong_protocol), None);
        // A token that merely contains the word does not count.
        let lookalike = get(&[("connection", "upgrades"), ("upgrade", "websocket")]);
        assert_eq!(websocket_upgrade(&lookalike), None);
        let post = Request::post("/ws")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert_eq!(websocket_upgrade(&post), None);
    }

    #[cfg(feature = "http2")]
    #[test]
    fn http2_extended_connect_is_detected() {
        let req = Request::connect("/ws")
            .version(Version::HTTP_2)
            .extension(hyper::ext::Protocol::from_static("websocket"))
            .body(())
            .unwrap();
        assert_eq!(websocket_upgrade(&req), Some(UpgradeKind::Http2Connect));

        let plain_connect = Request::connect("/ws")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        assert_eq!(websocket_upgrade(&plain_connect), None);
    }

    #[test]
    fn success_depends_on_the_kind() {
        let switching = Response::builder().status(101).body(()).unwrap();
        let ok = Response::builder().status(200).body(()).unwrap();
        assert!(UpgradeKind::Http1.succeeded(&switching));
        assert!(!UpgradeKind::Http1.succeeded(&ok));
        assert!(UpgradeKind::Http2Connect.succeeded(&ok));
        assert!(!UpgradeKind::Http2Connect.succeeded(&switching));
    }
}
