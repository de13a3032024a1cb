//! TC over RTWebSocket flows (RFC 7425 section 5.1 semantics, as the
//! reference JavaScript client speaks them): the framing a [`Session`]
//! uses instead of the handshake and chunk stream when it was opened with
//! [`Session::new_rtws`].
//!
//! Only the framing differs: every message, in or out, goes through the
//! same dialogue as over RTMP. Inbound, each flow the client opens carries
//! TC metadata naming a message stream, and each message on it is one RTMP
//! message (type byte, 4-byte timestamp, payload). Outbound, replies and
//! statuses of stream 0 go on one control flow, and each NetStream gets a
//! data/status flow, an audio flow and a video flow; every flow of ours
//! answers (return association) the client's control flow, the only flow
//! of the reference client that takes flows. A player's media is moved
//! from the session's real-time backlog into the endpoint only a little
//! ahead of what the endpoint can send, with the backlog's finish-by
//! deadline as the message's expiry, so media the policy would drop is
//! abandoned by the endpoint instead of being sent late.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::backlog::Item;
use super::{Outgoing, Phase, Session, SessionError, Timer, Transmit};
use crate::chunk::RawMessage;
use crate::event::FrameKind;
use crate::message::type_id;
use crate::rtws::vlu::decode_vlu;
use crate::rtws::{Priority, RecvFlowId, RtwsConfig, RtwsEndpoint, RtwsEvent, SendFlowId};

/// The TC metadata signature ("TC").
const TC_SIGNATURE: [u8; 2] = *b"TC";
/// Metadata option flag: a stream ID follows (required).
const TC_FLAG_SID: u8 = 0x04;
/// The TC message header: type byte and 4-byte timestamp.
const TC_HEADER_LEN: usize = 5;
/// How many bytes of a player's media may wait in the endpoint's send
/// queues: enough to keep a link busy between polls, small enough that
/// nearly all waiting media stays in the backlog, where the real-time
/// policy (lifetimes, whole-GOP drops, byte budget) decides its fate.
const MEDIA_AHEAD_BYTES: usize = 64 * 1024;
/// Flow exception code for a refused flow (the references leave codes to
/// the application; the description says why).
const REFUSED: u64 = 1;

/// Which of a stream's flows a message goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    /// Commands, statuses and data messages (and, for stream 0, user
    /// control).
    Control,
    Audio,
    Video,
}

impl Lane {
    fn of(type_id: u8) -> Lane {
        match type_id {
            type_id::AUDIO => Lane::Audio,
            type_id::VIDEO => Lane::Video,
            _ => Lane::Control,
        }
    }

    /// Control and commands first, audio above video (the reference
    /// client's publish priorities, one step up for control so a status
    /// is never stuck behind audio).
    fn priority(self) -> Priority {
        match self {
            Lane::Control => Priority::FLASH,
            Lane::Audio => Priority::IMMEDIATE,
            Lane::Video => Priority::PRIORITY,
        }
    }
}

/// The RTWebSocket side of a session.
#[derive(Debug)]
pub(super) struct Flows {
    endpoint: RtwsEndpoint,
    /// The client's first stream-0 flow: the one ours answer.
    control_recv: Option<RecvFlowId>,
    /// The message stream each accepted receive flow carries.
    recv: BTreeMap<u64, u32>,
    /// Our flows, by message stream and lane. At most one control flow
    /// plus three per live stream: bounded by `max_streams`.
    send: BTreeMap<(u32, Lane), SendFlowId>,
    /// A closing session gave up flushing (peer gone or not reading).
    gave_up: bool,
}

impl Flows {
    pub(super) fn new(config: RtwsConfig) -> Self {
        Flows {
            endpoint: RtwsEndpoint::new(config),
            control_recv: None,
            recv: BTreeMap::new(),
            send: BTreeMap::new(),
            gave_up: false,
        }
    }

    /// Whether anything is still owed to the peer.
    pub(super) fn has_pending(&self) -> bool {
        !self.gave_up && self.endpoint.has_pending_transmit()
    }

    pub(super) fn give_up(&mut self) {
        self.gave_up = true;
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        if self.gave_up {
            return None;
        }
        self.endpoint.poll_timeout()
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
    }

    pub(super) fn ping(&mut self, stamp: u32) {
        self.endpoint.ping(&stamp.to_be_bytes());
    }

    pub(super) fn buffered_bytes(&self) -> usize {
        self.endpoint.buffered_bytes()
    }

    pub(super) fn expired(&self) -> (u64, u64) {
        self.endpoint.expired_messages()
    }

    /// Drops the queued media of `stream` (or of every stream): nobody
    /// wants it any more.
    pub(super) fn abandon_media(&mut self, stream: Option<u32>) {
        for (&(s, lane), &flow) in &self.send {
            if lane != Lane::Control && stream.map_or(true, |want| want == s) {
                // The flow exists (it is in the map); a refused one has
                // nothing queued.
                let _ = self.endpoint.abandon_queued(flow);
            }
        }
    }

    /// Bytes queued on our media flows (`media`) or control flows.
    fn queued(&self, media: bool) -> usize {
        self.send
            .iter()
            .filter(|((_, lane), _)| (*lane != Lane::Control) == media)
            .filter_map(|(_, &flow)| self.endpoint.queued_bytes(flow))
            .sum()
    }

    /// Queues one TC message on `stream`'s `lane` flow, opening it first if
    /// needed. Dropped (and logged) when the client's control flow is gone
    /// or the flow cannot take it: the peer is leaving or not reading, and
    /// the session's own bounds deal with that.
    fn send(&mut self, stream: u32, lane: Lane, message: Bytes, expiry: Option<Instant>) {
        let flow = match self.send.get(&(stream, lane)) {
            Some(&flow) => flow,
            None => {
                let Some(control) = self.control_recv else {
                    tracing::debug!(stream, "no client control flow to answer: message dropped");
                    return;
                };
                let mut metadata = Vec::with_capacity(8);
                encode_metadata(stream, &mut metadata);
                match self
                    .endpoint
                    .open_flow(metadata.into(), Some(control), lane.priority())
                {
                    Ok(flow) => {
                        self.send.insert((stream, lane), flow);
                        flow
                    }
                    Err(e) => {
                        tracing::debug!(%e, stream, "could not open a flow: message dropped");
                        return;
                    }
                }
            }
        };
        if let Err(e) = self.endpoint.send(flow, message, expiry) {
            tracing::debug!(%e, stream, "flow refused a message: dropped");
        }
    }

    /// Closes the flows of streams that no longer exist.
    fn close_stale(&mut self, live: impl Fn(u32) -> bool) {
        let stale: Vec<(u32, Lane)> = self
            .send
            .keys()
            .filter(|(s, _)| *s != 0 && !live(*s))
            .copied()
            .collect();
        for key in stale {
            if let Some(flow) = self.send.remove(&key) {
                let _ = self.endpoint.close_flow(flow);
            }
        }
    }

    fn forget_send(&mut self, flow: SendFlowId) {
        self.send.retain(|_, f| *f != flow);
    }
}

/// TC flow metadata (RFC 7425 section 5.1.1): "TC", options with the
/// stream ID flag, the stream ID as a VLU.
fn encode_metadata(stream: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&TC_SIGNATURE);
    out.push(TC_FLAG_SID);
    crate::rtws::vlu::encode_vlu(u64::from(stream), out);
}

/// The stream ID of TC flow metadata, or why it is not TC metadata.
fn decode_metadata(metadata: &[u8]) -> Result<u32, &'static str> {
    if metadata.len() < 4 || metadata[..2] != TC_SIGNATURE {
        return Err("not a TC flow");
    }
    if metadata[2] & TC_FLAG_SID == 0 {
        return Err("TC metadata without a stream ID");
    }
    let (stream, _) = decode_vlu(&metadata[3..]).map_err(|_| "malformed TC stream ID")?;
    u32::try_from(stream).map_err(|_| "TC stream ID out of range")
}

/// One TC message: header then `head` then `payload`, in one buffer (the
/// endpoint fragments it by slicing).
fn tc_message(type_id: u8, timestamp: u32, head: &[u8], payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(TC_HEADER_LEN + head.len() + payload.len());
    out.put_u8(type_id);
    out.put_u32(timestamp);
    out.extend_from_slice(head);
    out.extend_from_slice(payload);
    out.freeze()
}

/// RTMP messages that only make sense on a chunk stream: RTWebSocket has
/// its own flow control, fragmentation and pings.
fn chunk_stream_only(type_id: u8, payload: &[u8]) -> bool {
    match type_id {
        type_id::SET_CHUNK_SIZE
        | type_id::ABORT
        | type_id::ACKNOWLEDGEMENT
        | type_id::WINDOW_ACK_SIZE
        | type_id::SET_PEER_BANDWIDTH => true,
        // Ping request and response.
        type_id::USER_CONTROL => matches!(payload.get(..2), Some([0, 6] | [0, 7])),
        _ => false,
    }
}

impl Session {
    /// Whether this session speaks TC over RTWebSocket.
    pub(super) fn is_rtws(&self) -> bool {
        self.flows.is_some()
    }

    /// One WebSocket binary message from the peer (see
    /// [`Session::handle_input_bytes`]).
    pub(super) fn handle_rtws_input(
        &mut self,
        now: Instant,
        data: Bytes,
    ) -> Result<(), SessionError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if !data.is_empty() {
            self.last_input = now;
            if let Some(flows) = &mut self.flows {
                if let Err(e) = flows.endpoint.handle_input_bytes(now, data) {
                    self.fail(now, SessionError::Rtws(e));
                }
            }
        }
        if self.error.is_none() {
            self.drain_flow_events(now);
        }
        self.settle(now);
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Acts on what the endpoint reports, for at most one turn
    /// ([`super::MAX_MESSAGES_PER_TURN`] messages or
    /// [`super::MAX_PAYLOAD_PER_TURN`] bytes); the rest waits in the
    /// endpoint (within its buffer limit) for the next call.
    fn drain_flow_events(&mut self, now: Instant) {
        self.input_pending = false;
        let (mut messages, mut payload) = (0usize, 0usize);
        loop {
            if self.error.is_some() {
                return;
            }
            if messages >= super::MAX_MESSAGES_PER_TURN || payload >= super::MAX_PAYLOAD_PER_TURN {
                self.input_pending = true;
                return;
            }
            let Some(flows) = &mut self.flows else {
                return;
            };
            let Some(event) = flows.endpoint.poll_event() else {
                return;
            };
            match event {
                RtwsEvent::FlowOpened { flow, metadata, .. } => {
                    self.on_flow_opened(flow, &metadata)
                }
                RtwsEvent::Message { flow, data } => {
                    let Some(&stream) = flows.recv.get(&flow.0) else {
                        continue;
                    };
                    messages += 1;
                    payload = payload.saturating_add(data.len());
                    self.on_tc_message(now, stream, data);
                }
                RtwsEvent::FlowClosed { flow } => {
                    flows.recv.remove(&flow.0);
                    if flows.control_recv == Some(flow) {
                        // Our flows can no longer be opened; the client is
                        // leaving and closes the WebSocket.
                        tracing::debug!("the client closed its control flow");
                        flows.control_recv = None;
                    }
                }
                RtwsEvent::FlowException { flow, reason } => {
                    tracing::debug!(?reason, flow = flow.0, "the client refused a flow");
                    flows.forget_send(flow);
                }
                RtwsEvent::SendFlowFinished { flow } => flows.forget_send(flow),
                RtwsEvent::PingReply(_) => {}
            }
        }
    }

    /// A flow the client opened: TC metadata naming stream 0 or a stream
    /// it created, or it is refused with a flow exception saying why.
    fn on_flow_opened(&mut self, flow: RecvFlowId, metadata: &[u8]) {
        let streams = &self.streams;
        let Some(flows) = &mut self.flows else {
            return;
        };
        let refusal = match decode_metadata(metadata) {
            Err(why) => Some(why.to_owned()),
            Ok(0) => None,
            Ok(stream) if streams.contains_key(&stream) => None,
            Ok(stream) => Some(format!("unknown stream {stream}")),
        };
        if let Some(why) = refusal {
            tracing::debug!(flow = flow.0, why, "flow refused");
            // The flow exists: the endpoint just reported it.
            let _ = flows.endpoint.refuse_flow(flow, REFUSED, &why);
            return;
        }
        let stream = decode_metadata(metadata).unwrap_or(0);
        if stream == 0 && flows.control_recv.is_none() {
            flows.control_recv = Some(flow);
        }
        flows.recv.insert(flow.0, stream);
    }

    /// One TC message on `stream`: decoded as the RTMP message it is and
    /// given to the dialogue.
    fn on_tc_message(&mut self, now: Instant, stream: u32, data: Bytes) {
        if data.len() < TC_HEADER_LEN {
            self.fail(
                now,
                SessionError::Protocol("a TC message shorter than its header".into()),
            );
            return;
        }
        let type_id = data[0];
        let timestamp = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
        let payload = data.slice(TC_HEADER_LEN..);
        if chunk_stream_only(type_id, &payload) {
            tracing::trace!(type_id, "chunk-stream message over RTWebSocket ignored");
            return;
        }
        let raw = RawMessage {
            csid: 0,
            timestamp: crate::time::MediaTime::from_millis(timestamp),
            type_id,
            stream_id: stream,
            payload,
        };
        self.handle_message(now, raw);
    }

    /// The RTWebSocket output path of [`Session::poll_transmit_into`]:
    /// one WebSocket binary message per transmit.
    pub(super) fn poll_rtws_transmit(&mut self, now: Instant, t: &mut Transmit) -> bool {
        t.bufs.clear();
        let streams = &self.streams;
        let Some(flows) = &mut self.flows else {
            return false;
        };
        if flows.gave_up {
            return false;
        }
        flows.endpoint.handle_timeout(now);
        flows.close_stale(|s| streams.contains_key(&s));
        // Replies and statuses, in order, onto their flows.
        while let Some(out) = self.control.pop_front() {
            self.control_bytes = self.control_bytes.saturating_sub(out.len());
            if let Outgoing::Message(m) = out {
                if !chunk_stream_only(m.type_id, &m.payload) {
                    let message = tc_message(m.type_id, m.timestamp.as_millis(), &[], &m.payload);
                    flows.send(m.stream_id, Lane::of(m.type_id), message, None);
                }
            }
        }
        // A peer that takes no acks for what it asked for gets the same
        // bound as one that reads nothing.
        if self.error.is_none() && flows.queued(false) > super::MAX_CONTROL_BYTES {
            self.fail(
                now,
                SessionError::SlowPeer("replies to its commands piled up"),
            );
            return self.poll_rtws_transmit(now, t);
        }
        // Media, a little ahead of what the endpoint can send.
        while flows.queued(true) < MEDIA_AHEAD_BYTES {
            let Some(next) = self.backlog.pop(now) else {
                break;
            };
            let (type_id, timestamp, payload, finish_by) = match next.item {
                Item::Message(m) => (m.type_id, m.timestamp, m.payload, next.finish_by),
                Item::Frame(f) => {
                    self.frames_out += 1;
                    let type_id = match f.kind {
                        FrameKind::Audio => type_id::AUDIO,
                        FrameKind::Video => type_id::VIDEO,
                        FrameKind::Data => type_id::DATA_AMF0,
                    };
                    (type_id, f.timestamp, f.payload, next.finish_by)
                }
            };
            let message = tc_message(
                type_id,
                timestamp.as_millis(),
                next.head.as_slice(),
                &payload,
            );
            flows.send(next.stream, Lane::of(type_id), message, finish_by);
        }
        self.timers.set(Timer::Expire, self.backlog.next_expiry());
        let sent = match flows.endpoint.poll_transmit() {
            Some(message) => {
                t.bufs.push(message);
                true
            }
            None => false,
        };
        if !flows.has_pending() {
            self.timers.set(Timer::Linger, None);
        }
        sent
    }

    /// The peer is gone or the session gave up flushing: nothing more is
    /// owed over the flows.
    pub(super) fn rtws_give_up(&mut self) {
        if let Some(flows) = &mut self.flows {
            flows.give_up();
        }
    }

    /// Whether a closing session still owes the peer something over its
    /// flows.
    pub(super) fn rtws_pending(&self) -> bool {
        self.flows.as_ref().is_some_and(|f| f.has_pending())
    }

    /// The phase a new RTWebSocket session starts in: no handshake (the
    /// WebSocket had one), waiting for `connect`.
    pub(super) fn start_rtws(&mut self, now: Instant, config: RtwsConfig) {
        self.flows = Some(Box::new(Flows::new(config)));
        self.handshake = None;
        self.phase = Phase::AwaitConnect;
        self.timers.set(Timer::Handshake, None);
        self.timers
            .set(Timer::Connect, now.checked_add(self.config.connect_timeout));
    }
}
