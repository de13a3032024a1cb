//! Outbound connections: the server dialing another RTMP server, as a
//! relay does (push a local stream out, pull a remote one in).
//!
//! [`crate::server::Server::connect`] opens one. The connection is an
//! ordinary slot of the server: it has a [`SessionId`], timers, statistics
//! and events, and every runtime drives its socket exactly like an
//! accepted one, once it has dialed the target ([`Dial`]) and said so with
//! [`crate::server::Server::handle_dialed`]. Inside, a
//! [`ClientSession`] speaks RTMP, and the connection's [`Link`] ties it to
//! a local stream:
//!
//! - [`Link::Push`]: the connection plays the local stream (the broker
//!   sees a player, with fast start) and publishes every frame to the
//!   remote server, through the client's bounded queue and the same
//!   real-time policy as a player: a slow destination drops frames, it
//!   never slows the source.
//! - [`Link::Pull`]: the connection plays the remote stream and publishes
//!   it locally (the broker sees a publisher, at the given priority).
//! - [`Link::None`]: RTMP only; the embedder watches its reports.
//!
//! The embedder hears what the remote server said as
//! [`crate::server::ServerEvent::Outbound`] reports.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::amf::amf0;
use crate::client::{ClientConfig, ClientEvent, ClientSession, MediaKind};
use crate::entropy::Entropy;
use crate::event::{
    BrokerEvent, ConnectInfo, Frame, FrameKind, PlayRequest, SessionEvent, SessionId,
};
use crate::media::{parse_audio, parse_video};
use crate::message::PublishKind;
use crate::session::{SessionError, Transmit};
use crate::time::MediaTime;

/// The one message stream id an outbound connection uses in the broker.
const LINK_STREAM: u32 = 1;

/// The most media payload a pull holds while its local publish awaits
/// the broker's answer: a few seconds of a high-bitrate GOP.
const EARLY_MAX_BYTES: usize = 8 << 20;

/// How an outbound connection is tied to a local stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Link {
    /// RTMP only: nothing local is read or fed.
    None,
    /// Play local stream `name` of App `app` and publish it to the remote
    /// server (the client's [`ClientConfig::role`] must be publish).
    Push {
        /// The local App.
        app: String,
        /// The local stream name (a `?query` is split off as for players).
        name: String,
    },
    /// Play the remote stream and publish it locally as `name` of App
    /// `app` at `priority` (the client's role must be play).
    Pull {
        /// The local App.
        app: String,
        /// The local stream name.
        name: String,
        /// The publish priority: a higher one takes over a live name.
        priority: u32,
    },
}

/// What [`crate::server::Server::connect`] needs.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Where to dial, `host:port`; the runtime resolves and connects.
    pub target: String,
    /// The RTMP client's settings (URL parts, role, tokens, timers).
    pub client: ClientConfig,
    /// What it does with a local stream.
    pub link: Link,
    /// RTMPS: `Some(server name)` makes the runtime run TLS over the
    /// socket before RTMP and verify the server's certificate for that
    /// name (a relay to `rtmps://`). A runtime that cannot dial TLS fails
    /// the dial, so a relay meant to be encrypted never goes out in the
    /// clear.
    pub tls: Option<String>,
}

/// A connection the runtime must dial, from
/// [`crate::server::Server::poll_dial`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// The connection.
    pub id: SessionId,
    /// `host:port` to connect to.
    pub target: String,
    /// Run TLS for this server name first ([`OutboundConfig::tls`]).
    pub tls: Option<String>,
}

/// An outbound connection as the server keeps it.
#[derive(Debug)]
pub(crate) struct Outbound {
    client: ClientSession,
    link: Link,
    /// The runtime connected the socket: transmits may be handed out.
    pub(crate) dialed: bool,
    /// Events for the broker.
    events: VecDeque<SessionEvent>,
    /// What the remote server said, for the embedder.
    reports: VecDeque<ClientEvent>,
    /// Pull: the local publish was asked of the broker.
    requested: bool,
    /// Pull: the broker accepted the local publish.
    linked: bool,
    /// Pull: media that arrived between the request and the broker's
    /// answer. The origin sends its fast start (sequence headers, the GOP)
    /// right behind `NetStream.Play.Start`, often in the same read, and the
    /// answer may wait for the embedder (approvals): these frames are
    /// handed to the broker once it accepts, in order, so the sequence
    /// headers are never lost. Bounded by [`EARLY_MAX_BYTES`]: past it,
    /// media is dropped and only configuration and data are kept, up to
    /// twice that.
    early: VecDeque<SessionEvent>,
    early_bytes: usize,
    closed_sent: bool,
    error: Option<SessionError>,
}

impl Outbound {
    pub(crate) fn new(
        now: Instant,
        id: SessionId,
        config: OutboundConfig,
        entropy: &mut dyn Entropy,
    ) -> Self {
        let mut events = VecDeque::new();
        let app = match &config.link {
            Link::Push { app, .. } | Link::Pull { app, .. } => Some(app.clone()),
            Link::None => None,
        };
        if let Some(app) = app {
            events.push_back(SessionEvent::Connected(Box::new(ConnectInfo {
                app,
                connection_id: format!("relay-{id}"),
                tc_url: Some(config.client.tc_url.clone()),
                ..ConnectInfo::default()
            })));
        }
        Outbound {
            client: ClientSession::new(now, config.client, entropy),
            link: config.link,
            dialed: false,
            events,
            reports: VecDeque::new(),
            requested: false,
            linked: false,
            early: VecDeque::new(),
            early_bytes: 0,
            closed_sent: false,
            error: None,
        }
    }

    /// The App of the local side, if linked to one.
    pub(crate) fn app(&self) -> Option<&str> {
        match &self.link {
            Link::Push { app, .. } | Link::Pull { app, .. } => Some(app),
            Link::None => None,
        }
    }

    pub(crate) fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionError> {
        let result = self.client.handle_input(now, data);
        self.pump(now);
        result.map_err(|e| SessionError::Outbound(e.to_string()))
    }

    pub(crate) fn handle_eof(&mut self, now: Instant) {
        self.client.handle_eof(now);
        self.pump(now);
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
        self.pump(now);
    }

    pub(crate) fn close(&mut self, now: Instant, reason: &str) {
        self.client.close(reason);
        self.pump(now);
    }

    /// The runtime could not connect: the connection ends.
    pub(crate) fn dial_failed(&mut self, now: Instant, why: &str) {
        self.error = Some(SessionError::Outbound(format!("dial failed: {why}")));
        self.client.close(why);
        self.pump(now);
    }

    pub(crate) fn poll_transmit_into(&mut self, now: Instant, t: &mut Transmit) -> bool {
        if !self.dialed {
            return false;
        }
        let filled = self.client.poll_transmit_into(now, t);
        self.pump(now);
        filled
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed() && self.closed_sent
    }

    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    pub(crate) fn poll_event(&mut self) -> Option<SessionEvent> {
        let event = self.events.pop_front()?;
        if event == SessionEvent::Closed {
            self.closed_sent = true;
        }
        Some(event)
    }

    pub(crate) fn poll_report(&mut self) -> Option<ClientEvent> {
        self.reports.pop_front()
    }

    pub(crate) fn error(&self) -> Option<SessionError> {
        self.error.clone().or_else(|| {
            self.client
                .error()
                .map(|e| SessionError::Outbound(e.to_string()))
        })
    }

    pub(crate) fn dropped(&self) -> (u64, u64) {
        (self.client.dropped_frames(), self.client.dropped_bytes())
    }

    /// The broker's word on the local side of the link.
    pub(crate) fn handle_broker_event(&mut self, now: Instant, event: BrokerEvent) {
        match event {
            BrokerEvent::Frame { frame, .. } => {
                // Push: a frame of the local stream, to the remote server
                // under the client's real-time policy. An error means the
                // client is over, which the reports already say.
                let _ = self.client.send_frame(now, frame);
            }
            BrokerEvent::PublishAccepted { .. } if self.requested => {
                self.linked = true;
                self.early_bytes = 0;
                self.events.extend(self.early.drain(..));
            }
            BrokerEvent::PlayRejected { reason, .. } => {
                self.client
                    .close(&format!("local stream refused: {reason}"));
            }
            BrokerEvent::PublishRejected { reason, .. } => {
                self.requested = false;
                self.early.clear();
                self.client
                    .close(&format!("local publish refused: {reason}"));
            }
            BrokerEvent::PublishEvicted { .. } => {
                self.requested = false;
                self.linked = false;
                self.client.close("local publish taken over");
            }
            _ => {}
        }
        self.pump(now);
    }

    /// Moves what the client reported into broker events and reports.
    fn pump(&mut self, now: Instant) {
        let _ = now;
        while let Some(event) = self.client.poll_event() {
            match event {
                ClientEvent::Publishing => {
                    if let Link::Push { name, .. } = &self.link {
                        let (name, query) = crate::session::split_query(name);
                        self.events.push_back(SessionEvent::Play {
                            stream: LINK_STREAM,
                            request: PlayRequest {
                                seq: 1,
                                name,
                                query,
                            },
                        });
                    }
                    self.reports.push_back(ClientEvent::Publishing);
                }
                ClientEvent::Playing => {
                    if let Link::Pull { name, priority, .. } = &self.link {
                        let (name, query) = crate::session::split_query(name);
                        self.events.push_back(SessionEvent::Publish {
                            stream: LINK_STREAM,
                            seq: 1,
                            name,
                            query,
                            kind: PublishKind::Live,
                            priority: *priority,
                        });
                        self.requested = true;
                    }
                    self.reports.push_back(ClientEvent::Playing);
                }
                ClientEvent::Media {
                    kind,
                    timestamp,
                    payload,
                } => self.pulled(kind, timestamp, payload),
                ClientEvent::Data { timestamp, body } => self.pulled_data(timestamp, body),
                other => self.reports.push_back(other),
            }
        }
        if self.client.is_closed()
            && !self.closed_sent
            && !self.events.contains(&SessionEvent::Closed)
        {
            self.events.push_back(SessionEvent::Closed);
        }
    }

    /// Pull: remote media, published locally as an encoder's would be.
    fn pulled(&mut self, kind: MediaKind, timestamp: MediaTime, payload: Bytes) {
        if !self.requested || !matches!(self.link, Link::Pull { .. }) || payload.is_empty() {
            return;
        }
        let (kind, keyframe, config) = match kind {
            MediaKind::Video => {
                let (k, c) = parse_video(&payload)
                    .map_or((false, false), |t| (t.is_keyframe(), t.is_config()));
                (FrameKind::Video, k, c)
            }
            MediaKind::Audio => {
                let c = parse_audio(&payload).is_ok_and(|t| t.is_config());
                (FrameKind::Audio, false, c)
            }
        };
        self.feed(SessionEvent::Frame {
            stream: LINK_STREAM,
            frame: Frame {
                kind,
                timestamp,
                payload,
                keyframe,
                config,
            },
        });
    }

    /// Pull: a frame for the broker now, or held until it accepts the
    /// local publish.
    fn feed(&mut self, event: SessionEvent) {
        if self.linked {
            self.events.push_back(event);
            return;
        }
        let (len, keep) = match &event {
            SessionEvent::Frame { frame, .. } => (
                frame.payload.len(),
                frame.config || frame.kind == FrameKind::Data,
            ),
            _ => (0, true),
        };
        let bound = if keep {
            2 * EARLY_MAX_BYTES
        } else {
            EARLY_MAX_BYTES
        };
        if self.early_bytes + len <= bound {
            self.early_bytes += len;
            self.early.push_back(event);
        }
    }

    /// Pull: remote data; `onMetaData` becomes the local data keyframe.
    fn pulled_data(&mut self, timestamp: MediaTime, body: Bytes) {
        if !self.requested || !matches!(self.link, Link::Pull { .. }) {
            return;
        }
        let handler = amf0::decode_all(&body)
            .ok()
            .and_then(|v| v.first().and_then(|h| h.as_str().map(str::to_owned)));
        let frame = Frame {
            kind: FrameKind::Data,
            timestamp,
            payload: body,
            keyframe: false,
            config: false,
        };
        let event = match handler {
            Some(handler) if handler == "onMetaData" => SessionEvent::SetDataFrame {
                stream: LINK_STREAM,
                handler,
                frame,
            },
            _ => SessionEvent::Frame {
                stream: LINK_STREAM,
                frame,
            },
        };
        self.feed(event);
    }
}
