//! A scripted in-memory RTMP client and a virtual clock for driving a
//! [`Session`] in tests: the client side's handshake, chunk encoder and
//! decoder are the crate's own, so every byte the session sees and sends
//! crosses a real chunk stream.

use std::time::{Duration, Instant};

use super::{Session, SessionConfig, SessionError};
use crate::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits, RawMessage};
use crate::entropy::SeededEntropy;
use crate::event::SessionEvent;
use crate::handshake::{ClientHandshake, HandshakeConfig};
use crate::message::{Command, Connect, Encoding, Message, Value};
use crate::testing::test_now;
use crate::time::MediaTime;

/// One message the client received, raw and decoded.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) raw: RawMessage,
    pub(super) msg: Message,
}

impl Received {
    /// The command name, if this is a command.
    pub(super) fn command(&self) -> Option<&str> {
        match &self.msg {
            Message::Command { command, .. } => Some(command.name()),
            _ => None,
        }
    }

    /// The info object's `code` of an `onStatus`, `_result` or `_error`
    /// (its last argument).
    pub(super) fn code(&self) -> Option<&str> {
        self.info()?.get("code")?.as_str()
    }

    /// The info object: the first argument of `onStatus`, the last argument
    /// of `_result` / `_error` / other commands.
    pub(super) fn info(&self) -> Option<&Value> {
        match &self.msg {
            Message::Command { command, .. } => match command {
                Command::OnStatus { info } => Some(info),
                Command::Result { args, .. } | Command::Error { args, .. } => args.last(),
                Command::Other(g) => g.args.last(),
                _ => None,
            },
            _ => None,
        }
    }

    /// A member of the info object as a string.
    pub(super) fn info_str(&self, key: &str) -> Option<&str> {
        self.info()?.get(key)?.as_str()
    }
}

/// A session, a client talking to it, and a virtual clock.
pub(super) struct Pair {
    pub(super) session: Session,
    pub(super) now: Instant,
    hs: ClientHandshake,
    enc: ChunkEncoder,
    dec: ChunkDecoder,
    /// Events polled from the session so far and not yet taken.
    pub(super) events: Vec<SessionEvent>,
}

impl Pair {
    /// A fresh session with `config`; nothing exchanged yet.
    pub(super) fn new(config: SessionConfig) -> Self {
        let now = test_now();
        let session = Session::new(now, config, &mut SeededEntropy::new(7));
        let hs = ClientHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(9));
        let dec = ChunkDecoder::new(DecoderLimits::default());
        Pair {
            session,
            now,
            hs,
            enc: ChunkEncoder::new(),
            dec,
            events: Vec::new(),
        }
    }

    /// A session with the default configuration, handshake done.
    pub(super) fn handshaken() -> Self {
        Self::handshaken_with(SessionConfig::default())
    }

    /// A session with `config`, handshake done.
    pub(super) fn handshaken_with(config: SessionConfig) -> Self {
        let mut p = Self::new(config);
        p.handshake();
        p
    }

    /// A session connected to App "live", its replies read.
    pub(super) fn connected() -> Self {
        Self::connected_with(SessionConfig::default())
    }

    /// Like [`Pair::connected`] with `config`.
    pub(super) fn connected_with(config: SessionConfig) -> Self {
        let mut p = Self::handshaken_with(config);
        p.command(0, connect_command("live", 0.0));
        p.receive();
        p.take_events();
        p
    }

    /// Runs the client handshake against the session.
    pub(super) fn handshake(&mut self) {
        let c0c1 = self.hs.poll_transmit().expect("client sends C0C1");
        self.input(&c0c1).expect("session takes C0C1");
        let reply: Vec<u8> = self.transmitted();
        let used = self.hs.handle_input(&reply).expect("client takes S0S1S2");
        assert_eq!(used, reply.len());
        let c2 = self.hs.poll_transmit().expect("client sends C2");
        self.input(&c2).expect("session takes C2");
        assert!(self.hs.is_complete());
    }

    /// Moves the clock and fires due timers.
    pub(super) fn advance(&mut self, by: Duration) {
        self.now += by;
        self.session.handle_timeout(self.now);
        self.poll_events();
    }

    /// Bytes from the client to the session.
    pub(super) fn input(&mut self, data: &[u8]) -> Result<(), SessionError> {
        let mut r = self.session.handle_input(self.now, data);
        // As a runtime does: the rest of the input, a turn at a time.
        while r.is_ok() && self.session.has_pending_input() {
            r = self.session.handle_input(self.now, &[]);
        }
        self.poll_events();
        r
    }

    /// Encodes `msg` on `csid` / `stream` at `ts` and sends it.
    pub(super) fn send(
        &mut self,
        csid: u32,
        stream: u32,
        ts: u32,
        msg: &Message,
    ) -> Result<(), SessionError> {
        let raw = msg
            .to_raw(csid, MediaTime::from_millis(ts), stream)
            .expect("test message encodes");
        self.send_raw(&raw)
    }

    /// Sends one raw message.
    pub(super) fn send_raw(&mut self, raw: &RawMessage) -> Result<(), SessionError> {
        let bytes = self.encode(raw);
        self.input(&bytes)
    }

    /// Encodes without sending, for pipelining several messages in one read.
    pub(super) fn encode(&mut self, raw: &RawMessage) -> Vec<u8> {
        let mut out = Vec::new();
        self.enc.write(raw, &mut out);
        out.concat()
    }

    /// An AMF0 command on `stream` (chunk stream 3, or 8 on other streams).
    pub(super) fn command(&mut self, stream: u32, command: Command) {
        let csid = if stream == 0 { 3 } else { 8 };
        let msg = Message::Command {
            encoding: Encoding::Amf0,
            command,
        };
        let _ = self.send(csid, stream, 0, &msg);
    }

    /// Everything the session transmits right now, as bytes.
    pub(super) fn transmitted(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(t) = self.session.poll_transmit(self.now) {
            assert!(!t.is_empty());
            for b in &t.bufs {
                out.extend_from_slice(b);
            }
        }
        out
    }

    /// Reads and decodes everything the session transmits right now.
    pub(super) fn receive(&mut self) -> Vec<Received> {
        let bytes = self.transmitted();
        self.decode(&bytes)
    }

    /// Reads and decodes one transmit, if the session has one.
    pub(super) fn receive_one(&mut self) -> Option<Vec<Received>> {
        let t = self.session.poll_transmit(self.now)?;
        let bytes: Vec<u8> = t.bufs.concat();
        Some(self.decode(&bytes))
    }

    /// Decodes bytes the session transmitted earlier.
    pub(super) fn decode_bytes(&mut self, bytes: &[u8]) -> Vec<Received> {
        self.decode(bytes)
    }

    fn decode(&mut self, bytes: &[u8]) -> Vec<Received> {
        self.dec
            .handle_input(bytes)
            .expect("session output decodes");
        let mut got = Vec::new();
        while let Some(raw) = self.dec.poll_message().expect("session output decodes") {
            let msg = Message::decode(&raw).expect("session messages decode");
            got.push(Received { raw, msg });
        }
        got
    }

    /// Drains the session's events into `self.events`.
    pub(super) fn poll_events(&mut self) {
        while let Some(e) = self.session.poll_event() {
            self.events.push(e);
        }
    }

    /// Answers every play request not answered yet as the broker would
    /// (accepted), leaving the events in place.
    pub(super) fn accept_plays(&mut self) {
        self.poll_events();
        let asks: Vec<(u32, u64)> = self
            .events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Play { stream, request } => Some((*stream, request.seq)),
                _ => None,
            })
            .collect();
        for (stream, seq) in asks {
            self.session.handle_broker_event(
                self.now,
                crate::event::BrokerEvent::PlayAccepted { stream, seq },
            );
        }
    }

    /// Takes the events polled so far.
    pub(super) fn take_events(&mut self) -> Vec<SessionEvent> {
        self.poll_events();
        std::mem::take(&mut self.events)
    }

    /// How many `Closed` events were polled so far (not taken).
    pub(super) fn closed_count(&self) -> usize {
        self.events
            .iter()
            .filter(|e| **e == SessionEvent::Closed)
            .count()
    }
}

/// A `connect` as FFmpeg sends it, for App `app`.
pub(super) fn connect_command(app: &str, object_encoding: f64) -> Command {
    Command::Connect(Connect {
        transaction_id: 1.0,
        properties: Value::object([
            ("app", Value::from(app)),
            ("flashVer", Value::from("FMLE/3.0 (compatible; FMSc/1.0)")),
            ("tcUrl", Value::from(format!("rtmp://localhost/{app}"))),
            ("objectEncoding", Value::Number(object_encoding)),
        ]),
        args: vec![],
    })
}
