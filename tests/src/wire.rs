//! A bare server built only from the core's wire layers (handshake, chunk
//! decoder, typed messages), for proving those layers against real clients
//! before any session logic exists.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use tincan_core::chunk::{ChunkDecoder, DecoderLimits};
use tincan_core::entropy::SeededEntropy;
use tincan_core::handshake::{HandshakeConfig, HandshakeKind, ServerHandshake};
use tincan_core::message::{Command, Connect, Message};

/// What a real client revealed up to and including its `connect`.
#[derive(Debug)]
pub struct ConnectSeen {
    /// The handshake flavour the client used.
    pub handshake: HandshakeKind,
    /// The version bytes in the client's C1.
    pub client_version: [u8; 4],
    /// Whether the client's C2 matched what our S1 called for.
    pub c2_validated: Option<bool>,
    /// Messages decoded before the `connect` (e.g. a Set Chunk Size).
    pub before: Vec<Message>,
    /// The typed `connect` command.
    pub connect: Connect,
}

/// Accepts one connection on `listener`, runs the server handshake and the
/// chunk decoder over it, and returns once a `connect` command has been
/// decoded. Fails on any protocol error, on the client closing first, or at
/// `deadline`.
pub fn accept_until_connect(
    listener: &TcpListener,
    timeout: Duration,
) -> Result<ConnectSeen, String> {
    let deadline = Instant::now() + timeout;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut sock = loop {
        match listener.accept() {
            Ok((sock, _)) => break sock,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("no client connected: {e}")),
        }
    };
    sock.set_nonblocking(false).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;

    let mut hs = ServerHandshake::new(
        Instant::now(),
        HandshakeConfig::default(),
        &mut SeededEntropy::new(7),
    );
    let mut chunks = ChunkDecoder::new(DecoderLimits::default());
    let mut before = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("no connect within {timeout:?}; saw {before:?}"));
        }
        hs.handle_timeout(now)
            .map_err(|e| format!("handshake: {e}"))?;
        let n = match sock.read(&mut buf) {
            Ok(0) => return Err(format!("client closed before connect; saw {before:?}")),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        let mut data = &buf[..n];
        if !hs.is_complete() {
            let used = hs
                .handle_input(data)
                .map_err(|e| format!("handshake: {e}"))?;
            while let Some(out) = hs.poll_transmit() {
                sock.write_all(&out).map_err(|e| format!("write: {e}"))?;
            }
            data = &data[used..];
            if !hs.is_complete() {
                continue;
            }
        }
        chunks
            .handle_input(data)
            .map_err(|e| format!("chunk stream: {e}"))?;
        while let Some(raw) = chunks
            .poll_message()
            .map_err(|e| format!("chunk stream: {e}"))?
        {
            match Message::decode(&raw).map_err(|e| format!("message: {e}"))? {
                Message::Command {
                    command: Command::Connect(connect),
                    ..
                } => {
                    return Ok(ConnectSeen {
                        handshake: hs.kind().ok_or("handshake kind unknown")?,
                        client_version: hs.client_version().ok_or("no client version")?,
                        c2_validated: hs.c2_validated(),
                        before,
                        connect,
                    })
                }
                other => before.push(other),
            }
        }
    }
}
