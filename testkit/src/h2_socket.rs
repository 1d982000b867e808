//! A WebSocket over one HTTP/2 stream (RFC 8441), from the client side: an extended CONNECT
//! with the `h2` crate, and the stream as the byte pipe tungstenite runs on.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::{Method, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// One HTTP/2 stream as a byte stream: what the server sends on it, and what is written to it.
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not read yet.
    pending: Bytes,
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.pending = data;
                }
                Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.send.reserve_capacity(buf.len());
        match ready!(self.send.poll_capacity(cx)) {
            Some(Ok(capacity)) => {
                let n = capacity.min(buf.len());
                self.send
                    .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    .map_err(io::Error::other)?;
                Poll::Ready(Ok(n))
            }
            Some(Err(error)) => Poll::Ready(Err(io::Error::other(error))),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}

/// An HTTP/2 connection (prior knowledge, no TLS) to `addr`, once the server has said it
/// accepts extended CONNECT.
pub async fn connection(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    // The server's SETTINGS may come a moment after the handshake.
    for _ in 0..200 {
        if client.is_extended_connect_protocol_enabled() {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        client = client.ready().await.unwrap();
    }
    panic!("the server does not accept extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL)");
}

/// Opens a WebSocket at `path` on a stream of `client`: the response's status, and the socket
/// when it is 200.
pub async fn websocket(
    client: &mut SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
) -> (StatusCode, Option<WebSocketStream<H2Stream>>) {
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{addr}{path}"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from("websocket"));
    let (response, send) = client
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(request, false)
        .unwrap();
    let response = response.await.unwrap();
    let status = response.status();
    if status != StatusCode::OK {
        return (status, None);
    }
    let stream = H2Stream {
        send,
        recv: response.into_body(),
        pending: Bytes::new(),
    };
    let socket = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
    (status, Some(socket))
}
