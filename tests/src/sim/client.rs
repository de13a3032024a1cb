//! A scripted RTMP client assembled from the core's own wire layers.
//!
//! [`SimClient`] speaks the client side of RTMP with [`ClientHandshake`],
//! [`ChunkEncoder`], [`ChunkDecoder`] and typed [`Message`]s, so simulation
//! tests exercise a server session exactly as a real client would, byte for
//! byte, without a socket. Its methods only queue bytes; the [`super::Sim`]
//! that owns it moves them. Everything the server sends is decoded and kept
//! in order for the test to inspect, and the client does the little a
//! well-behaved client does on its own: acknowledge bytes and answer pings.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tincan_core::amf::{amf0, amf3};
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits, RawMessage};
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::FrameKind;
use tincan_core::handshake::{ClientHandshake, HandshakeConfig};
use tincan_core::message::{
    type_id, Command, Connect, Data, Encoding, Message, Play, PublishKind, UserControl, Value,
};
use tincan_core::time::MediaTime;

/// Chunk stream ids the client uses, after FFmpeg's habits: one for
/// protocol control, one for commands, one per media kind.
mod csid {
    pub(super) const CONTROL: u32 = 2;
    pub(super) const COMMAND: u32 = 3;
    pub(super) const AUDIO: u32 = 4;
    pub(super) const DATA: u32 = 5;
    pub(super) const VIDEO: u32 = 6;
    pub(super) const AGGREGATE: u32 = 7;
}

/// The chunk size the client announces right after the handshake, as
/// FFmpeg and OBS do (4096), so the server's decoder is exercised with a
/// non-default size.
pub const CLIENT_CHUNK_SIZE: u32 = 4096;

/// The data message Flash-era servers send when play starts, granting the
/// player access to raw samples; not part of any published stream.
pub const SAMPLE_ACCESS: &str = "|RtmpSampleAccess";

/// One message the client received, in arrival order.
#[derive(Debug, Clone)]
pub struct Received {
    /// Virtual time since the simulation started when it arrived.
    pub at: Duration,
    /// The chunk stream it came on (what an Abort names).
    pub csid: u32,
    /// The message stream id it came on.
    pub stream_id: u32,
    /// Its timestamp as the chunk layer decoded it.
    pub timestamp: MediaTime,
    /// The decoded message.
    pub message: Message,
}

/// A media or data message as a player sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// Virtual time since the simulation started when it arrived.
    pub at: Duration,
    /// Audio, video or data.
    pub kind: FrameKind,
    /// The timestamp on the wire.
    pub timestamp: MediaTime,
    /// The payload: the FLV tag body for audio and video, the AMF body
    /// (handler first) for data.
    pub payload: Bytes,
    /// The handler name of a data message.
    pub handler: Option<String>,
}

/// A `_result` or `_error` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// True for `_result`, false for `_error`.
    pub ok: bool,
    /// How the reply was framed (AMF0 or AMF3 command message).
    pub encoding: Encoding,
    /// The reply's command object (the server properties for `connect`).
    pub command_object: Value,
    /// The reply values (an info object, a new stream id...).
    pub args: Vec<Value>,
}

impl Reply {
    /// A string member of the first argument (the info object), looking
    /// through an AMF3 switch.
    pub fn info_str(&self, key: &str) -> Option<String> {
        self.args.first().and_then(|v| member_str(v, key))
    }

    /// A numeric member of the first argument (the info object).
    pub fn info_f64(&self, key: &str) -> Option<f64> {
        self.args.first().and_then(|v| member_f64(v, key))
    }
}

/// A string member of an AMF0 object or of an AMF3 object behind an AVM+
/// switch: replies to AMF3 clients may use either.
pub fn member_str(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::AvmPlus(inner) => inner
            .get(key)
            .and_then(amf3::Value::as_str)
            .map(str::to_owned),
        _ => v.get(key).and_then(Value::as_str).map(str::to_owned),
    }
}

/// A numeric member, as [`member_str`].
pub fn member_f64(v: &Value, key: &str) -> Option<f64> {
    match v {
        Value::AvmPlus(inner) => inner.get(key).and_then(amf3::Value::as_f64),
        _ => v.get(key).and_then(Value::as_f64),
    }
}

/// Encodes AMF0 values back to back (a data message body).
pub fn amf_body(values: &[Value]) -> Bytes {
    let mut b = BytesMut::new();
    amf0::encode_all(values, &mut b).expect("test AMF values encode");
    b.freeze()
}

/// One embedded message of an aggregate.
#[derive(Debug, Clone)]
pub struct AggregateTag {
    /// The message type (8 audio, 9 video, 18 data).
    pub type_id: u8,
    /// The tag's own timestamp.
    pub timestamp: u32,
    /// The tag body.
    pub payload: Bytes,
}

/// Builds an aggregate message payload: FLV tags, each followed by its
/// back pointer.
pub fn aggregate_payload(tags: &[AggregateTag]) -> Bytes {
    let mut b = BytesMut::new();
    for t in tags {
        let size = u32::try_from(t.payload.len()).expect("tag fits in UI24");
        let [_, s1, s2, s3] = size.to_be_bytes();
        let [t0, t1, t2, t3] = t.timestamp.to_be_bytes();
        b.put_u8(t.type_id);
        b.put_slice(&[s1, s2, s3]);
        b.put_slice(&[t1, t2, t3, t0]);
        b.put_slice(&[0, 0, 0]);
        b.put_slice(&t.payload);
        b.put_u32(size + 11);
    }
    b.freeze()
}

/// The client side of one simulated connection.
#[derive(Debug)]
pub struct SimClient {
    handshake: ClientHandshake,
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
    /// Bytes ready for the server, in order.
    outbound: Vec<Bytes>,
    /// Chunk-stream bytes queued before the handshake completed: they may
    /// only follow C2.
    held: Vec<Bytes>,
    command_encoding: Encoding,
    next_transaction: f64,
    received: Vec<Received>,
    errors: Vec<String>,
    /// Payloads at least this long are not kept (see
    /// [`SimClient::keep_payloads_up_to`]).
    keep_limit: usize,
    answer_pings: bool,
    pub(super) closed: bool,
    pub(super) frozen: bool,
    pub(super) eof: bool,
    pub(super) bytes_received: u64,
    /// TC over RTWebSocket instead of RTMP's handshake and chunk stream.
    rtws: Option<Box<super::rtws::RtwsSide>>,
}

impl SimClient {
    /// A client whose handshake starts at `now`; `seed` makes its handshake
    /// bytes reproducible.
    pub fn new(now: Instant, seed: u64) -> Self {
        let mut handshake = ClientHandshake::new(
            now,
            HandshakeConfig::default(),
            &mut SeededEntropy::new(seed),
        );
        let mut outbound = Vec::new();
        while let Some(b) = handshake.poll_transmit() {
            outbound.push(b);
        }
        let mut encoder = ChunkEncoder::new();
        let mut held = Vec::new();
        encoder.set_chunk_size(CLIENT_CHUNK_SIZE, &mut held);
        SimClient {
            handshake,
            encoder,
            decoder: ChunkDecoder::new(DecoderLimits::default()),
            outbound,
            held,
            command_encoding: Encoding::Amf0,
            next_transaction: 1.0,
            received: Vec::new(),
            errors: Vec::new(),
            keep_limit: usize::MAX,
            answer_pings: true,
            closed: false,
            frozen: false,
            eof: false,
            bytes_received: 0,
            rtws: None,
        }
    }

    /// A client that speaks TC over RTWebSocket flows, as the reference
    /// JavaScript client does: every method sends the same RTMP messages,
    /// on flows instead of chunk streams. `base` is the instant of the
    /// simulation's time zero.
    pub fn new_rtws(base: Instant) -> Self {
        let mut c = SimClient::new(base, 0);
        c.outbound.clear();
        c.held.clear();
        let mut side = Box::new(super::rtws::RtwsSide::new(base));
        c.outbound.extend(side.transmits());
        c.rtws = Some(side);
        c
    }

    /// Whether this client speaks TC over RTWebSocket.
    pub fn is_rtws(&self) -> bool {
        self.rtws.is_some()
    }

    /// RTWebSocket: stops acknowledging what the server sends, as a
    /// stalled browser tab would (the server's flow control then holds
    /// its media), or resumes, sending the acks held meanwhile.
    pub fn withhold_acks(&mut self, on: bool) {
        if let Some(r) = &mut self.rtws {
            if on {
                r.withhold_acks = true;
            } else {
                let acks = r.release_acks();
                self.outbound.extend(acks);
            }
        }
    }

    /// RTWebSocket: opens a flow with `metadata` and sends `messages` (whole
    /// TC messages) on it; returns its flow ID.
    pub fn send_on_new_flow(&mut self, metadata: Bytes, messages: &[Bytes]) -> u64 {
        let r = self.rtws.as_mut().expect("an RTWebSocket client");
        let flow = r.send_on_new_flow(metadata, messages);
        let out = r.transmits();
        self.outbound.extend(out);
        flow
    }

    /// RTWebSocket: sends `message` as one WebSocket binary message, as
    /// is (for tests of what the server does with malformed input).
    pub fn send_ws_message(&mut self, message: Bytes) {
        self.outbound.push(message);
    }

    /// RTWebSocket: the flow exceptions the server sent (flow ID, reason).
    pub fn refused_flows(&self) -> &[(u64, String)] {
        self.rtws.as_ref().map_or(&[], |r| &r.refused)
    }

    /// RTWebSocket: flows the server opened that do not answer the
    /// client's control flow (the reference client would refuse them).
    pub fn unanswered_flows(&self) -> &[u64] {
        self.rtws.as_ref().map_or(&[], |r| &r.unanswered_flows)
    }

    /// RTWebSocket: the server hands the link a WebSocket message of
    /// `len` bytes (the link delivers bytes, the client needs boundaries).
    pub(super) fn expect_message(&mut self, len: usize) {
        if let Some(r) = &mut self.rtws {
            r.expect_message(len);
        }
    }

    // ---- connection-level commands -------------------------------------

    /// Sends `connect` for `app` the way FFmpeg does (AMF0, `app`, `tcUrl`,
    /// `flashVer`, `objectEncoding` 0). Returns the transaction id.
    pub fn connect(&mut self, app: &str) -> f64 {
        self.connect_with(
            Value::object([
                ("app", Value::from(app)),
                ("flashVer", Value::from("FMLE/3.0 (compatible; tincan-sim)")),
                ("tcUrl", Value::from(format!("rtmp://sim.invalid/{app}"))),
                ("objectEncoding", Value::from(0.0)),
            ]),
            Vec::new(),
        )
    }

    /// Sends `connect` like a Flash/AIR client with `objectEncoding` 3: an
    /// AMF3-framed command message (type 17), as every later command.
    pub fn connect_amf3(&mut self, app: &str) -> f64 {
        self.command_encoding = Encoding::Amf3;
        self.connect_with(
            Value::object([
                ("app", Value::from(app)),
                ("flashVer", Value::from("WIN 32,0,0,465")),
                ("tcUrl", Value::from(format!("rtmp://sim.invalid/{app}"))),
                ("objectEncoding", Value::from(3.0)),
            ]),
            Vec::new(),
        )
    }

    /// Sends `connect` with the given command object and extra arguments.
    pub fn connect_with(&mut self, properties: Value, args: Vec<Value>) -> f64 {
        let transaction_id = self.transaction();
        self.command(
            0,
            Command::Connect(Connect {
                transaction_id,
                properties,
                args,
            }),
        );
        transaction_id
    }

    /// Sends `createStream`; the stream id comes back in the `_result`.
    pub fn create_stream(&mut self) -> f64 {
        let transaction_id = self.transaction();
        self.command(0, Command::CreateStream { transaction_id });
        transaction_id
    }

    /// Sends `deleteStream` for `stream`.
    pub fn delete_stream(&mut self, stream: u32) {
        self.command(
            0,
            Command::DeleteStream {
                transaction_id: 0.0,
                stream_id: f64::from(stream),
            },
        );
    }

    /// Sends `releaseStream` (TC: evict the publisher of `name`).
    pub fn release_stream(&mut self, name: &str) -> f64 {
        let transaction_id = self.transaction();
        self.command(
            0,
            Command::ReleaseStream {
                transaction_id,
                name: name.to_owned(),
            },
        );
        transaction_id
    }

    /// Sends any command on message stream `stream`.
    pub fn command(&mut self, stream: u32, command: Command) {
        let message = Message::Command {
            encoding: self.command_encoding,
            command,
        };
        self.send(&message, csid::COMMAND, MediaTime::ZERO, stream);
    }

    // ---- stream commands ------------------------------------------------

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

    /// Sends `play name start` on `stream` (start -2: live, FFmpeg uses
    /// -2000 and rtmpdump -1000).
    pub fn play(&mut self, stream: u32, name: &str, start: f64) {
        self.play_with(stream, name, start, None);
    }

    /// Sends `play` with TC real-time options after the name.
    pub fn play_with(&mut self, stream: u32, name: &str, start: f64, options: Option<Value>) {
        self.command(
            stream,
            Command::Play(Play {
                transaction_id: 0.0,
                name: name.to_owned(),
                start,
                duration: -1.0,
                reset: true,
                options,
            }),
        );
    }

    /// Sends `closeStream` on `stream`.
    pub fn close_stream(&mut self, stream: u32) {
        self.command(
            stream,
            Command::CloseStream {
                transaction_id: 0.0,
            },
        );
    }

    /// Sends `FCUnpublish name`.
    pub fn fc_unpublish(&mut self, name: &str) {
        self.command(
            0,
            Command::FcUnpublish {
                transaction_id: 0.0,
                name: name.to_owned(),
            },
        );
    }

    // ---- media ----------------------------------------------------------

    /// Sends a video message (an FLV video tag body).
    pub fn send_video(&mut self, stream: u32, timestamp: u32, payload: Bytes) {
        let message = Message::Video(payload);
        self.send(
            &message,
            csid::VIDEO,
            MediaTime::from_millis(timestamp),
            stream,
        );
    }

    /// Sends an audio message (an FLV audio tag body).
    pub fn send_audio(&mut self, stream: u32, timestamp: u32, payload: Bytes) {
        let message = Message::Audio(payload);
        self.send(
            &message,
            csid::AUDIO,
            MediaTime::from_millis(timestamp),
            stream,
        );
    }

    /// Sends a plain AMF0 data message `handler values...` (forwarded to
    /// current players as is). Returns the body players receive.
    pub fn send_data(
        &mut self,
        stream: u32,
        timestamp: u32,
        handler: &str,
        values: &[Value],
    ) -> Bytes {
        self.send_data_body(
            stream,
            timestamp,
            handler,
            values,
            |handler, values, body| Data::Other {
                handler,
                values,
                body,
            },
        )
    }

    /// Sends `@setDataFrame handler values...`: a data keyframe. Returns the
    /// body players receive (`handler values...`).
    pub fn set_data_frame(
        &mut self,
        stream: u32,
        timestamp: u32,
        handler: &str,
        values: &[Value],
    ) -> Bytes {
        self.send_data_body(
            stream,
            timestamp,
            handler,
            values,
            |handler, values, body| Data::SetDataFrame {
                handler,
                values,
                body,
            },
        )
    }

    /// Sends a data message whose body is `handler values...`, shaped by
    /// `data`; returns that body.
    fn send_data_body(
        &mut self,
        stream: u32,
        timestamp: u32,
        handler: &str,
        values: &[Value],
        data: impl FnOnce(String, Vec<Value>, Bytes) -> Data,
    ) -> Bytes {
        let mut all = vec![Value::from(handler)];
        all.extend_from_slice(values);
        let body = amf_body(&all);
        let message = Message::Data {
            encoding: Encoding::Amf0,
            data: data(handler.to_owned(), values.to_vec(), body.clone()),
        };
        self.send(
            &message,
            csid::DATA,
            MediaTime::from_millis(timestamp),
            stream,
        );
        body
    }

    /// Sends `@clearDataFrame handler`.
    pub fn clear_data_frame(&mut self, stream: u32, timestamp: u32, handler: &str) {
        let message = Message::Data {
            encoding: Encoding::Amf0,
            data: Data::ClearDataFrame {
                handler: handler.to_owned(),
            },
        };
        self.send(
            &message,
            csid::DATA,
            MediaTime::from_millis(timestamp),
            stream,
        );
    }

    /// Sends an aggregate message (type 22) carrying `tags`.
    pub fn send_aggregate(&mut self, stream: u32, timestamp: u32, tags: &[AggregateTag]) {
        let message = Message::Aggregate(aggregate_payload(tags));
        self.send(
            &message,
            csid::AGGREGATE,
            MediaTime::from_millis(timestamp),
            stream,
        );
    }

    /// Encodes any message onto chunk stream `csid`.
    pub fn send(&mut self, message: &Message, csid: u32, timestamp: MediaTime, stream: u32) {
        let raw = message
            .to_raw(csid, timestamp, stream)
            .expect("a message built by the test encodes");
        self.send_raw(&raw);
    }

    /// Encodes a raw message as is (for messages the typed layer would not
    /// build, e.g. media on a stream the client does not publish).
    pub fn send_raw(&mut self, raw: &RawMessage) {
        if let Some(r) = &mut self.rtws {
            r.send(raw);
            let out = r.transmits();
            self.outbound.extend(out);
            return;
        }
        let mut out = Vec::new();
        self.encoder.write(raw, &mut out);
        self.queue(out);
    }

    // ---- connection state -----------------------------------------------

    /// Closes the client's socket: the server sees end of stream and
    /// nothing more is read.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Makes the client a dead peer: from now on it neither reads nor
    /// writes a byte, like a host that lost power.
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    /// Whether to answer ping requests (on by default).
    pub fn set_answer_pings(&mut self, on: bool) {
        self.answer_pings = on;
    }

    /// Stops keeping the payload of received audio/video messages longer
    /// than `limit` bytes (they are still counted and their headers kept),
    /// for long runs where only timing and identity matter.
    pub fn keep_payloads_up_to(&mut self, limit: usize) {
        self.keep_limit = limit;
    }

    /// True once the server closed the connection (and every byte it sent
    /// before has been read).
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// Whether the handshake with the server completed.
    pub fn handshake_complete(&self) -> bool {
        self.handshake.is_complete()
    }

    /// Bytes read from the server so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Protocol problems seen in what the server sent (handshake, chunk
    /// stream or message decoding). A correct server leaves this empty.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    // ---- inspection -----------------------------------------------------

    /// Every message received, in order.
    pub fn received(&self) -> &[Received] {
        &self.received
    }

    /// The messages received on message stream `stream`, in order.
    pub fn on_stream(&self, stream: u32) -> impl Iterator<Item = &Received> {
        self.received.iter().filter(move |r| r.stream_id == stream)
    }

    /// The `code` of every `onStatus` received on `stream`, in order.
    pub fn statuses(&self, stream: u32) -> Vec<String> {
        self.on_stream(stream)
            .filter_map(|r| match &r.message {
                Message::Command {
                    command: Command::OnStatus { info },
                    ..
                } => Some(member_str(info, "code").unwrap_or_default()),
                _ => None,
            })
            .collect()
    }

    /// Index in [`Self::received`] of the first `onStatus` on `stream` with
    /// `code`, to check what came before and after it.
    pub fn status_position(&self, stream: u32, code: &str) -> Option<usize> {
        self.position(|r| {
            r.stream_id == stream
                && matches!(&r.message, Message::Command {
                    command: Command::OnStatus { info }, ..
                } if member_str(info, "code").as_deref() == Some(code))
        })
    }

    /// The full info object of every `onStatus` on `stream`.
    pub fn status_infos(&self, stream: u32) -> Vec<Value> {
        self.on_stream(stream)
            .filter_map(|r| match &r.message {
                Message::Command {
                    command: Command::OnStatus { info },
                    ..
                } => Some(info.clone()),
                _ => None,
            })
            .collect()
    }

    /// The reply (`_result` or `_error`) to transaction `transaction_id`.
    pub fn reply(&self, transaction_id: f64) -> Option<Reply> {
        self.received.iter().find_map(|r| match &r.message {
            Message::Command {
                encoding,
                command:
                    Command::Result {
                        transaction_id: t,
                        command_object,
                        args,
                    },
            } if *t == transaction_id => Some(Reply {
                ok: true,
                encoding: *encoding,
                command_object: command_object.clone(),
                args: args.clone(),
            }),
            Message::Command {
                encoding,
                command:
                    Command::Error {
                        transaction_id: t,
                        command_object,
                        args,
                    },
            } if *t == transaction_id => Some(Reply {
                ok: false,
                encoding: *encoding,
                command_object: command_object.clone(),
                args: args.clone(),
            }),
            _ => None,
        })
    }

    /// Audio, video and data messages received on `stream`, in order,
    /// leaving out the `|RtmpSampleAccess` data message servers send on
    /// their own when play starts (it is not part of the stream; see
    /// [`Self::all_media`]).
    pub fn media(&self, stream: u32) -> Vec<Media> {
        self.all_media(stream)
            .into_iter()
            .filter(|m| m.handler.as_deref() != Some(SAMPLE_ACCESS))
            .collect()
    }

    /// Audio, video and data messages received on `stream`, in order,
    /// including those the server originates.
    pub fn all_media(&self, stream: u32) -> Vec<Media> {
        self.on_stream(stream)
            .filter_map(|r| {
                let (kind, payload, handler) = match &r.message {
                    Message::Audio(p) => (FrameKind::Audio, p.clone(), None),
                    Message::Video(p) => (FrameKind::Video, p.clone(), None),
                    Message::Data {
                        data: Data::Other { handler, body, .. },
                        ..
                    } => (FrameKind::Data, body.clone(), Some(handler.clone())),
                    Message::Data { data, .. } => (
                        FrameKind::Data,
                        Bytes::new(),
                        Some(data.handler().to_owned()),
                    ),
                    _ => return None,
                };
                Some(Media {
                    at: r.at,
                    kind,
                    timestamp: r.timestamp,
                    payload,
                    handler,
                })
            })
            .collect()
    }

    /// Index in [`Self::received`] of the first message matching `pred`.
    pub fn position(&self, pred: impl Fn(&Received) -> bool) -> Option<usize> {
        self.received.iter().position(pred)
    }

    /// User control events received, in order.
    pub fn user_controls(&self) -> Vec<UserControl> {
        self.received
            .iter()
            .filter_map(|r| match &r.message {
                Message::UserControl(uc) => Some(uc.clone()),
                _ => None,
            })
            .collect()
    }

    // ---- plumbing for the Sim -------------------------------------------

    fn transaction(&mut self) -> f64 {
        let t = self.next_transaction;
        self.next_transaction += 1.0;
        t
    }

    fn queue(&mut self, bufs: Vec<Bytes>) {
        if self.handshake.is_complete() {
            self.outbound.extend(bufs);
        } else {
            self.held.extend(bufs);
        }
    }

    /// Bytes for the server, handed over once (the [`super::Sim`] moves
    /// them in memory; the conformance and abuse suites write them to a
    /// socket).
    pub fn take_outbound(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.outbound)
    }

    /// Bytes from the server, read at (virtual or real) time `at` since the
    /// client started.
    pub fn handle_input(&mut self, at: Duration, mut data: &[u8]) {
        self.bytes_received += data.len() as u64;
        if !self.errors.is_empty() {
            return;
        }
        if let Some(r) = &mut self.rtws {
            let messages = r.receive(at, data, &mut self.errors);
            for raw in messages {
                self.handle_message(at, raw);
            }
            if let Some(r) = &mut self.rtws {
                let out = r.transmits();
                self.outbound.extend(out);
            }
            return;
        }
        if !self.handshake.is_complete() {
            let used = match self.handshake.handle_input(data) {
                Ok(used) => used,
                Err(e) => {
                    self.errors.push(format!("handshake: {e}"));
                    return;
                }
            };
            while let Some(b) = self.handshake.poll_transmit() {
                self.outbound.push(b);
            }
            if self.handshake.is_complete() {
                let held = std::mem::take(&mut self.held);
                self.outbound.extend(held);
            }
            data = &data[used..];
        }
        if data.is_empty() {
            return;
        }
        if let Err(e) = self.decoder.handle_input(data) {
            self.errors.push(format!("chunk: {e}"));
            return;
        }
        loop {
            match self.decoder.poll_message() {
                Ok(Some(raw)) => self.handle_message(at, raw),
                Ok(None) => break,
                Err(e) => {
                    self.errors.push(format!("chunk: {e}"));
                    return;
                }
            }
        }
        while let Some(sequence) = self.decoder.poll_acknowledgement() {
            let ack = Message::Acknowledgement { sequence };
            self.send(&ack, csid::CONTROL, MediaTime::ZERO, 0);
        }
    }

    fn handle_message(&mut self, at: Duration, raw: RawMessage) {
        let mut message = match Message::decode(&raw) {
            Ok(m) => m,
            Err(e) => {
                self.errors.push(format!(
                    "type {} message on stream {}: {e}",
                    raw.type_id, raw.stream_id
                ));
                return;
            }
        };
        if let Message::UserControl(UserControl::PingRequest(t)) = message {
            if self.answer_pings {
                let pong = Message::UserControl(UserControl::PingResponse(t));
                self.send(&pong, csid::CONTROL, MediaTime::ZERO, 0);
            }
        }
        if matches!(raw.type_id, type_id::AUDIO | type_id::VIDEO)
            && raw.payload.len() > self.keep_limit
        {
            // Keep the first bytes (the tag header and the test's tag) so
            // the frame can still be identified.
            let keep = raw.payload.len().min(16);
            let short = Bytes::copy_from_slice(&raw.payload[..keep]);
            message = if raw.type_id == type_id::AUDIO {
                Message::Audio(short)
            } else {
                Message::Video(short)
            };
        }
        self.received.push(Received {
            at,
            csid: raw.csid,
            stream_id: raw.stream_id,
            timestamp: raw.timestamp,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_core::handshake::ServerHandshake;

    /// Runs the client against a bare server handshake and chunk decoder,
    /// returning what the server decoded.
    fn server_sees(client: &mut SimClient) -> Vec<Message> {
        let now = Instant::now();
        let mut hs =
            ServerHandshake::new(now, HandshakeConfig::default(), &mut SeededEntropy::new(9));
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let mut seen = Vec::new();
        for _ in 0..4 {
            let bytes: Vec<u8> = client.take_outbound().concat();
            let used = hs.handle_input(&bytes).unwrap();
            dec.handle_input(&bytes[used..]).unwrap();
            while let Some(raw) = dec.poll_message().unwrap() {
                seen.push(Message::decode(&raw).unwrap());
            }
            while let Some(out) = hs.poll_transmit() {
                client.handle_input(Duration::ZERO, &out);
            }
        }
        seen
    }

    #[test]
    fn commands_queued_before_the_handshake_follow_c2() {
        let mut client = SimClient::new(Instant::now(), 1);
        client.connect("live");
        let seen = server_sees(&mut client);
        assert_eq!(seen[0], Message::SetChunkSize(CLIENT_CHUNK_SIZE));
        assert!(matches!(
            &seen[1],
            Message::Command { command: Command::Connect(c), encoding: Encoding::Amf0 }
                if c.app() == Some("live")
        ));
        assert!(client.handshake_complete());
        assert!(client.errors().is_empty());
    }

    #[test]
    fn amf3_connect_travels_as_a_type_17_command() {
        let mut client = SimClient::new(Instant::now(), 1);
        client.connect_amf3("live");
        let seen = server_sees(&mut client);
        assert!(matches!(
            &seen[1],
            Message::Command { command: Command::Connect(c), encoding: Encoding::Amf3 }
                if c.object_encoding() == 3.0
        ));
    }

    #[test]
    fn aggregate_payload_splits_back_into_its_tags() {
        let tags = [
            AggregateTag {
                type_id: type_id::VIDEO,
                timestamp: 5000,
                payload: Bytes::from_static(b"video"),
            },
            AggregateTag {
                type_id: type_id::AUDIO,
                timestamp: 5020,
                payload: Bytes::from_static(b"audio"),
            },
        ];
        let raw = RawMessage {
            csid: 7,
            timestamp: MediaTime::from_millis(100),
            type_id: type_id::AGGREGATE,
            stream_id: 1,
            payload: aggregate_payload(&tags),
        };
        let parts: Vec<_> = tincan_core::message::split_aggregate(&raw)
            .map(Result::unwrap)
            .map(|m| (m.type_id, m.timestamp.as_millis(), m.payload))
            .collect();
        assert_eq!(
            parts,
            vec![
                (type_id::VIDEO, 100, Bytes::from_static(b"video")),
                (type_id::AUDIO, 120, Bytes::from_static(b"audio")),
            ]
        );
    }
}
