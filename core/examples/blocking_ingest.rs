//! An RTMP ingest endpoint that records each publish to an FLV file, driving
//! one [`Session`] by hand over a blocking `std::net::TcpStream`: no async
//! runtime, no broker, one connection at a time. It is the smallest complete
//! embedding of the core (docs/embedding.md walks through it).
//!
//! ```sh
//! cargo run -p tincan-core --example blocking_ingest -- 127.0.0.1:1935 out.flv
//! ffmpeg -re -i input.mp4 -c copy -f flv rtmp://127.0.0.1:1935/live/test
//! ```

// This example is a runtime: it owns the socket, the file and the clock that
// the core may not touch (core/clippy.toml), so the sans-IO lint is off here.
#![allow(clippy::disallowed_methods)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

#[path = "common/flv.rs"]
mod flv;
use flv::FlvWriter;
use tincan_core::event::{BrokerEvent, SessionEvent};
use tincan_core::session::{Session, SessionConfig};

/// Drives one connection until it closes, appending every frame the client
/// publishes to `out` as FLV. Returns the number of FLV tags written, or
/// the error that writing the recording failed with.
pub fn serve_connection(mut socket: TcpStream, out: &mut impl Write) -> io::Result<u64> {
    let mut entropy = |buf: &mut [u8]| os_random(buf);
    let mut session = Session::new(Instant::now(), SessionConfig::default(), &mut entropy);
    let mut flv = FlvWriter::new(out)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // 1. Write what the session owes the peer. A blocking write is fine
        //    for an ingest endpoint: it only ever sends small replies.
        while let Some(t) = session.poll_transmit(Instant::now()) {
            if let Err(e) = t.bufs.iter().try_for_each(|b| socket.write_all(b)) {
                // The peer is gone (it may close right after its last
                // command): the session closes as if it had read EOF.
                eprintln!("write failed: {e}");
                session.handle_eof(Instant::now());
            }
        }
        // 2. Events. Here the embedder decides: a publish is a request the
        //    session holds until it is answered (the approval), keyed by its
        //    message stream id. This endpoint accepts every publish.
        let mut answered = false;
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::Publish { stream, name, .. } => {
                    let hashname = format!("sha256:{:x}", Sha256::digest(name.as_bytes()));
                    let accept = BrokerEvent::PublishAccepted {
                        stream,
                        seq: 1,
                        hashname,
                    };
                    session.handle_broker_event(Instant::now(), accept);
                    answered = true;
                }
                SessionEvent::Frame { frame, .. } | SessionEvent::SetDataFrame { frame, .. } => {
                    flv.write(&frame)?;
                }
                _ => {}
            }
        }
        if session.is_closed() {
            return Ok(flv.tags);
        }
        if answered {
            continue; // the answer is a transmit: write it before blocking
        }
        // 3. Block until bytes arrive or the session's next deadline.
        let now = Instant::now();
        let wait = session
            .poll_timeout()
            .map(|d| d.saturating_duration_since(now));
        if wait == Some(Duration::ZERO) {
            session.handle_timeout(now);
            continue;
        }
        // A zero read timeout means "block forever" to std; never pass it.
        socket.set_read_timeout(wait.map(|w| w.max(Duration::from_millis(1))))?;
        match socket.read(&mut buf) {
            Ok(0) => session.handle_eof(Instant::now()),
            Ok(n) => {
                // A protocol error closes the session, which still owes the
                // peer its error status: keep looping until it is closed.
                if let Err(e) = session.handle_input(Instant::now(), &buf[..n]) {
                    eprintln!("session error: {e}");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("read failed: {e}");
                session.handle_eof(Instant::now());
            }
        }
    }
}

/// The core never draws randomness itself; in production hand it the OS's.
fn os_random(buf: &mut [u8]) {
    let mut urandom = std::fs::File::open("/dev/urandom").expect("/dev/urandom is readable");
    urandom.read_exact(buf).expect("/dev/urandom gives bytes");
}

#[allow(dead_code)] // the conformance tests include this file for serve_connection only
fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:1935".to_owned());
    let path = args.next().unwrap_or_else(|| "out.flv".to_owned());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("recording publishes on rtmp://{addr}/<app>/<name> to {path}");
    for socket in listener.incoming() {
        let mut file = std::fs::File::create(&path)?;
        match serve_connection(socket?, &mut file) {
            Ok(tags) => eprintln!("connection closed; {tags} FLV tags in {path}"),
            Err(e) => eprintln!("connection failed: {e}"),
        }
    }
    Ok(())
}
