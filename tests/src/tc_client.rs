//! A minimal blocking RTMP client over a real TCP socket, built from the
//! core's own wire layers, for tests against the `tincan` binary that need
//! to see exactly what the server sends (statuses, control messages, the
//! raw chunk bytes) rather than what an external player makes of it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits};
use tincan_core::entropy::SeededEntropy;
use tincan_core::handshake::{ClientHandshake, HandshakeConfig};
use tincan_core::message::{
    Command, Connect, Encoding, Message, Play, PublishKind, UserControl, Value,
};
use tincan_core::time::MediaTime;

/// Chunk streams the client sends on: commands, then media.
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_VIDEO: u32 = 6;

/// One RTMP connection to a server, read on demand.
#[derive(Debug)]
pub struct TcClient {
    sock: TcpStream,
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
    /// Every message decoded so far, in order.
    received: Vec<Message>,
    /// Every byte received after the handshake, for wire-level checks.
    raw: Vec<u8>,
    eof: bool,
    next_transaction: f64,
}

impl TcClient {
    /// Connects to the server on loopback `port` and completes the
    /// handshake; fails if the server refuses or closes first.
    pub fn connect(port: u16, timeout: Duration) -> Result<Self, String> {
        let sock =
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| format!("connect: {e}"))?;
        Self::handshake(sock, timeout)
    }

    /// Connects to `server` from local address `from` (e.g. 127.0.0.7 or
    /// ::1: the socket is bound before it connects, which FFmpeg cannot
    /// do) and completes the handshake.
    pub fn connect_from(
        from: std::net::IpAddr,
        server: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<Self, String> {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::for_address(server), Type::STREAM, None)
            .map_err(|e| format!("socket: {e}"))?;
        sock.bind(&std::net::SocketAddr::new(from, 0).into())
            .map_err(|e| format!("bind {from}: {e}"))?;
        sock.connect_timeout(&server.into(), timeout)
            .map_err(|e| format!("connect: {e}"))?;
        Self::handshake(sock.into(), timeout)
    }

    /// Completes the client handshake on a connected socket.
    pub fn handshake(mut sock: TcpStream, timeout: Duration) -> Result<Self, String> {
        let deadline = Instant::now() + timeout;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| e.to_string())?;
        let mut hs = ClientHandshake::new(
            Instant::now(),
            HandshakeConfig::default(),
            &mut SeededEntropy::new(3),
        );
        let mut leftover = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while !hs.is_complete() {
            while let Some(out) = hs.poll_transmit() {
                sock.write_all(&out).map_err(|e| format!("write: {e}"))?;
            }
            if Instant::now() >= deadline {
                return Err("handshake did not complete in time".to_owned());
            }
            let n = match sock.read(&mut buf) {
                Ok(0) => return Err("server closed during the handshake".to_owned()),
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) => return Err(format!("read during the handshake: {e}")),
            };
            let used = hs
                .handle_input(&buf[..n])
                .map_err(|e| format!("handshake: {e}"))?;
            leftover.extend_from_slice(&buf[used.min(n)..n]);
        }
        while let Some(out) = hs.poll_transmit() {
            sock.write_all(&out).map_err(|e| format!("write: {e}"))?;
        }
        let mut client = TcClient {
            sock,
            encoder: ChunkEncoder::new(),
            decoder: ChunkDecoder::new(DecoderLimits::default()),
            received: Vec::new(),
            raw: Vec::new(),
            eof: false,
            next_transaction: 1.0,
        };
        client.take_in(&leftover)?;
        Ok(client)
    }

    /// Sends `message` on chunk stream `csid` of message stream `stream`.
    pub fn send(&mut self, csid: u32, stream: u32, timestamp: u32, message: &Message) {
        let raw = message
            .to_raw(csid, MediaTime::from_millis(timestamp), stream)
            .expect("test message encodes");
        let mut bufs = Vec::new();
        self.encoder.write(&raw, &mut bufs);
        // A write to a server that closed is what some tests expect.
        let _ = self.sock.write_all(&bufs.concat());
    }

    fn command(&mut self, stream: u32, command: Command) {
        let message = Message::Command {
            encoding: Encoding::Amf0,
            command,
        };
        self.send(CSID_COMMAND, stream, 0, &message);
    }

    fn transaction(&mut self) -> f64 {
        let t = self.next_transaction;
        self.next_transaction += 1.0;
        t
    }

    /// Sends `connect` for App `app`; returns its transaction id.
    pub fn connect_app(&mut self, app: &str) -> f64 {
        let transaction_id = self.transaction();
        self.command(
            0,
            Command::Connect(Connect {
                transaction_id,
                properties: Value::object([
                    ("app", Value::from(app)),
                    ("tcUrl", Value::from(format!("rtmp://127.0.0.1/{app}"))),
                    ("objectEncoding", Value::Number(0.0)),
                ]),
                args: vec![],
            }),
        );
        transaction_id
    }

    /// Sends `connect` for App `app` with `extra` members in the command
    /// object (e.g. Enhanced RTMP's `capsEx`); returns its transaction id.
    pub fn connect_app_with(&mut self, app: &str, extra: Vec<(&str, Value)>) -> f64 {
        let transaction_id = self.transaction();
        let mut members = vec![
            ("app", Value::from(app)),
            ("tcUrl", Value::from(format!("rtmp://127.0.0.1/{app}"))),
            ("objectEncoding", Value::Number(0.0)),
        ];
        members.extend(extra);
        self.command(
            0,
            Command::Connect(Connect {
                transaction_id,
                properties: Value::object(members),
                args: vec![],
            }),
        );
        transaction_id
    }

    /// Sends `createStream`; returns its transaction id.
    pub fn create_stream(&mut self) -> f64 {
        let transaction_id = self.transaction();
        self.command(0, Command::CreateStream { transaction_id });
        transaction_id
    }

    /// Sends `publish name live` on `stream`.
    pub fn publish(&mut self, stream: u32, name: &str) {
        self.command(
            stream,
            Command::Publish {
                transaction_id: 0.0,
                name: Some(name.to_owned()),
                kind: PublishKind::Live,
            },
        );
    }

    /// Sends `play name` (live) on `stream`.
    pub fn play(&mut self, stream: u32, name: &str) {
        self.command(
            stream,
            Command::Play(Play {
                transaction_id: 0.0,
                name: name.to_owned(),
                start: -2.0,
                duration: -1.0,
                reset: true,
                options: None,
            }),
        );
    }

    /// Sends a video message on `stream`.
    pub fn send_video(&mut self, stream: u32, timestamp: u32, payload: Bytes) {
        self.send(CSID_VIDEO, stream, timestamp, &Message::Video(payload));
    }

    /// Connects to `app`, creates a stream and returns its id, asserting
    /// each step succeeded.
    pub fn connect_and_create_stream(&mut self, app: &str, timeout: Duration) -> u32 {
        self.connect_app(app);
        assert!(
            self.wait_for(timeout, |m| status_code(m)
                == Some("NetConnection.Connect.Success")),
            "no connect success; got {:?}",
            self.received
        );
        let t = self.create_stream();
        let mut stream = None;
        self.wait_for(timeout, |m| {
            if let Message::Command {
                command:
                    Command::Result {
                        transaction_id,
                        args,
                        ..
                    },
                ..
            } = m
            {
                if *transaction_id == t {
                    stream = args.iter().find_map(Value::as_f64);
                    return true;
                }
            }
            false
        });
        stream.expect("createStream result with a stream id") as u32
    }

    /// Reads until a received message matches `done`, the server closes,
    /// or `timeout`; true if a message matched (including one received
    /// earlier).
    pub fn wait_for(&mut self, timeout: Duration, mut done: impl FnMut(&Message) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut checked = 0;
        loop {
            while checked < self.received.len() {
                if done(&self.received[checked]) {
                    return true;
                }
                checked += 1;
            }
            if self.eof || Instant::now() >= deadline {
                return false;
            }
            self.read_once();
        }
    }

    /// Reads until the server closes the connection or `timeout`; true if
    /// it closed.
    pub fn wait_eof(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.eof && Instant::now() < deadline {
            self.read_once();
        }
        self.eof
    }

    /// Reads for `dur`, whatever arrives.
    pub fn read_for(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        while !self.eof && Instant::now() < deadline {
            self.read_once();
        }
    }

    /// Closes the connection from the client's side.
    pub fn close(self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    /// Resets the connection (SO_LINGER 0: a TCP RST, no goodbye), as a
    /// crashed client or a pulled cable would leave it.
    pub fn reset(self) {
        let _ = socket2::SockRef::from(&self.sock).set_linger(Some(Duration::ZERO));
        drop(self.sock);
    }

    /// Every message decoded so far.
    pub fn received(&self) -> &[Message] {
        &self.received
    }

    /// Every byte received after the handshake.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Whether the server closed the connection.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    fn read_once(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        match self.sock.read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                if let Err(e) = self.take_in(&buf[..n]) {
                    panic!("server output does not decode: {e}");
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // A reset is the server closing too.
            Err(_) => self.eof = true,
        }
    }

    fn take_in(&mut self, data: &[u8]) -> Result<(), String> {
        self.raw.extend_from_slice(data);
        self.decoder
            .handle_input(data)
            .map_err(|e| format!("chunk: {e}"))?;
        while let Some(raw) = self
            .decoder
            .poll_message()
            .map_err(|e| format!("chunk: {e}"))?
        {
            let msg = Message::decode(&raw).map_err(|e| format!("message: {e}"))?;
            if let Message::UserControl(UserControl::PingRequest(t)) = msg {
                let pong = Message::UserControl(UserControl::PingResponse(t));
                self.send(CSID_CONTROL, 0, 0, &pong);
            }
            self.received.push(msg);
        }
        Ok(())
    }
}

/// The `description` of an `onStatus`, `_result` or `_error` info object.
pub fn status_description(m: &Message) -> Option<&str> {
    let Message::Command { command, .. } = m else {
        return None;
    };
    let info = match command {
        Command::OnStatus { info } => info,
        Command::Result { args, .. } | Command::Error { args, .. } => args.last()?,
        _ => return None,
    };
    info.get("description")?.as_str()
}

/// The `code` of an `onStatus`, `_result` or `_error` info object.
pub fn status_code(m: &Message) -> Option<&str> {
    let Message::Command { command, .. } = m else {
        return None;
    };
    let info = match command {
        Command::OnStatus { info } => info,
        Command::Result { args, .. } | Command::Error { args, .. } => args.last()?,
        _ => return None,
    };
    info.get("code")?.as_str()
}
