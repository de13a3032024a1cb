//! A blocking RTMP client built from the core's own client handshake and
//! chunk codec, so the tests see exactly the bytes a real client would.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tincan_core::amf::amf0::Value;
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits};
use tincan_core::entropy::SeededEntropy;
use tincan_core::handshake::{ClientHandshake, HandshakeConfig};
use tincan_core::message::{Command, Connect, Encoding, Message, Play, PublishKind};
use tincan_core::time::MediaTime;

/// How long any single wait in these tests may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Client {
    stream: TcpStream,
    dec: ChunkDecoder,
    enc: ChunkEncoder,
}

/// A command the client received: its name, its info object's `code`,
/// and its first number argument (a `createStream` result's stream id).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub name: String,
    pub code: Option<String>,
    pub number: Option<f64>,
}

/// A message the client received.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    Command(Received),
    /// A video message: its timestamp and payload.
    Video(u32, Vec<u8>),
    Other,
}

impl Client {
    /// Connects and completes the RTMP handshake.
    pub fn handshake(addr: SocketAddr) -> std::io::Result<Client> {
        Client::handshake_with(TcpStream::connect(addr)?)
    }

    /// Like [`Client::handshake`] with a small receive buffer, so a client
    /// that stops reading pushes back on the server within a few KiB.
    pub fn handshake_small_window(addr: SocketAddr) -> std::io::Result<Client> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_recv_buffer_size(4096)?;
        socket.connect(&addr.into())?;
        Client::handshake_with(socket.into())
    }

    fn handshake_with(mut stream: TcpStream) -> std::io::Result<Client> {
        stream.set_read_timeout(Some(PATIENCE))?;
        // A server that stops reading fails the test instead of hanging it.
        stream.set_write_timeout(Some(PATIENCE))?;
        let mut hs = ClientHandshake::new(
            Instant::now(),
            HandshakeConfig::default(),
            &mut SeededEntropy::new(1),
        );
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let mut buf = vec![0u8; 64 * 1024];
        while !hs.is_complete() {
            while let Some(out) = hs.poll_transmit() {
                stream.write_all(&out)?;
            }
            let n = stream.read(&mut buf)?;
            assert!(n > 0, "server closed during the handshake");
            let used = hs
                .handle_input(&buf[..n])
                .expect("server handshake is valid");
            dec.handle_input(&buf[used..n]).expect("chunk input fits");
        }
        while let Some(out) = hs.poll_transmit() {
            stream.write_all(&out)?;
        }
        Ok(Client {
            stream,
            dec,
            enc: ChunkEncoder::new(),
        })
    }

    /// Sends `connect` for App `app` as FFmpeg would.
    pub fn send_connect(&mut self, app: &str) {
        let connect = Command::Connect(Connect {
            transaction_id: 1.0,
            properties: Value::object([
                ("app", Value::from(app)),
                ("flashVer", Value::from("FMLE/3.0 (compatible; FMSc/1.0)")),
                ("tcUrl", Value::from(format!("rtmp://localhost/{app}"))),
                ("objectEncoding", Value::Number(0.0)),
            ]),
            args: vec![],
        });
        self.command(0, connect);
    }

    /// Sends an AMF0 command on message stream `stream`.
    pub fn command(&mut self, stream: u32, command: Command) {
        let csid = if stream == 0 { 3 } else { 8 };
        self.send(
            csid,
            stream,
            0,
            &Message::Command {
                encoding: Encoding::Amf0,
                command,
            },
        );
    }

    fn send(&mut self, csid: u32, stream: u32, ts: u32, msg: &Message) {
        let raw = msg
            .to_raw(csid, MediaTime::from_millis(ts), stream)
            .expect("test message encodes");
        let mut out = Vec::new();
        self.enc.write(&raw, &mut out);
        self.stream
            .write_all(&out.concat())
            .expect("send to the server");
    }

    /// Sends a video message on `stream` at `ts`.
    pub fn send_video(&mut self, stream: u32, ts: u32, payload: Vec<u8>) {
        self.send(6, stream, ts, &Message::Video(payload.into()));
    }

    /// Creates a stream and returns its id.
    pub fn create_stream(&mut self) -> u32 {
        self.command(
            0,
            Command::CreateStream {
                transaction_id: 2.0,
            },
        );
        loop {
            let got = self.next_command().expect("server answers createStream");
            if got.name == "_result" {
                return got.number.expect("createStream result has an id") as u32;
            }
        }
    }

    /// Connects, creates a stream and publishes `name` live on it.
    pub fn publisher(addr: SocketAddr, name: &str) -> (Client, u32) {
        let mut c = Client::connected(addr);
        let stream = c.create_stream();
        c.command(
            stream,
            Command::Publish {
                transaction_id: 0.0,
                name: Some(name.to_owned()),
                kind: PublishKind::Live,
            },
        );
        c.expect_code("NetStream.Publish.Start");
        (c, stream)
    }

    /// Creates a stream and plays `name` live on it.
    pub fn play(&mut self, name: &str) {
        let stream = self.create_stream();
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
        self.expect_code("NetStream.Play.Start");
    }

    /// The next message from the server, or `None` once it closed.
    pub fn next(&mut self) -> Option<Got> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(raw) = self.dec.poll_message().expect("server output decodes") {
                let ts = raw.timestamp.as_millis();
                return Some(
                    match Message::decode(&raw).expect("server messages decode") {
                        Message::Command { command, .. } => Got::Command(received(&command)),
                        Message::Video(payload) => Got::Video(ts, payload.to_vec()),
                        _ => Got::Other,
                    },
                );
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.dec.handle_input(&buf[..n]).expect("chunk input fits"),
            }
        }
    }

    /// The next command from the server, or `None` once it closed.
    pub fn next_command(&mut self) -> Option<Received> {
        loop {
            if let Got::Command(c) = self.next()? {
                return Some(c);
            }
        }
    }

    /// Reads until a video message stamped `ts` arrives; false if the
    /// server closes or goes quiet for [`PATIENCE`] first.
    pub fn wait_video(&mut self, ts: u32) -> bool {
        loop {
            match self.next() {
                Some(Got::Video(t, _)) if t == ts => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }

    /// Reads commands until one has `code`; fails the test if the server
    /// closes first.
    pub fn expect_code(&mut self, code: &str) -> Received {
        loop {
            let got = self
                .next_command()
                .unwrap_or_else(|| panic!("server closed before {code}"));
            if got.code.as_deref() == Some(code) {
                return got;
            }
        }
    }

    /// Connects, handshakes and gets `NetConnection.Connect.Success`.
    pub fn connected(addr: SocketAddr) -> Client {
        let mut c = Client::handshake(addr).expect("connect to the server");
        c.send_connect("live");
        let got = c.expect_code("NetConnection.Connect.Success");
        assert_eq!(got.name, "_result");
        c
    }

    /// Reads until the server closes the connection; true if it did within
    /// [`PATIENCE`].
    pub fn wait_closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}

fn received(command: &Command) -> Received {
    let (info, number) = match command {
        Command::OnStatus { info } => (Some(info), None),
        Command::Result { args, .. } | Command::Error { args, .. } => {
            (args.last(), args.iter().find_map(|a| a.as_f64()))
        }
        _ => (None, None),
    };
    let code = info
        .and_then(|i| i.get("code"))
        .and_then(|c| c.as_str())
        .map(str::to_owned);
    Received {
        name: command.name().to_owned(),
        code,
        number,
    }
}

/// A legacy AVC video tag: keyframe (`0x17`) or inter frame (`0x27`), NALU
/// packet, composition time 0, then `len` filler bytes.
pub fn avc_frame(key: bool, len: usize) -> Vec<u8> {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
    v.resize(5 + len, 0xAB);
    v
}

/// A legacy AVC sequence header with a dummy configuration record.
pub fn avc_sequence_header() -> Vec<u8> {
    vec![0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f]
}

/// Frames [`flood`] sends; with [`FLOOD_FRAME`] bytes each, megabytes more
/// than any socket buffer holds.
pub const FLOOD_FRAMES: u32 = 200;
const FLOOD_FRAME: usize = 32 * 1024;

/// Sends a sequence header and [`FLOOD_FRAMES`] video frames as fast as
/// the server takes them, a keyframe every tenth and the last one a
/// keyframe (so no real-time policy may skip it); returns the last one's
/// timestamp.
pub fn flood(publisher: &mut Client, stream: u32) -> u32 {
    publisher.send_video(stream, 0, avc_sequence_header());
    let mut ts = 0;
    for i in 0..FLOOD_FRAMES {
        ts = i * 33;
        let key = i % 10 == 0 || i + 1 == FLOOD_FRAMES;
        publisher.send_video(stream, ts, avc_frame(key, FLOOD_FRAME));
    }
    ts
}

/// Runs `run` on a thread; the receiver gets its result when it returns.
pub fn on_thread<F>(run: F) -> mpsc::Receiver<std::io::Result<()>>
where
    F: FnOnce() -> std::io::Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run());
    });
    rx
}
