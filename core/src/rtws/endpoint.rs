//! The RTWebSocket endpoint: flows, reassembly, acks, flow control,
//! priorities and expiry, as a sans-IO state machine.
//!
//! One [`RtwsEndpoint`] is one WebSocket connection. It has no role: both
//! ends open flows, send and receive. The run loop is the core's:
//!
//! 1. feed each received WebSocket binary message to
//!    [`RtwsEndpoint::handle_input`] (or [`RtwsEndpoint::handle_input_bytes`]),
//!    and call [`RtwsEndpoint::handle_timeout`] when the deadline from
//!    [`RtwsEndpoint::poll_timeout`] passes (early is harmless);
//! 2. drain [`RtwsEndpoint::poll_transmit`] (each item is one WebSocket
//!    binary message to send), then [`RtwsEndpoint::poll_event`];
//! 3. sleep until the next message or [`RtwsEndpoint::poll_timeout`].
//!
//! After the application sends or opens or closes a flow, drain
//! `poll_transmit` again. The endpoint knows the time only from
//! `handle_input` and `handle_timeout`: message expiry is judged against
//! the last `now` it was given.
//!
//! A peer's protocol violation is a sticky [`RtwsError`]: every later
//! `handle_input` returns it, nothing more is transmitted, and the
//! transport closes the WebSocket.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::message::{DecodeError, ExceptionReason, Message};
use super::vlu::vlu_len;

/// The smallest ack window a receiver honours, and its initial value
/// (`protocol`: "initial ack-window is 2800 bytes").
pub const MIN_ACK_WINDOW: u64 = 2800;
/// How long a receiver may hold an ack after user data (`protocol`: "not
/// more than 250ms after receiving any user data").
pub const ACK_DELAY: Duration = Duration::from_millis(250);
/// What a sender may send on a new flow before the receiver's first
/// advertisement (65536, as in both references).
pub const INITIAL_SEND_WINDOW: u64 = 65_536;
/// Ping replies queued and not yet transmitted beyond which further pings
/// go unanswered (a ping is best effort; the queue stays bounded).
const MAX_QUEUED_PING_REPLIES: usize = 16;

/// A flow's sending priority: 0 (lowest) to 7 (highest), as in RTMFP and
/// the references. Higher priorities send first; flows of one priority
/// take turns, one fragment each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// 0.
    pub const BACKGROUND: Priority = Priority(0);
    /// 1.
    pub const BULK: Priority = Priority(1);
    /// 2.
    pub const DATA: Priority = Priority(2);
    /// 3: the default.
    pub const ROUTINE: Priority = Priority(3);
    /// 4.
    pub const PRIORITY: Priority = Priority(4);
    /// 5.
    pub const IMMEDIATE: Priority = Priority(5);
    /// 6.
    pub const FLASH: Priority = Priority(6);
    /// 7.
    pub const FLASH_OVERRIDE: Priority = Priority(7);

    /// A priority, clamped to 0..=7.
    pub fn new(value: u8) -> Priority {
        Priority(value.min(7))
    }

    /// Its value, 0..=7.
    pub fn value(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::ROUTINE
    }
}

/// A flow this endpoint sends on (its ID in this endpoint's ID space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendFlowId(pub u64);

/// A flow the peer sends on (its ID in the peer's ID space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecvFlowId(pub u64);

/// Limits and tuning. Every limit bounds something the peer controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtwsConfig {
    /// Receive flows open at once (refused and closing ones included);
    /// one more is [`RtwsError::TooManyFlows`].
    pub max_recv_flows: usize,
    /// Longest message reassembled; longer is [`RtwsError::MessageTooLarge`].
    pub max_message_size: usize,
    /// Bytes held over all receive flows: messages being assembled plus
    /// complete messages not yet taken with `poll_event`. More is
    /// [`RtwsError::BufferedTooMuch`].
    pub max_buffered_bytes: usize,
    /// Longest flow metadata; longer is [`RtwsError::MetadataTooLarge`].
    pub max_metadata_len: usize,
    /// The buffer advertised on each new receive flow (the reference's
    /// default is 2097151). Change one flow's with
    /// [`RtwsEndpoint::set_recv_buffer`].
    pub recv_buffer: u64,
    /// Largest fragment payload sent (the references use 1400).
    pub chunk_size: usize,
    /// Bytes queued on one send flow (not yet sent); more is refused with
    /// [`SendError::BufferFull`].
    pub max_send_queue_bytes: usize,
    /// Send flows open at once; more is refused with
    /// [`SendError::TooManyFlows`].
    pub max_send_flows: usize,
    /// Data bytes sent and not yet acknowledged, over all flows, beyond
    /// which no more data fragments are sent (control messages still are).
    /// It keeps the transport's buffer short so that priorities and expiry
    /// still decide what goes next.
    pub max_bytes_in_flight: u64,
}

impl Default for RtwsConfig {
    fn default() -> Self {
        RtwsConfig {
            max_recv_flows: 256,
            max_message_size: 4 << 20,
            max_buffered_bytes: 16 << 20,
            max_metadata_len: 4096,
            recv_buffer: 2_097_151,
            chunk_size: 1400,
            max_send_queue_bytes: 8 << 20,
            max_send_flows: 256,
            max_bytes_in_flight: 1 << 20,
        }
    }
}

/// A peer's protocol violation or a broken limit. Sticky.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtwsError {
    /// A message did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message named a flow that does not exist (in the space its type
    /// refers to).
    #[error("message type {kind:#04x} names unknown flow {flow}")]
    UnknownFlow {
        /// The message type.
        kind: u8,
        /// The flow ID.
        flow: u64,
    },
    /// A flow open reused an ID still in use.
    #[error("flow ID {0} is already in use")]
    FlowIdInUse(u64),
    /// More receive flows than [`RtwsConfig::max_recv_flows`].
    #[error("more than {0} receive flows")]
    TooManyFlows(usize),
    /// A message longer than [`RtwsConfig::max_message_size`].
    #[error("a message on flow {flow} longer than {limit} bytes")]
    MessageTooLarge {
        /// The flow.
        flow: u64,
        /// The limit.
        limit: usize,
    },
    /// More than [`RtwsConfig::max_buffered_bytes`] held.
    #[error("more than {0} bytes buffered")]
    BufferedTooMuch(usize),
    /// Flow metadata longer than [`RtwsConfig::max_metadata_len`].
    #[error("flow metadata of {len} bytes, above the limit of {limit}")]
    MetadataTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A flow close ack for a flow whose close was never sent.
    #[error("flow close ack for flow {0}, which was not closed")]
    UnexpectedCloseAck(u64),
}

/// Why an application call was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// No such flow (never opened, or finished).
    #[error("no such flow")]
    UnknownFlow,
    /// The flow is closing or was refused by the peer.
    #[error("the flow is closed")]
    FlowClosed,
    /// The flow's queue would exceed [`RtwsConfig::max_send_queue_bytes`].
    #[error("the send queue is full")]
    BufferFull,
    /// [`RtwsConfig::max_send_flows`] send flows are open.
    #[error("too many send flows")]
    TooManyFlows,
    /// The endpoint failed.
    #[error("the endpoint failed: {0}")]
    Failed(RtwsError),
}

/// What happened, from [`RtwsEndpoint::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtwsEvent {
    /// The peer opened a flow. It is accepted; refuse it with
    /// [`RtwsEndpoint::refuse_flow`].
    FlowOpened {
        /// The flow.
        flow: RecvFlowId,
        /// Its metadata.
        metadata: Bytes,
        /// The send flow of ours it answers, if it has a return
        /// association.
        return_association: Option<SendFlowId>,
    },
    /// A whole message arrived on a flow, in order.
    Message {
        /// The flow.
        flow: RecvFlowId,
        /// The message.
        data: Bytes,
    },
    /// The peer closed its flow: no more messages on it (a message being
    /// assembled was dropped).
    FlowClosed {
        /// The flow.
        flow: RecvFlowId,
    },
    /// The peer refused or ended one of our send flows: its queued messages
    /// are abandoned and the flow closes.
    FlowException {
        /// The flow.
        flow: SendFlowId,
        /// The peer's reason, if given.
        reason: Option<ExceptionReason>,
    },
    /// The peer acknowledged the close of our send flow: it is gone.
    SendFlowFinished {
        /// The flow.
        flow: SendFlowId,
    },
    /// The answer to [`RtwsEndpoint::ping`].
    PingReply(Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    /// Accepted: messages are delivered.
    Open,
    /// Refused by us with a flow exception: data is counted and dropped.
    Refused,
    /// The peer closed it; the ack and close ack are owed, then it goes.
    Closing,
}

#[derive(Debug)]
struct RecvFlow {
    state: RecvState,
    /// Fragments of the message being assembled.
    partial: Option<BytesMut>,
    /// Bytes of user data messages, headers included, since the last ack.
    received_since_ack: u64,
    /// Half of the last advertisement: receiving this much asks for an ack
    /// at once.
    ack_thresh: u64,
    recv_buffer: u64,
    ack_queued: bool,
}

impl RecvFlow {
    fn advertisement(&self) -> u64 {
        match self.state {
            RecvState::Open => self.recv_buffer,
            RecvState::Refused | RecvState::Closing => 0,
        }
    }
}

#[derive(Debug)]
struct OutMessage {
    data: Bytes,
    /// How much of `data` went out.
    offset: usize,
    expiry: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendState {
    Open,
    /// No more messages: the close goes out once the queue is empty.
    Closing,
    /// The close went out; waiting for its ack.
    CloseSent,
}

#[derive(Debug)]
struct SendFlow {
    /// The flow open message, until it is sent.
    open: Option<Bytes>,
    priority: Priority,
    state: SendState,
    /// The peer sent a flow exception.
    excepted: bool,
    /// Messages not yet wholly sent; the head may be part-way.
    queue: VecDeque<OutMessage>,
    queued_bytes: usize,
    /// Messages abandoned and not yet reported to the peer.
    abandoned: u64,
    /// Bytes of data messages sent, headers included.
    sent: u64,
    /// The peer's acknowledged position and advertisement.
    acked: u64,
    send_through: u64,
    in_work: bool,
}

impl SendFlow {
    fn head_expiry(&self) -> Option<Instant> {
        self.queue.front().and_then(|m| m.expiry)
    }
}

/// One RTWebSocket connection's protocol state. See the module docs for
/// the run loop.
#[derive(Debug)]
pub struct RtwsEndpoint {
    config: RtwsConfig,
    error: Option<RtwsError>,
    now: Option<Instant>,

    recv_flows: BTreeMap<u64, RecvFlow>,
    /// Receive flows with an ack owed, in the order they asked.
    ack_flows: VecDeque<u64>,
    /// Acks are owed now (a rule of `protocol` said "immediately").
    ack_now: bool,
    /// When the owed acks are due anyway.
    ack_deadline: Option<Instant>,
    ack_window: u64,
    /// User data bytes since the last ack window crossing.
    recv_accumulator: u64,
    /// Messages assembled or waiting in `events`.
    buffered: usize,

    send_flows: BTreeMap<u64, SendFlow>,
    next_send_flow: u64,
    /// Send flows with something to send, per priority.
    work: [VecDeque<u64>; 8],
    bytes_in_flight: u64,

    control: VecDeque<Bytes>,
    ping_replies_queued: usize,
    events: VecDeque<RtwsEvent>,
    /// Messages abandoned because their expiry passed, and their bytes.
    expired: (u64, u64),
}

impl RtwsEndpoint {
    /// A new endpoint with `config`.
    pub fn new(config: RtwsConfig) -> Self {
        RtwsEndpoint {
            config,
            error: None,
            now: None,
            recv_flows: BTreeMap::new(),
            ack_flows: VecDeque::new(),
            ack_now: false,
            ack_deadline: None,
            ack_window: MIN_ACK_WINDOW,
            recv_accumulator: 0,
            buffered: 0,
            send_flows: BTreeMap::new(),
            next_send_flow: 0,
            work: Default::default(),
            bytes_in_flight: 0,
            control: VecDeque::new(),
            ping_replies_queued: 0,
            events: VecDeque::new(),
            expired: (0, 0),
        }
    }

    // ---- getters ----

    /// The sticky error, once the peer broke the protocol or a limit.
    pub fn error(&self) -> Option<&RtwsError> {
        self.error.as_ref()
    }

    /// The limits in force.
    pub fn config(&self) -> &RtwsConfig {
        &self.config
    }

    /// Receive flows held (open, refused or closing).
    pub fn recv_flow_count(&self) -> usize {
        self.recv_flows.len()
    }

    /// Send flows held (until their close is acknowledged).
    pub fn send_flow_count(&self) -> usize {
        self.send_flows.len()
    }

    /// Bytes held for the application: messages being assembled and
    /// complete messages not yet taken.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// The current ack window (the peer's last setting, at least 2800).
    pub fn ack_window(&self) -> u64 {
        self.ack_window
    }

    /// Bytes queued on a send flow and not yet sent.
    pub fn queued_bytes(&self, flow: SendFlowId) -> Option<usize> {
        self.send_flows.get(&flow.0).map(|f| f.queued_bytes)
    }

    /// How many more bytes (data messages, headers included) the peer's
    /// advertisement lets a send flow send now.
    pub fn send_window(&self, flow: SendFlowId) -> Option<u64> {
        self.send_flows
            .get(&flow.0)
            .map(|f| f.send_through.saturating_sub(f.sent))
    }

    /// Data bytes sent and not yet acknowledged, over all flows.
    pub fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// Messages abandoned because their expiry passed before they were
    /// wholly sent, and their bytes: what the sender's real-time policy
    /// gave up on, for statistics.
    pub fn expired_messages(&self) -> (u64, u64) {
        self.expired
    }

    /// Whether anything is owed to the peer: control messages, a flow
    /// open, queued messages, abandons or a close not yet handed to
    /// [`Self::poll_transmit`] (it may be waiting for the peer's window).
    /// A closing connection flushes until this is false.
    pub fn has_pending_transmit(&self) -> bool {
        self.error.is_none()
            && (!self.control.is_empty()
                || self.ack_now
                || self.send_flows.values().any(|f| {
                    f.open.is_some()
                        || !f.queue.is_empty()
                        || f.abandoned > 0
                        || f.state == SendState::Closing
                }))
    }

    // ---- inputs ----

    /// Handles one received WebSocket binary message (copied once; use
    /// [`Self::handle_input_bytes`] to hand over a `Bytes` without a copy).
    pub fn handle_input(&mut self, now: Instant, message: &[u8]) -> Result<(), RtwsError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        self.handle_input_bytes(now, Bytes::copy_from_slice(message))
    }

    /// Handles one received WebSocket binary message. Messages of no bytes
    /// and of unknown types are ignored, as the references do.
    pub fn handle_input_bytes(&mut self, now: Instant, message: Bytes) -> Result<(), RtwsError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        self.advance(now);
        let result = match Message::decode(&message) {
            Ok(decoded) => self.on_message(now, decoded, message.len()),
            Err(DecodeError::Empty | DecodeError::UnknownType(_)) => Ok(()),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = &result {
            tracing::debug!(%error, "rtws: protocol error");
            self.fail(error.clone());
        }
        result
    }

    /// Tells the endpoint that time has passed: owed acks fall due and
    /// expired messages are abandoned.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    fn advance(&mut self, now: Instant) {
        if self.now.map_or(true, |t| now > t) {
            self.now = Some(now);
        }
        let now = self.now.unwrap_or(now);
        if self.ack_deadline.is_some_and(|d| d <= now) {
            self.ack_now = true;
        }
        // A flow whose head message expired gets a turn, so the abandon goes
        // out even when the flow is stalled at the peer's window.
        let expired: Vec<u64> = self
            .send_flows
            .iter()
            .filter(|(_, f)| !f.in_work && f.head_expiry().is_some_and(|e| e <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.queue_work(id);
        }
    }

    fn fail(&mut self, error: RtwsError) {
        self.error = Some(error);
        self.control.clear();
        self.events.clear();
    }

    fn on_message(&mut self, now: Instant, message: Message, len: usize) -> Result<(), RtwsError> {
        let kind = message.kind();
        match message {
            Message::Ping(data) => {
                if self.ping_replies_queued < MAX_QUEUED_PING_REPLIES {
                    self.ping_replies_queued += 1;
                    self.control.push_back(Message::PingReply(data).encode());
                }
            }
            Message::PingReply(data) => self.events.push_back(RtwsEvent::PingReply(data)),
            Message::SetAckWindow(window) => {
                self.ack_window = window.max(MIN_ACK_WINDOW);
                self.recv_accumulator = 0;
            }
            Message::FlowOpen {
                flow,
                return_association,
                metadata,
            } => self.on_flow_open(flow, return_association, metadata)?,
            Message::Data {
                flow,
                more,
                fragment,
            } => self.on_data(now, kind, flow, more, fragment, len as u64)?,
            Message::Abandon { flow, .. } => {
                let f = self
                    .recv_flows
                    .get_mut(&flow)
                    .ok_or(RtwsError::UnknownFlow { kind, flow })?;
                if let Some(partial) = f.partial.take() {
                    self.buffered -= partial.len();
                }
                self.queue_ack(flow, true);
            }
            Message::FlowClose { flow } => {
                let f = self
                    .recv_flows
                    .get_mut(&flow)
                    .ok_or(RtwsError::UnknownFlow { kind, flow })?;
                if f.state == RecvState::Closing {
                    return Ok(());
                }
                if let Some(partial) = f.partial.take() {
                    self.buffered -= partial.len();
                }
                let was_open = f.state == RecvState::Open;
                f.state = RecvState::Closing;
                if was_open {
                    self.events.push_back(RtwsEvent::FlowClosed {
                        flow: RecvFlowId(flow),
                    });
                }
                self.queue_ack(flow, true);
            }
            Message::DataAck {
                flow,
                delta_bytes,
                buffer_advertisement,
            } => {
                let f = self
                    .send_flows
                    .get_mut(&flow)
                    .ok_or(RtwsError::UnknownFlow { kind, flow })?;
                // Never count more acknowledged than was sent: a lying peer
                // must not make the in-flight total wrap.
                let delta = delta_bytes.min(f.sent.saturating_sub(f.acked));
                f.acked += delta;
                f.send_through = f.acked.saturating_add(buffer_advertisement);
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(delta);
                self.queue_work(flow);
                // Every flow stalled on the in-flight limit may go again.
                let stalled: Vec<u64> = self
                    .send_flows
                    .iter()
                    .filter(|(_, f)| !f.in_work && !f.queue.is_empty())
                    .map(|(&id, _)| id)
                    .collect();
                for id in stalled {
                    self.queue_work(id);
                }
            }
            Message::FlowCloseAck { flow } => {
                let f = self
                    .send_flows
                    .get(&flow)
                    .ok_or(RtwsError::UnknownFlow { kind, flow })?;
                if f.state != SendState::CloseSent {
                    return Err(RtwsError::UnexpectedCloseAck(flow));
                }
                let f = self.send_flows.remove(&flow);
                if let Some(f) = f {
                    self.bytes_in_flight = self.bytes_in_flight.saturating_sub(f.sent - f.acked);
                }
                self.events.push_back(RtwsEvent::SendFlowFinished {
                    flow: SendFlowId(flow),
                });
            }
            Message::FlowException { flow, reason } => {
                let f = self
                    .send_flows
                    .get_mut(&flow)
                    .ok_or(RtwsError::UnknownFlow { kind, flow })?;
                if f.excepted || f.state == SendState::CloseSent {
                    return Ok(());
                }
                f.excepted = true;
                f.state = SendState::Closing;
                f.abandoned += f.queue.len() as u64;
                f.queue.clear();
                f.queued_bytes = 0;
                self.events.push_back(RtwsEvent::FlowException {
                    flow: SendFlowId(flow),
                    reason,
                });
                self.queue_work(flow);
            }
        }
        Ok(())
    }

    fn on_flow_open(
        &mut self,
        flow: u64,
        return_association: Option<u64>,
        metadata: Bytes,
    ) -> Result<(), RtwsError> {
        if metadata.len() > self.config.max_metadata_len {
            return Err(RtwsError::MetadataTooLarge {
                len: metadata.len(),
                limit: self.config.max_metadata_len,
            });
        }
        if self.recv_flows.contains_key(&flow) {
            return Err(RtwsError::FlowIdInUse(flow));
        }
        if self.recv_flows.len() >= self.config.max_recv_flows {
            return Err(RtwsError::TooManyFlows(self.config.max_recv_flows));
        }
        // `protocol`: reject if the return association is not open.
        let association_open = return_association.map_or(true, |assoc| {
            self.send_flows
                .get(&assoc)
                .is_some_and(|f| f.state == SendState::Open && !f.excepted)
        });
        let mut recv = RecvFlow {
            state: RecvState::Open,
            partial: None,
            received_since_ack: 0,
            ack_thresh: 0,
            recv_buffer: self.config.recv_buffer,
            ack_queued: false,
        };
        if association_open {
            self.events.push_back(RtwsEvent::FlowOpened {
                flow: RecvFlowId(flow),
                metadata,
                return_association: return_association.map(SendFlowId),
            });
        } else {
            recv.state = RecvState::Refused;
            self.control
                .push_back(exception(flow, 0, "return association not found"));
        }
        self.recv_flows.insert(flow, recv);
        // `protocol`: ack immediately on flow open.
        self.queue_ack(flow, true);
        Ok(())
    }

    fn on_data(
        &mut self,
        now: Instant,
        kind: u8,
        flow: u64,
        more: bool,
        fragment: Bytes,
        len: u64,
    ) -> Result<(), RtwsError> {
        let limit = self.config.max_message_size;
        let max_buffered = self.config.max_buffered_bytes;
        let f = match self.recv_flows.get_mut(&flow) {
            Some(f) if f.state != RecvState::Closing => f,
            // Data after the flow's close is data on a flow no longer in use.
            _ => return Err(RtwsError::UnknownFlow { kind, flow }),
        };
        f.received_since_ack = f.received_since_ack.saturating_add(len);
        let immediate = f.received_since_ack >= f.ack_thresh;
        if f.state == RecvState::Open {
            let held = f.partial.as_ref().map_or(0, BytesMut::len);
            if held + fragment.len() > limit {
                return Err(RtwsError::MessageTooLarge { flow, limit });
            }
            if self.buffered + fragment.len() > max_buffered {
                return Err(RtwsError::BufferedTooMuch(max_buffered));
            }
            self.buffered += fragment.len();
            let complete = match (f.partial.take(), more) {
                // A whole message in one fragment: no copy.
                (None, false) => Some(fragment),
                (None, true) => {
                    f.partial = Some(BytesMut::from(&fragment[..]));
                    None
                }
                (Some(mut partial), more) => {
                    partial.extend_from_slice(&fragment);
                    if more {
                        f.partial = Some(partial);
                        None
                    } else {
                        Some(partial.freeze())
                    }
                }
            };
            if let Some(data) = complete {
                self.events.push_back(RtwsEvent::Message {
                    flow: RecvFlowId(flow),
                    data,
                });
            }
        }
        // `protocol`: ack at once after N × ack window bytes of user data
        // since the last set ack window.
        self.recv_accumulator = self.recv_accumulator.saturating_add(len);
        if self.recv_accumulator >= self.ack_window {
            self.ack_now = true;
            self.recv_accumulator %= self.ack_window;
        }
        self.queue_ack(flow, immediate);
        if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + ACK_DELAY);
        }
        Ok(())
    }

    fn queue_ack(&mut self, flow: u64, immediate: bool) {
        if let Some(f) = self.recv_flows.get_mut(&flow) {
            if !f.ack_queued {
                f.ack_queued = true;
                self.ack_flows.push_back(flow);
            }
        }
        if immediate {
            self.ack_now = true;
        }
    }

    /// Writes every owed ack at once (`protocol`: "send all pending acks at
    /// once"), each followed by a flow close ack for a closing flow.
    fn flush_acks(&mut self) {
        self.ack_now = false;
        self.ack_deadline = None;
        while let Some(id) = self.ack_flows.pop_front() {
            let Some(f) = self.recv_flows.get_mut(&id) else {
                continue;
            };
            f.ack_queued = false;
            let advertisement = f.advertisement();
            f.ack_thresh = advertisement / 2;
            let ack = Message::DataAck {
                flow: id,
                delta_bytes: f.received_since_ack,
                buffer_advertisement: advertisement,
            };
            f.received_since_ack = 0;
            self.control.push_back(ack.encode());
            if f.state == RecvState::Closing {
                // `protocol`: on flow close, send ack, then flow close ack;
                // the ID is free from then on.
                self.control
                    .push_back(Message::FlowCloseAck { flow: id }.encode());
                self.recv_flows.remove(&id);
            }
        }
    }

    // ---- application calls ----

    /// Opens a send flow with `metadata`, answering the peer's flow
    /// `return_association` if given. The open goes out with the flow's
    /// first turn.
    pub fn open_flow(
        &mut self,
        metadata: Bytes,
        return_association: Option<RecvFlowId>,
        priority: Priority,
    ) -> Result<SendFlowId, SendError> {
        if let Some(error) = &self.error {
            return Err(SendError::Failed(error.clone()));
        }
        if self.send_flows.len() >= self.config.max_send_flows {
            return Err(SendError::TooManyFlows);
        }
        if let Some(assoc) = return_association {
            match self.recv_flows.get(&assoc.0) {
                None => return Err(SendError::UnknownFlow),
                Some(f) if f.state != RecvState::Open => return Err(SendError::FlowClosed),
                Some(_) => {}
            }
        }
        // IDs are never reused, so a stale `SendFlowId` can never name a
        // newer flow; 2^63 of them outlast any connection.
        let id = self.next_send_flow;
        self.next_send_flow += 1;
        let open = Message::FlowOpen {
            flow: id,
            return_association: return_association.map(|r| r.0),
            metadata,
        }
        .encode();
        self.send_flows.insert(
            id,
            SendFlow {
                open: Some(open),
                priority,
                state: SendState::Open,
                excepted: false,
                queue: VecDeque::new(),
                queued_bytes: 0,
                abandoned: 0,
                sent: 0,
                acked: 0,
                send_through: INITIAL_SEND_WINDOW,
                in_work: false,
            },
        );
        self.queue_work(id);
        Ok(SendFlowId(id))
    }

    /// Queues `message` on `flow`. If it is not wholly sent by `expiry`, it
    /// is abandoned, even part-way: the peer drops what it had of it.
    pub fn send(
        &mut self,
        flow: SendFlowId,
        message: Bytes,
        expiry: Option<Instant>,
    ) -> Result<(), SendError> {
        if let Some(error) = &self.error {
            return Err(SendError::Failed(error.clone()));
        }
        let f = self
            .send_flows
            .get_mut(&flow.0)
            .ok_or(SendError::UnknownFlow)?;
        if f.state != SendState::Open || f.excepted {
            return Err(SendError::FlowClosed);
        }
        if f.queued_bytes + message.len() > self.config.max_send_queue_bytes {
            return Err(SendError::BufferFull);
        }
        f.queued_bytes += message.len();
        f.queue.push_back(OutMessage {
            data: message,
            offset: 0,
            expiry,
        });
        self.queue_work(flow.0);
        Ok(())
    }

    /// Changes a send flow's priority.
    pub fn set_priority(&mut self, flow: SendFlowId, priority: Priority) -> Result<(), SendError> {
        let f = self
            .send_flows
            .get_mut(&flow.0)
            .ok_or(SendError::UnknownFlow)?;
        f.priority = priority;
        // Its place in the old priority's queue is skipped at its turn.
        f.in_work = false;
        self.queue_work(flow.0);
        Ok(())
    }

    /// Closes a send flow: what is queued is still sent, then the close.
    /// [`RtwsEvent::SendFlowFinished`] reports the peer's close ack.
    pub fn close_flow(&mut self, flow: SendFlowId) -> Result<(), SendError> {
        let f = self
            .send_flows
            .get_mut(&flow.0)
            .ok_or(SendError::UnknownFlow)?;
        if f.state == SendState::Open {
            f.state = SendState::Closing;
            self.queue_work(flow.0);
        }
        Ok(())
    }

    /// Abandons every message queued on a send flow, the one part-way sent
    /// included.
    pub fn abandon_queued(&mut self, flow: SendFlowId) -> Result<(), SendError> {
        let f = self
            .send_flows
            .get_mut(&flow.0)
            .ok_or(SendError::UnknownFlow)?;
        f.abandoned += f.queue.len() as u64;
        f.queue.clear();
        f.queued_bytes = 0;
        self.queue_work(flow.0);
        Ok(())
    }

    /// Refuses (or stops accepting) a receive flow: a flow exception with
    /// `code` and `description` goes to the peer, and its data is dropped
    /// from now on. The peer then closes the flow.
    pub fn refuse_flow(
        &mut self,
        flow: RecvFlowId,
        code: u64,
        description: &str,
    ) -> Result<(), SendError> {
        if let Some(error) = &self.error {
            return Err(SendError::Failed(error.clone()));
        }
        let f = self
            .recv_flows
            .get_mut(&flow.0)
            .ok_or(SendError::UnknownFlow)?;
        if f.state != RecvState::Open {
            return Ok(());
        }
        f.state = RecvState::Refused;
        if let Some(partial) = f.partial.take() {
            self.buffered -= partial.len();
        }
        self.control.push_back(exception(flow.0, code, description));
        Ok(())
    }

    /// Sets the buffer advertised on a receive flow; a change is advertised
    /// at once. 0 stops the sender (after what it already has in flight).
    pub fn set_recv_buffer(&mut self, flow: RecvFlowId, bytes: u64) -> Result<(), SendError> {
        let f = self
            .recv_flows
            .get_mut(&flow.0)
            .ok_or(SendError::UnknownFlow)?;
        if f.recv_buffer != bytes {
            f.recv_buffer = bytes;
            self.queue_ack(flow.0, true);
        }
        Ok(())
    }

    /// Asks the peer to echo `data` ([`RtwsEvent::PingReply`]).
    pub fn ping(&mut self, data: &[u8]) {
        if self.error.is_none() {
            self.control
                .push_back(Message::Ping(Bytes::copy_from_slice(data)).encode());
        }
    }

    // ---- outputs ----

    /// The next WebSocket binary message to send. Owed acks and other
    /// control messages go first, then flow work by priority.
    #[must_use = "a message to send must be sent"]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.error.is_some() {
            return None;
        }
        if self.ack_now {
            self.flush_acks();
        }
        if let Some(message) = self.control.pop_front() {
            if message.first() == Some(&super::message::MSG_PING_REPLY) {
                self.ping_replies_queued = self.ping_replies_queued.saturating_sub(1);
            }
            return Some(message);
        }
        for priority in (0..8).rev() {
            while let Some(id) = self.work[priority].pop_front() {
                let Some(f) = self.send_flows.get_mut(&id) else {
                    continue;
                };
                if usize::from(f.priority.0) != priority || !f.in_work {
                    continue;
                }
                f.in_work = false;
                if let Some(message) = self.flow_transmit(id) {
                    // Still has work, maybe: back of its priority's line.
                    self.queue_work(id);
                    return Some(message);
                }
            }
        }
        None
    }

    /// One turn of a send flow, as the references take it: the open, then
    /// owed abandons, then the close once drained, then one fragment.
    fn flow_transmit(&mut self, id: u64) -> Option<Bytes> {
        let now = self.now;
        let chunk_size = self.config.chunk_size.max(1);
        let room = self
            .config
            .max_bytes_in_flight
            .saturating_sub(self.bytes_in_flight);
        let f = self.send_flows.get_mut(&id)?;
        if let Some(open) = f.open.take() {
            return Some(open);
        }
        // Abandon expired messages at the head: the one part-way sent and
        // those not started, in order, as one count.
        while let Some(head) = f.queue.front() {
            if head.expiry.is_some_and(|e| now.is_some_and(|now| e <= now)) {
                self.expired.0 += 1;
                self.expired.1 += head.data.len() as u64;
                f.queued_bytes -= head.data.len();
                f.queue.pop_front();
                f.abandoned += 1;
            } else {
                break;
            }
        }
        if f.abandoned > 0 {
            let count = std::mem::take(&mut f.abandoned);
            return Some(Message::Abandon { flow: id, count }.encode());
        }
        if f.queue.is_empty() {
            if f.state == SendState::Closing {
                f.state = SendState::CloseSent;
                return Some(Message::FlowClose { flow: id }.encode());
            }
            return None;
        }
        let window = f.send_through.saturating_sub(f.sent);
        if window == 0 || room == 0 {
            return None;
        }
        let head = f.queue.front_mut()?;
        let remaining = head.data.len() - head.offset;
        let take = remaining
            .min(chunk_size)
            .min(usize::try_from(window).unwrap_or(usize::MAX));
        let end = head.offset + take;
        let more = end < head.data.len();
        let mut out = Vec::with_capacity(1 + vlu_len(id) + take);
        Message::Data {
            flow: id,
            more,
            fragment: head.data.slice(head.offset..end),
        }
        .encode_into(&mut out);
        head.offset = end;
        if !more {
            f.queued_bytes -= head.data.len();
            f.queue.pop_front();
        }
        let len = out.len() as u64;
        f.sent += len;
        self.bytes_in_flight += len;
        Some(Bytes::from(out))
    }

    fn queue_work(&mut self, id: u64) {
        if let Some(f) = self.send_flows.get_mut(&id) {
            if !f.in_work {
                f.in_work = true;
                self.work[usize::from(f.priority.0)].push_back(id);
            }
        }
    }

    /// The next thing that happened.
    #[must_use = "an event must be handled"]
    pub fn poll_event(&mut self) -> Option<RtwsEvent> {
        let event = self.events.pop_front()?;
        if let RtwsEvent::Message { data, .. } = &event {
            self.buffered -= data.len();
        }
        Some(event)
    }

    /// When [`Self::handle_timeout`] is next due: the owed acks' deadline or
    /// the expiry of a message at the head of a send flow.
    #[must_use = "the deadline must be waited for"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        let expiry = self
            .send_flows
            .values()
            .filter_map(SendFlow::head_expiry)
            // One already due waits for its flow's turn, not for a timer.
            .filter(|&e| self.now.map_or(true, |now| e > now))
            .min();
        // Acks already due wait for the next transmit, not for a timer: a
        // deadline in the past would wake the caller again and again.
        let ack = self.ack_deadline.filter(|_| !self.ack_now);
        match (ack, expiry) {
            (Some(a), Some(e)) => Some(a.min(e)),
            (a, e) => a.or(e),
        }
    }
}

/// A flow exception with a code and description.
fn exception(flow: u64, code: u64, description: &str) -> Bytes {
    Message::FlowException {
        flow,
        reason: Some(ExceptionReason {
            code,
            description: description.to_owned(),
        }),
    }
    .encode()
}
