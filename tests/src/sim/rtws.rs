//! The RTWebSocket side of a [`super::SimClient`] made with
//! [`super::SimClient::new_rtws`]: TC over flows, the way the reference
//! JavaScript client (`tcconn.js`) speaks it, on the core's own
//! [`RtwsEndpoint`].
//!
//! The client opens its control flow (TC metadata for stream 0, priority
//! IMMEDIATE) and sends `connect` on it; it takes the flows the server
//! opens only as return flows of that control flow (as `tcconn.js` does,
//! whose other flows take none); it sends a stream's commands, data, audio
//! and video on flows it opens as return flows of the server's control
//! flow. Each RTMP message is the type byte, the 4-byte timestamp and the
//! payload.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tincan_core::chunk::RawMessage;
use tincan_core::message::type_id;
use tincan_core::rtws::message::MSG_DATA_ACK;
use tincan_core::rtws::vlu::{decode_vlu, encode_vlu};
use tincan_core::rtws::{
    Priority, RecvFlowId, RtwsConfig, RtwsEndpoint, RtwsEvent, SendFlowId, ACK_DELAY,
};
use tincan_core::time::MediaTime;

/// TC flow metadata (RFC 7425 section 5.1.1) for `stream`.
pub fn tc_metadata(stream: u32) -> Bytes {
    let mut out = vec![b'T', b'C', 0x04];
    encode_vlu(u64::from(stream), &mut out);
    out.into()
}

/// The stream ID of TC flow metadata.
pub fn tc_metadata_stream(metadata: &[u8]) -> Option<u32> {
    if metadata.len() < 4 || &metadata[..2] != b"TC" || metadata[2] & 0x04 == 0 {
        return None;
    }
    decode_vlu(&metadata[3..])
        .ok()
        .and_then(|(s, _)| u32::try_from(s).ok())
}

/// One TC message: type, timestamp, payload.
pub fn tc_message(type_id: u8, timestamp: u32, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(type_id);
    b.put_u32(timestamp);
    b.put_slice(payload);
    b.freeze()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    Control,
    Audio,
    Video,
}

/// A TC-over-RTWebSocket client's flows.
#[derive(Debug)]
pub(super) struct RtwsSide {
    base: Instant,
    endpoint: RtwsEndpoint,
    control_send: SendFlowId,
    server_control: Option<RecvFlowId>,
    /// The stream of each flow the server opened.
    recv: HashMap<u64, u32>,
    send: HashMap<(u32, Lane), SendFlowId>,
    /// Bytes of WebSocket messages not wholly read yet, and the lengths of
    /// the messages they make up.
    pending: BytesMut,
    lengths: VecDeque<usize>,
    pub(super) withhold_acks: bool,
    /// Acks held back while withholding, sent when it stops (a stalled
    /// tab that resumes).
    held_acks: Vec<Bytes>,
    /// Flow exceptions the server sent: (our flow, reason).
    pub(super) refused: Vec<(u64, String)>,
    /// Flows the server opened without answering our control flow.
    pub(super) unanswered_flows: Vec<u64>,
}

impl RtwsSide {
    pub(super) fn new(base: Instant) -> Self {
        let mut endpoint = RtwsEndpoint::new(RtwsConfig::default());
        let control_send = endpoint
            .open_flow(tc_metadata(0), None, Priority::IMMEDIATE)
            .expect("a new endpoint opens a flow");
        RtwsSide {
            base,
            endpoint,
            control_send,
            server_control: None,
            recv: HashMap::new(),
            send: HashMap::new(),
            pending: BytesMut::new(),
            lengths: VecDeque::new(),
            withhold_acks: false,
            held_acks: Vec::new(),
            refused: Vec::new(),
            unanswered_flows: Vec::new(),
        }
    }

    /// Sends one RTMP message on the flow for its stream and kind.
    pub(super) fn send(&mut self, raw: &RawMessage) {
        let message = tc_message(raw.type_id, raw.timestamp.as_millis(), &raw.payload);
        let flow = if raw.stream_id == 0 {
            self.control_send
        } else {
            let lane = match raw.type_id {
                type_id::AUDIO => Lane::Audio,
                type_id::VIDEO => Lane::Video,
                _ => Lane::Control,
            };
            let priority = if lane == Lane::Video {
                Priority::PRIORITY
            } else {
                Priority::IMMEDIATE
            };
            match self.send.get(&(raw.stream_id, lane)) {
                Some(&f) => f,
                None => {
                    let f = self
                        .endpoint
                        .open_flow(tc_metadata(raw.stream_id), self.server_control, priority)
                        .expect("the client opens a stream flow");
                    self.send.insert((raw.stream_id, lane), f);
                    f
                }
            }
        };
        self.endpoint
            .send(flow, message, None)
            .expect("the client's flow takes the message");
    }

    /// Opens a flow with any metadata and sends `messages` on it (for
    /// tests of what the server refuses).
    pub(super) fn send_on_new_flow(&mut self, metadata: Bytes, messages: &[Bytes]) -> u64 {
        let flow = self
            .endpoint
            .open_flow(metadata, self.server_control, Priority::IMMEDIATE)
            .expect("the client opens a flow");
        for m in messages {
            self.endpoint
                .send(flow, m.clone(), None)
                .expect("the flow takes the message");
        }
        flow.0
    }

    /// The server will send a WebSocket message of `len` bytes.
    pub(super) fn expect_message(&mut self, len: usize) {
        self.lengths.push_back(len);
    }

    /// Bytes from the server: whole WebSocket messages are handled, and
    /// the RTMP messages they complete returned.
    pub(super) fn receive(
        &mut self,
        at: Duration,
        data: &[u8],
        errors: &mut Vec<String>,
    ) -> Vec<RawMessage> {
        self.pending.extend_from_slice(data);
        let now = self.base + at;
        while let Some(&len) = self.lengths.front() {
            if self.pending.len() < len {
                break;
            }
            self.lengths.pop_front();
            let message = self.pending.split_to(len).freeze();
            if let Err(e) = self.endpoint.handle_input_bytes(now, message) {
                errors.push(format!("rtws: {e}"));
            }
        }
        // Acks go out at once rather than after the reference's delay: the
        // simulation has no timer for the client.
        self.endpoint.handle_timeout(now + ACK_DELAY);
        let mut out = Vec::new();
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                RtwsEvent::FlowOpened {
                    flow,
                    metadata,
                    return_association,
                } => {
                    if return_association != Some(self.control_send) {
                        self.unanswered_flows.push(flow.0);
                    }
                    let Some(stream) = tc_metadata_stream(&metadata) else {
                        errors.push(format!("server flow {} without TC metadata", flow.0));
                        continue;
                    };
                    if stream == 0 && self.server_control.is_none() {
                        self.server_control = Some(flow);
                    }
                    self.recv.insert(flow.0, stream);
                }
                RtwsEvent::Message { flow, data } => {
                    let Some(&stream) = self.recv.get(&flow.0) else {
                        continue;
                    };
                    if data.len() < 5 {
                        errors.push(format!("a TC message of {} bytes", data.len()));
                        continue;
                    }
                    out.push(RawMessage {
                        csid: 0,
                        timestamp: MediaTime::from_millis(u32::from_be_bytes([
                            data[1], data[2], data[3], data[4],
                        ])),
                        type_id: data[0],
                        stream_id: stream,
                        payload: data.slice(5..),
                    });
                }
                RtwsEvent::FlowException { flow, reason } => {
                    self.refused
                        .push((flow.0, reason.map(|r| r.description).unwrap_or_default()));
                }
                RtwsEvent::FlowClosed { flow } => {
                    self.recv.remove(&flow.0);
                }
                RtwsEvent::SendFlowFinished { .. } | RtwsEvent::PingReply(_) => {}
            }
        }
        out
    }

    /// WebSocket messages to send to the server.
    pub(super) fn transmits(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(m) = self.endpoint.poll_transmit() {
            if self.withhold_acks && m.first() == Some(&MSG_DATA_ACK) {
                self.held_acks.push(m);
                continue;
            }
            out.push(m);
        }
        out
    }

    /// Stops withholding acks; returns those held, to send now.
    pub(super) fn release_acks(&mut self) -> Vec<Bytes> {
        self.withhold_acks = false;
        std::mem::take(&mut self.held_acks)
    }
}
