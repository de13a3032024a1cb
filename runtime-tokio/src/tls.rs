//! RTMPS: the per-connection driver for TLS connections (feature `tls`).
//!
//! A TLS connection is accepted by the core exactly like a plain one (the
//! same `Server::accept`, so the same connection limits), and only then
//! does its task run the TLS handshake, so the core's handshake deadline,
//! which starts at `accept`, covers the TLS handshake too: a client that
//! stalls before or in the middle of its ClientHello is closed by the
//! core's timer like one that stalls in the RTMP handshake, and the task,
//! rung by the core, drops it.
//!
//! Once the handshake is done, [`serve`] is the shared driver's loop
//! (`tincan_net::driver`) over tokio-rustls' `AsyncRead + AsyncWrite`
//! instead of socket readiness, with the same properties: one pending
//! transmit, taken from the core only once the previous one is written;
//! a budget of [`WRITE_BUDGET`] transmits, then a yield; reads through one
//! buffer per thread, handed to the core before the task waits again; the
//! bell; the linger; the close log. rustls' own send buffer is capped at
//! [`TLS_BUFFER`], as the kernel's unsent queue is by `TCP_NOTSENT_LOWAT`,
//! so the session's real-time policy stays the one queue that decides what
//! a slow player loses.
//!
//! Plain connections never come here: they keep the readiness driver,
//! unchanged.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tincan_core::event::SessionId;
use tincan_core::outbound::Dial;
use tincan_core::session::Transmit;
use tincan_net::driver::{log_closed, READ_BUF, WRITE_BUDGET};
use tincan_net::{DriverConfig, Runtime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};
use tracing::{debug, info};

use crate::connection::Tokio;
use crate::shared::{Shared, TokioBell};

/// The most encrypted output rustls may hold for a connection beyond the
/// transmit being written (its default is 64 KiB): as the kernel's unsent
/// queue (`TCP_NOTSENT_LOWAT`, 16 KiB), kept small so that what a slow
/// player cannot take stays in the session, where the real-time policy
/// sees it.
pub const TLS_BUFFER: usize = 16 * 1024;

/// Either side's TLS stream: accepted (RTMPS listener) or dialed (RTMPS
/// relay); the driver's loop is the same.
type Tls = TlsStream<TcpStream>;

/// Runs one accepted TLS connection: the TLS handshake (bounded by the
/// core's handshake deadline, and by anything else that closes the
/// connection meanwhile: a stop, a kick), then the session until it closes
/// or the socket fails.
pub(crate) async fn run(
    shared: Arc<Shared>,
    id: SessionId,
    stream: TcpStream,
    acceptor: TlsAcceptor,
    config: DriverConfig,
) {
    info!(tls = true, "accepted");
    let (bell, waiter) = <Tokio as Runtime>::bell();
    shared.register(id, bell);
    tincan_net::configure(&stream);
    // Boxed: the handshake's state is large and short-lived; the
    // connection's task should not carry it for the connection's life.
    let handshake = Box::pin(handshake(&shared, id, acceptor, stream, &waiter)).await;
    match handshake {
        Some(Ok(tls)) => {
            if let Some(version) = tls.get_ref().1.protocol_version() {
                debug!(version = ?version, "TLS handshake done");
            }
            serve(shared, id, tls, waiter, config).await;
        }
        Some(Err(e)) => {
            shared.unregister(id);
            let closed = shared.with(|s, now| s.remove(now, id));
            let why = format!("TLS handshake failed: {e}");
            log_closed(closed.as_ref(), Some(&why));
        }
        None => {
            // The core closed it first: its handshake deadline (a
            // client that stalled in the TLS handshake), a stop, a kick.
            shared.unregister(id);
            let closed = shared.with(|s, now| s.remove(now, id));
            log_closed(closed.as_ref(), Some(&"closed during the TLS handshake"));
        }
    }
}

/// The TLS handshake, or `None` if the core closed connection `id` first.
/// The stream comes boxed: rustls' state is kilobytes, and the
/// connection's task should stay small.
async fn handshake(
    shared: &Shared,
    id: SessionId,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    waiter: &TokioBell,
) -> Option<io::Result<Box<Tls>>> {
    let mut accepting = pin!(async {
        acceptor.accept(stream).await.map(|mut tls| {
            tls.get_mut().1.set_buffer_limit(Some(TLS_BUFFER));
            TlsStream::Server(tls)
        })
    });
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
            return Some(result.map(Box::new));
        }
    }
}

/// Dials one outbound TLS connection (an RTMPS relay): TCP, then the TLS
/// handshake as a client verifying `server_name`, both within the
/// driver's dial timeout, then the same loop as an accepted TLS
/// connection.
pub(crate) async fn dial(
    shared: Arc<Shared>,
    dial: Dial,
    server_name: String,
    connector: TlsConnector,
    config: DriverConfig,
) {
    let id = dial.id;
    debug!(target = %dial.target, tls = true, "dialing");
    let (bell, waiter) = <Tokio as Runtime>::bell();
    shared.register(id, bell);
    // Boxed: the handshake's state is large and short-lived.
    let connected = Box::pin(tokio::time::timeout(config.dial_timeout, async {
        let tcp = TcpStream::connect(&dial.target).await?;
        let peer = tcp.peer_addr()?;
        tincan_net::configure(&tcp);
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(server_name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut tls = connector.connect(name, tcp).await?;
        tls.get_mut().1.set_buffer_limit(Some(TLS_BUFFER));
        Ok::<_, io::Error>((Box::new(TlsStream::Client(tls)), peer))
    }))
    .await;
    let result = match connected {
        Ok(Ok(ok)) => Ok(ok),
        Ok(Err(e)) => Err(format!("RTMPS: {e}")),
        Err(_) => Err("RTMPS: dial timed out".to_owned()),
    };
    match result {
        Ok((tls, peer)) => {
            shared.with(|s, now| s.handle_dialed(now, id, Ok(peer)));
            serve(shared, id, tls, waiter, config).await;
        }
        Err(why) => {
            shared.with(|s, now| s.handle_dialed(now, id, Err(why.clone())));
            shared.unregister(id);
            let closed = shared.with(|s, now| s.remove(now, id));
            log_closed(closed.as_ref(), Some(&why));
        }
    }
}

/// What woke a waiting connection.
enum Wake {
    /// Read and handed to the core: `Ok(false)` once the peer closed.
    Read(io::Result<bool>),
    /// rustls' buffer reached the socket.
    Flushed(io::Result<()>),
    Again,
    Yielded,
    GiveUp,
}

/// The session's life over an established TLS stream: the shared driver's
/// loop (see the module's documentation).
async fn serve(
    shared: Arc<Shared>,
    id: SessionId,
    mut tls: Box<Tls>,
    waiter: TokioBell,
    config: DriverConfig,
) {
    let mut pending = Transmit::default();
    let mut read_open = true;
    let mut give_up = None;
    let outcome: io::Result<()> = loop {
        // 1. Write while the stream takes it (one poll: what does not fit
        //    registers for writability).
        let more_output =
            match poll_fn(|cx| Poll::Ready(write(&shared, id, &mut tls, &mut pending, cx))).await {
                Ok(more) => more,
                Err(e) => break Err(e),
            };
        let unsent = !pending.is_empty() || tls.get_ref().1.wants_write();
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
                if let Poll::Ready(r) = read(&shared, id, &mut tls, cx) {
                    return Poll::Ready(Wake::Read(r));
                }
            }
            if unsent {
                if let Poll::Ready(r) = Pin::new(&mut *tls).poll_flush(cx) {
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
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer did not take the last transmit",
                ))
            }
            Wake::Read(Err(e)) | Wake::Flushed(Err(e)) => break Err(e),
            Wake::Read(Ok(open)) => read_open = open,
            Wake::Yielded if busy => {
                if let Err(e) = shared.with(|s, now| s.handle_input(now, id, &[])) {
                    debug!(error = %e, "session error");
                }
            }
            Wake::Flushed(Ok(())) | Wake::Again | Wake::Yielded => {}
        }
    };
    shared.unregister(id);
    let closed = shared.with(|s, now| s.remove(now, id));
    log_closed(
        closed.as_ref(),
        outcome.as_ref().err().map(|e| e as &dyn std::fmt::Display),
    );
    if outcome.is_ok() && read_open {
        // Boxed: its timer and buffer would otherwise be part of every
        // connection's task for the whole life of the connection.
        Box::pin(linger(&mut tls, config.linger)).await;
    }
}

/// Writes transmits while the stream takes them, up to [`WRITE_BUDGET`].
/// `Ok(true)` when the budget ran out with output left.
fn write(
    shared: &Shared,
    id: SessionId,
    tls: &mut Tls,
    pending: &mut Transmit,
    cx: &mut Context<'_>,
) -> io::Result<bool> {
    let mut budget = WRITE_BUDGET;
    loop {
        if pending.is_empty() && !shared.with(|s, now| s.poll_transmit_into(now, id, pending)) {
            return Ok(false);
        }
        let written = tincan_net::write_transmit(pending, |b| {
            match Pin::new(&mut *tls).poll_write_vectored(cx, b) {
                Poll::Ready(r) => r,
                Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
            }
        })?;
        if !written {
            return Ok(false);
        }
        budget -= 1;
        if budget == 0 {
            return Ok(true);
        }
    }
}

thread_local! {
    /// The read buffer of every TLS connection this thread runs, as the
    /// plain driver's: a read is handed to the core within the same poll.
    static READ: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF]);
}

/// Reads what the stream has into the core. `Ready(Ok(false))` once the
/// peer has closed its side (with or without TLS's close_notify: RTMP
/// clients commonly just close the socket).
fn read(
    shared: &Shared,
    id: SessionId,
    tls: &mut Tls,
    cx: &mut Context<'_>,
) -> Poll<io::Result<bool>> {
    READ.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut *tls).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                shared.with(|s, now| s.handle_eof(now, id));
                Poll::Ready(Ok(false))
            }
            Poll::Ready(Ok(())) => {
                if let Err(e) = shared.with(|s, now| s.handle_input(now, id, rb.filled())) {
                    debug!(error = %e, "session error");
                }
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                shared.with(|s, now| s.handle_eof(now, id));
                Poll::Ready(Ok(false))
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Poll::Ready(Ok(true)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    })
}

/// Sends TLS's close_notify and closes our side, then reads what the peer
/// still sends until it closes too, all within `limit`: as the plain
/// driver's linger, so a reset cannot destroy the goodbye status.
async fn linger(tls: &mut Tls, limit: Duration) {
    let mut buf = vec![0u8; 4096];
    let _ = tokio::time::timeout(limit, async {
        if poll_fn(|cx| Pin::new(&mut *tls).poll_shutdown(cx))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let mut rb = ReadBuf::new(&mut buf);
            match poll_fn(|cx| Pin::new(&mut *tls).poll_read(cx, &mut rb)).await {
                Ok(()) if rb.filled().is_empty() => return,
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As a plain connection's, a TLS connection's task costs its size for
    /// as long as it lives: the handshake's state and the TLS stream are
    /// boxed, the read buffer is per thread.
    #[tokio::test]
    async fn a_tls_connection_task_is_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (shared, _timer, _dialer) =
            crate::shared::new(tincan_core::server::ServerConfig::default());
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(NoCert));
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let task = run(
            shared,
            SessionId(1),
            stream,
            acceptor,
            DriverConfig::default(),
        );
        let size = std::mem::size_of_val(&task);
        assert!(size < 1024, "TLS connection task is {size} bytes");
    }

    #[derive(Debug)]
    struct NoCert;

    impl tokio_rustls::rustls::server::ResolvesServerCert for NoCert {
        fn resolve(
            &self,
            _: tokio_rustls::rustls::server::ClientHello<'_>,
        ) -> Option<Arc<tokio_rustls::rustls::sign::CertifiedKey>> {
            None
        }
    }
}
