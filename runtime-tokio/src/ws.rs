//! RTWebSocket: the per-connection driver for WebSocket connections
//! (feature `ws`), plain (`ws://`) or inside TLS (`wss://`).
//!
//! A WebSocket connection is accepted by the core as
//! [`Transport::Rtws`](tincan_core::server::Transport::Rtws) before its
//! HTTP upgrade is read, so it counts against the connection limits from
//! its first byte, and whatever closes the session meanwhile (the core's
//! handshake deadline, a stop, a kick) also ends the upgrade, as the TLS
//! driver does for its handshake.
//!
//! The upgrade accepts only the configured path ([`WsConfig::path`];
//! anything else is `404 Not Found`) and, when an allow-list is set, only
//! a browser `Origin` on it (`403 Forbidden`). Then each WebSocket binary
//! message is one `handle_input`, and each transmit of the core one binary
//! message. A text message closes the connection with code 1003, a message
//! over [`WsConfig::max_message_size`] with 1009. Pings are answered by
//! tungstenite.
//!
//! The loop keeps the shared driver's properties (see `tls.rs`): one
//! pending transmit, taken from the core only once the WebSocket has
//! written the previous one, so the session's real-time policy stays the
//! one queue that decides what a slow player loses; a budget of
//! [`WRITE_BUDGET`] transmits, then a yield; the bell; the linger; the
//! close log.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tincan_core::event::SessionId;
use tincan_core::session::Transmit;
use tincan_net::driver::{log_closed, WRITE_BUDGET};
use tincan_net::{DriverConfig, Runtime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info};

use crate::connection::Tokio;
use crate::shared::{Shared, TokioBell};

/// Headroom over the session's largest RTWebSocket message
/// (`SessionConfig::rtws`) for one WebSocket message: a message sent
/// whole as one fragment, with its header.
const MESSAGE_HEADROOM: usize = 64 * 1024;

/// How a WebSocket listener upgrades and bounds its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    /// The request path upgraded to a WebSocket; other paths get `404`.
    /// `/` (the default) takes every path, as TC Server does, whose
    /// clients name their App in the URL's path (`ws://host/live`). Any
    /// other value takes that path and the paths under it (`/rtws` takes
    /// `/rtws` and `/rtws/live`). The query is not part of the path.
    pub path: String,
    /// Browser origins allowed to connect (`Origin` header, compared
    /// without regard to ASCII case), or `None` for any. A request without
    /// `Origin` is not from a browser page, so no page can make it on a
    /// visitor's behalf, and it is allowed.
    pub allowed_origins: Option<Vec<String>>,
    /// The longest WebSocket message (and frame) read; a longer one closes
    /// the connection with 1009. Bounds what one connection can make the
    /// server buffer before the core sees it.
    pub max_message_size: usize,
    /// The most output tungstenite may hold for a connection that the
    /// socket has not taken: the transmit being written. A transmit larger
    /// than this fails the connection rather than growing the buffer.
    pub max_queued_output: usize,
}

impl Default for WsConfig {
    fn default() -> WsConfig {
        let message = tincan_core::session::SessionConfig::default()
            .rtws
            .max_message_size
            + MESSAGE_HEADROOM;
        WsConfig {
            path: "/".to_owned(),
            allowed_origins: None,
            max_message_size: message,
            max_queued_output: message,
        }
    }
}

impl WsConfig {
    /// Whether a request for `path` (without its query) is upgraded.
    pub fn takes_path(&self, path: &str) -> bool {
        let base = self.path.trim_end_matches('/');
        if base.is_empty() {
            return true;
        }
        path == base
            || path
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Whether a request with this `Origin` header (if any) is upgraded.
    pub fn takes_origin(&self, origin: Option<&str>) -> bool {
        match (&self.allowed_origins, origin) {
            (None, _) | (Some(_), None) => true,
            (Some(list), Some(origin)) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }

    fn tungstenite(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
            // Every message goes to the socket as it is sent: the core's
            // transmit is the unit, nothing batches behind it.
            .write_buffer_size(0)
            .max_write_buffer_size(self.max_queued_output)
            // The buffer a connection reads into; it grows only for a
            // large message, up to `max_message_size`.
            .read_buffer_size(16 * 1024)
    }

    /// The upgrade's answer to `request`: upgraded, or refused with 404
    /// (path) or 403 (origin).
    fn check(&self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let refuse = |status: StatusCode, why: &str| {
            debug!(path = %request.uri().path(), why, "WebSocket upgrade refused");
            let mut r = ErrorResponse::new(Some(why.to_owned()));
            *r.status_mut() = status;
            Err(r)
        };
        if !self.takes_path(request.uri().path()) {
            return refuse(StatusCode::NOT_FOUND, "not found");
        }
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or("\u{fffd}"));
        if !self.takes_origin(origin) {
            return refuse(StatusCode::FORBIDDEN, "origin not allowed");
        }
        Ok(response)
    }
}

/// Runs one accepted plain WebSocket connection: the upgrade, then the
/// session.
pub(crate) async fn run(
    shared: Arc<Shared>,
    id: SessionId,
    stream: TcpStream,
    ws: Arc<WsConfig>,
    config: DriverConfig,
) {
    info!(ws = true, "accepted");
    let (bell, waiter) = <Tokio as Runtime>::bell();
    shared.register(id, bell);
    tincan_net::configure(&stream);
    upgrade_and_serve(shared, id, stream, ws, waiter, config).await;
}

/// Runs one accepted `wss://` connection: the TLS handshake, the upgrade,
/// then the session.
#[cfg(feature = "tls")]
pub(crate) async fn run_tls(
    shared: Arc<Shared>,
    id: SessionId,
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    ws: Arc<WsConfig>,
    config: DriverConfig,
) {
    info!(ws = true, tls = true, "accepted");
    let (bell, waiter) = <Tokio as Runtime>::bell();
    shared.register(id, bell);
    tincan_net::configure(&stream);
    let handshake = Box::pin(crate::tls::handshake(
        &shared, id, acceptor, stream, &waiter,
    ))
    .await;
    match handshake {
        // The handshake bounded the TLS buffer already.
        Some(Ok(tls)) => upgrade_and_serve(shared, id, tls, ws, waiter, config).await,
        Some(Err(e)) => {
            let why = format!("TLS handshake failed: {e}");
            finish(&shared, id, Some(&why));
        }
        None => finish(&shared, id, Some(&"closed during the TLS handshake")),
    }
}

fn finish(shared: &Shared, id: SessionId, why: Option<&dyn std::fmt::Display>) {
    shared.unregister(id);
    let closed = shared.with(|s, now| s.remove(now, id));
    log_closed(closed.as_ref(), why);
}

async fn upgrade_and_serve<S>(
    shared: Arc<Shared>,
    id: SessionId,
    stream: S,
    ws: Arc<WsConfig>,
    waiter: TokioBell,
    config: DriverConfig,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed: the upgrade's state is short-lived; the connection's task
    // should not carry it for the connection's life.
    let upgraded = Box::pin(upgrade(&shared, id, stream, &ws, &waiter)).await;
    match upgraded {
        Some(Ok(socket)) => {
            debug!("WebSocket upgrade done");
            serve(shared, id, Box::new(socket), waiter, config).await;
        }
        Some(Err(e)) => {
            let why = format!("WebSocket upgrade failed: {e}");
            finish(&shared, id, Some(&why));
        }
        None => finish(&shared, id, Some(&"closed during the WebSocket upgrade")),
    }
}

/// The HTTP upgrade, or `None` if the core closed connection `id` first.
async fn upgrade<S>(
    shared: &Shared,
    id: SessionId,
    stream: S,
    ws: &WsConfig,
    waiter: &TokioBell,
) -> Option<Result<WebSocketStream<S>, WsError>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let check = |request: &Request, response: Response| ws.check(request, response);
    let mut accepting = pin!(tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        check,
        Some(ws.tungstenite()),
    ));
    loop {
        if shared.with(|s, _| s.is_closed(id)) {
            return None;
        }
        let mut rung = pin!(<Tokio as Runtime>::rung(waiter));
        let done = poll_fn(|cx| {
            if let Poll::Ready(r) = accepting.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if rung.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        if let Some(result) = done {
            return Some(result);
        }
    }
}

/// What woke a waiting connection.
enum Wake {
    /// A message read and handed to the core, or the end of the input.
    Read(Read),
    /// The WebSocket's pending output reached the socket.
    Flushed(Result<(), WsError>),
    Again,
    Yielded,
    GiveUp,
}

/// What one read did.
enum Read {
    /// A message went to the core (or a control frame was handled).
    Message,
    /// The peer closed (close frame, end of stream, or reset).
    Closed,
    /// A message the transport refuses: the connection closes with this
    /// code once the core's goodbye is written.
    Refused(CloseCode, &'static str),
    Failed(WsError),
}

type Socket<S> = Box<WebSocketStream<S>>;

/// The session's life over an upgraded WebSocket (see the module's
/// documentation).
async fn serve<S>(
    shared: Arc<Shared>,
    id: SessionId,
    mut ws: Socket<S>,
    waiter: TokioBell,
    config: DriverConfig,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending = Transmit::default();
    let mut read_open = true;
    let mut peer_closed = false;
    let mut unflushed = false;
    let mut give_up = None;
    let mut close_code = CloseCode::Normal;
    let outcome: Result<(), WsError> = loop {
        // 1. Write while the WebSocket takes it.
        let more_output = match poll_fn(|cx| {
            Poll::Ready(write(
                &shared,
                id,
                &mut ws,
                &mut pending,
                &mut unflushed,
                cx,
            ))
        })
        .await
        {
            Ok(more) => more,
            Err(e) => break Err(e),
        };
        let unsent = !pending.is_empty() || unflushed;
        let (closed, busy) = shared.with(|s, _| (s.is_closed(id), s.has_pending_input(id)));
        if closed {
            if !unsent {
                break Ok(());
            }
            give_up.get_or_insert_with(|| <Tokio as Runtime>::now() + config.linger);
        }
        // 2. Wait for whatever can move this connection next.
        let mut rung = pin!(<Tokio as Runtime>::rung(&waiter));
        let mut yielded = pin!((more_output || busy).then(<Tokio as Runtime>::yield_now));
        let mut late = pin!(give_up.map(<Tokio as Runtime>::sleep_until));
        let wake = poll_fn(|cx| {
            if read_open && !busy {
                if let Poll::Ready(r) = read(&shared, id, &mut ws, cx) {
                    return Poll::Ready(Wake::Read(r));
                }
            }
            if unflushed {
                if let Poll::Ready(r) = Pin::new(&mut *ws).poll_flush(cx) {
                    return Poll::Ready(Wake::Flushed(r));
                }
            }
            if rung.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Again);
            }
            if let Some(y) = yielded.as_mut().as_pin_mut() {
                if y.poll(cx).is_ready() {
                    return Poll::Ready(Wake::Yielded);
                }
            }
            if let Some(l) = late.as_mut().as_pin_mut() {
                if l.poll(cx).is_ready() {
                    return Poll::Ready(Wake::GiveUp);
                }
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::GiveUp => {
                break Err(WsError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer did not take the last transmit",
                )))
            }
            Wake::Read(Read::Failed(e)) | Wake::Flushed(Err(e)) => break Err(e),
            Wake::Read(Read::Closed) => {
                // The peer's close frame is answered by tungstenite; no
                // data can follow it, so the session has nothing more to
                // send.
                peer_closed = true;
                break Ok(());
            }
            Wake::Read(Read::Refused(code, why)) => {
                read_open = false;
                close_code = code;
                shared.with(|s, now| s.close(now, id, why));
            }
            Wake::Read(Read::Message) => {}
            Wake::Flushed(Ok(())) => unflushed = false,
            Wake::Yielded if busy => {
                if let Err(e) = shared.with(|s, now| s.handle_input(now, id, &[])) {
                    debug!(error = %e, "session error");
                }
            }
            Wake::Again | Wake::Yielded => {}
        }
    };
    shared.unregister(id);
    let closed = shared.with(|s, now| s.remove(now, id));
    log_closed(
        closed.as_ref(),
        outcome.as_ref().err().map(|e| e as &dyn std::fmt::Display),
    );
    if outcome.is_ok() {
        // Boxed: its timer would otherwise be part of every connection's
        // task for the whole life of the connection.
        Box::pin(linger(&mut ws, close_code, !peer_closed, config.linger)).await;
    }
}

/// Writes transmits, one binary message each, while the WebSocket takes
/// them, up to [`WRITE_BUDGET`]. `Ok(true)` when the budget ran out with
/// output left.
fn write<S>(
    shared: &Shared,
    id: SessionId,
    ws: &mut Socket<S>,
    pending: &mut Transmit,
    unflushed: &mut bool,
    cx: &mut Context<'_>,
) -> Result<bool, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut budget = WRITE_BUDGET;
    loop {
        // Ready once the previous message is on the socket: tungstenite
        // holds at most the one being written.
        match Pin::new(&mut **ws).poll_ready(cx) {
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {
                *unflushed = true;
                return Ok(false);
            }
        }
        if pending.is_empty() && !shared.with(|s, now| s.poll_transmit_into(now, id, pending)) {
            return Ok(false);
        }
        let message = Message::Binary(concat(pending));
        Pin::new(&mut **ws).start_send(message)?;
        match Pin::new(&mut **ws).poll_flush(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {
                *unflushed = true;
                return Ok(false);
            }
        }
        budget -= 1;
        if budget == 0 {
            return Ok(true);
        }
    }
}

/// One transmit as one message: its buffer itself when it has one,
/// otherwise its buffers back to back. Empties `transmit`.
fn concat(transmit: &mut Transmit) -> Bytes {
    let mut bufs = std::mem::take(&mut transmit.bufs);
    bufs.retain(|b| !b.is_empty());
    if bufs.len() == 1 {
        return bufs.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(bufs.iter().map(Bytes::len).sum());
    for b in &bufs {
        out.extend_from_slice(b);
    }
    out.freeze()
}

/// Reads one WebSocket message into the core.
fn read<S>(shared: &Shared, id: SessionId, ws: &mut Socket<S>, cx: &mut Context<'_>) -> Poll<Read>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let message = match Pin::new(&mut **ws).poll_next(cx) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(None) => None,
        Poll::Ready(Some(Ok(m))) => Some(m),
        Poll::Ready(Some(Err(e))) => match e {
            WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(
                tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ) => None,
            WsError::Io(ref io) if io.kind() == io::ErrorKind::UnexpectedEof => None,
            WsError::Capacity(_) => {
                return Poll::Ready(Read::Refused(
                    CloseCode::Size,
                    "WebSocket message too large",
                ))
            }
            e => return Poll::Ready(Read::Failed(e)),
        },
    };
    Poll::Ready(match message {
        Some(Message::Binary(data)) => {
            // Handed over, not copied: the session keeps slices of it.
            if let Err(e) = shared.with(|s, now| s.handle_input_bytes(now, id, data)) {
                debug!(error = %e, "session error");
            }
            Read::Message
        }
        Some(Message::Text(_)) => {
            Read::Refused(CloseCode::Unsupported, "WebSocket text message refused")
        }
        // Answered by tungstenite with the next write or flush.
        Some(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => Read::Message,
        Some(Message::Close(_)) | None => {
            shared.with(|s, now| s.handle_eof(now, id));
            Read::Closed
        }
    })
}

/// Sends the close frame (unless the peer's close was already answered)
/// and reads until the peer's close, all within `limit`: as the plain
/// driver's linger, so the goodbye is not lost to a reset. Input that no
/// longer parses (after a message over the bound) is read and dropped
/// raw, for the same reason: unread input makes the kernel reset.
async fn linger<S>(ws: &mut Socket<S>, code: CloseCode, ours: bool, limit: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(limit, async {
        if ours {
            let frame = CloseFrame {
                code,
                reason: "".into(),
            };
            let sent = async {
                poll_fn(|cx| Pin::new(&mut **ws).poll_ready(cx)).await?;
                Pin::new(&mut **ws).start_send(Message::Close(Some(frame)))?;
                poll_fn(|cx| Pin::new(&mut **ws).poll_flush(cx)).await
            };
            if sent.await.is_err() {
                return;
            }
        }
        // Reading drives the closing handshake: takes the peer's close,
        // and ends when the peer closes the stream.
        while let Some(Ok(_)) = poll_fn(|cx| Pin::new(&mut **ws).poll_next(cx)).await {}
        let mut buf = [0u8; 4096];
        while let Ok(1..) = tokio::io::AsyncReadExt::read(ws.get_mut(), &mut buf).await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_path(path: &str) -> WsConfig {
        WsConfig {
            path: path.to_owned(),
            ..WsConfig::default()
        }
    }

    #[test]
    fn the_default_path_takes_every_path_as_tc_server_does() {
        let ws = WsConfig::default();
        for path in ["/", "/live", "/live/extra"] {
            assert!(ws.takes_path(path), "{path}");
        }
    }

    #[test]
    fn a_path_takes_itself_and_the_paths_under_it_only() {
        for ws in [with_path("/rtws"), with_path("/rtws/")] {
            assert!(ws.takes_path("/rtws"));
            assert!(ws.takes_path("/rtws/live"));
            assert!(!ws.takes_path("/rtwsx"));
            assert!(!ws.takes_path("/live"));
            assert!(!ws.takes_path("/"));
        }
    }

    #[test]
    fn an_allow_list_takes_its_origins_in_any_case_and_requests_without_origin() {
        let ws = WsConfig {
            allowed_origins: Some(vec!["https://a.example".to_owned()]),
            ..WsConfig::default()
        };
        assert!(ws.takes_origin(Some("https://A.EXAMPLE")));
        assert!(!ws.takes_origin(Some("https://a.example.evil")));
        assert!(ws.takes_origin(None));
        assert!(WsConfig::default().takes_origin(Some("https://anything")));
    }
}
