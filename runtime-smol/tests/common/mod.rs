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
use tincan_core::message::{Command, Connect, Encoding, Message};
use tincan_core::time::MediaTime;

/// How long any single wait in these tests may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Client {
    stream: TcpStream,
    dec: ChunkDecoder,
    enc: ChunkEncoder,
}

/// A command the client received: its name and its info object's `code`.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub name: String,
    pub code: Option<String>,
}

impl Client {
    /// Connects and completes the RTMP handshake.
    pub fn handshake(addr: SocketAddr) -> std::io::Result<Client> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(PATIENCE))?;
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
        let msg = Message::Command {
            encoding: Encoding::Amf0,
            command: connect,
        };
        let raw = msg
            .to_raw(3, MediaTime::from_millis(0), 0)
            .expect("connect encodes");
        let mut out = Vec::new();
        self.enc.write(&raw, &mut out);
        self.stream.write_all(&out.concat()).expect("send connect");
    }

    /// The next command from the server, or `None` once it closed.
    pub fn next_command(&mut self) -> Option<Received> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(raw) = self.dec.poll_message().expect("server output decodes") {
                let msg = Message::decode(&raw).expect("server messages decode");
                if let Message::Command { command, .. } = msg {
                    let info = match &command {
                        Command::OnStatus { info } => Some(info),
                        Command::Result { args, .. } | Command::Error { args, .. } => args.last(),
                        _ => None,
                    };
                    let code = info
                        .and_then(|i| i.get("code"))
                        .and_then(|c| c.as_str())
                        .map(str::to_owned);
                    return Some(Received {
                        name: command.name().to_owned(),
                        code,
                    });
                }
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.dec.handle_input(&buf[..n]).expect("chunk input fits"),
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
