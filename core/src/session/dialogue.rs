//! The NetConnection / NetStream dialogue: what each message from the peer
//! and each event from the broker does to a [`Session`].
//!
//! Every command is answered at once, in order, or not at all (never a
//! reply the client does not wait for, never a wait for a reply the client
//! will not send), so clients that pipeline `releaseStream`, `FCPublish`
//! and `createStream` never stall. The decisions taken elsewhere are `publish` and `play`,
//! which the broker answers (after the server's embedder, if it decides),
//! and a held `connect`.

use crate::redact::redact;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{
    status_info, stream_csids, NetStream, Outgoing, PendingConnect, PendingPlay, Phase, PlayState,
    Session, SessionError, StreamState, Timer, MAX_HELD_BYTES, MAX_HELD_MESSAGES, MAX_STASH,
};
use crate::amf::{amf0, amf3};
use crate::chunk::RawMessage;
use crate::event::{
    BrokerEvent, ConnectInfo, DenialKind, Eviction, Frame, FrameKind, PlayRejection, PlayRequest,
    PublishRejection, SessionEvent,
};
use crate::media::{parse_audio, parse_video};
use crate::message::{
    split_aggregate, type_id, BandwidthLimit, Command, Connect, Data, Encoding, GenericCommand,
    Message, Play, PublishKind, UserControl, Value,
};
use crate::session::tracks::TrackFilter;
use crate::session::{EnhancedCaps, RealTimeConfig};
use crate::time::MediaTime;

/// Most messages acted on from one aggregate message; the rest are
/// dropped. FMS-style aggregates carry a fraction of a second of frames
/// (tens); an 8 MiB aggregate of 16-byte messages would be 500 000.
const MAX_AGGREGATE_MESSAGES: usize = 256;

/// Longest command name echoed back in an `_error` or logged.
const MAX_ECHOED_NAME: usize = 64;

impl Session {
    /// One complete message from the chunk layer.
    pub(super) fn handle_message(&mut self, now: Instant, raw: RawMessage) {
        if self.phase == Phase::ConnectPending {
            self.hold_until_connected(now, raw);
            return;
        }
        let limits = (self.config.max_amf_message_len, self.config.max_amf_depth);
        let msg = match Message::decode_with_amf_limits(&raw, limits.0, limits.1) {
            Ok(msg) => msg,
            // A publisher's odd metadata is not worth its connection.
            Err(e) if matches!(raw.type_id, type_id::DATA_AMF0 | type_id::DATA_AMF3) => {
                tracing::debug!(%e, stream = raw.stream_id, "undecodable data message dropped");
                return;
            }
            Err(e) => {
                self.fail(now, SessionError::Message(e));
                return;
            }
        };
        match msg {
            Message::UserControl(UserControl::PingRequest(stamp)) => {
                self.send_control(Message::UserControl(UserControl::PingResponse(stamp)));
            }
            Message::Command { encoding, command } => {
                self.handle_command(now, raw.stream_id, encoding, command);
            }
            Message::Data { data, .. } => {
                self.handle_data(now, raw.stream_id, raw.timestamp, data);
            }
            Message::Audio(payload) => {
                self.handle_media(now, raw.stream_id, raw.timestamp, FrameKind::Audio, payload);
            }
            Message::Video(payload) => {
                self.handle_media(now, raw.stream_id, raw.timestamp, FrameKind::Video, payload);
            }
            Message::Aggregate(_) => self.handle_aggregate(now, &raw),
            // Chunk size, abort and window are applied by the decoder;
            // acknowledgements, bandwidth, buffer lengths and unknown types
            // need nothing from a server.
            _ => tracing::trace!(type_id = raw.type_id, "control message"),
        }
    }

    /// Keeps a message that arrived while `connect` waits for its decision,
    /// to replay once approved; a client that sends more than a handful
    /// then is not a client that waits for a reply, and is closed.
    fn hold_until_connected(&mut self, now: Instant, raw: RawMessage) {
        if self.held_messages.len() >= MAX_HELD_MESSAGES
            || self.held_messages_bytes + raw.payload.len() > MAX_HELD_BYTES
        {
            self.fail(
                now,
                SessionError::Protocol("too much input while connect awaited its decision".into()),
            );
            return;
        }
        self.held_messages_bytes += raw.payload.len();
        self.held_messages.push_back(raw);
    }

    /// The last media time of `stream` if it is an accepted publish.
    fn publishing_mut(&mut self, stream: u32) -> Option<&mut Instant> {
        match self.streams.get_mut(&stream) {
            Some(NetStream {
                state: StreamState::Publishing { last_media, .. },
                ..
            }) => Some(last_media),
            _ => None,
        }
    }

    fn handle_media(
        &mut self,
        now: Instant,
        stream: u32,
        timestamp: MediaTime,
        kind: FrameKind,
        payload: Bytes,
    ) {
        if payload.is_empty() {
            // Nothing a player could decode, but it would cost a cache and
            // a backlog entry per player: a flood of these is all overhead.
            tracing::trace!(stream, "empty media message dropped");
            return;
        }
        let Some(last_media) = self.publishing_mut(stream) else {
            // A player (or a publisher not yet accepted) cannot inject media.
            tracing::trace!(
                stream,
                "media on a stream that is not an accepted publish dropped"
            );
            return;
        };
        *last_media = now;
        self.frames_in += 1;
        let (keyframe, config) = match kind {
            FrameKind::Video => {
                parse_video(&payload).map_or((false, false), |t| (t.is_keyframe(), t.is_config()))
            }
            FrameKind::Audio => {
                parse_audio(&payload).map_or((false, false), |t| (false, t.is_config()))
            }
            FrameKind::Data => (false, false),
        };
        self.events.push_back(SessionEvent::Frame {
            stream,
            frame: Frame {
                kind,
                timestamp,
                payload,
                keyframe,
                config,
            },
        });
    }

    /// Data from a publisher. Bodies are AMF0 whatever the message type:
    /// a type 15 body is AMF0 values (which may switch to AMF3 with the
    /// AVM+ marker) after a format byte the decoder already stripped, so
    /// subscribers get valid type 18 payloads without a re-encode.
    fn handle_data(&mut self, now: Instant, stream: u32, timestamp: MediaTime, data: Data) {
        let Some(last_media) = self.publishing_mut(stream) else {
            tracing::trace!(
                stream,
                "data on a stream that is not an accepted publish dropped"
            );
            return;
        };
        *last_media = now;
        self.frames_in += 1;
        let frame = |payload| Frame {
            kind: FrameKind::Data,
            timestamp,
            payload,
            keyframe: false,
            config: false,
        };
        let event = match data {
            Data::SetDataFrame { handler, body, .. } => SessionEvent::SetDataFrame {
                stream,
                handler,
                frame: frame(body),
            },
            Data::ClearDataFrame { handler } => SessionEvent::ClearDataFrame { stream, handler },
            Data::Other { body, .. } => SessionEvent::Frame {
                stream,
                frame: frame(body),
            },
        };
        self.events.push_back(event);
    }

    /// Splits an aggregate and treats each message in it like a direct one.
    fn handle_aggregate(&mut self, now: Instant, raw: &RawMessage) {
        if self.publishing_mut(raw.stream_id).is_none() {
            tracing::trace!(
                stream = raw.stream_id,
                "aggregate on a stream that is not an accepted publish dropped"
            );
            return;
        }
        // An aggregate is one message of a turn however many it holds:
        // bounded, so a tiny-message aggregate cannot undo the turn bound.
        for sub in split_aggregate(raw).take(MAX_AGGREGATE_MESSAGES) {
            match sub {
                Ok(msg) => self.handle_message(now, msg),
                Err(e) => {
                    tracing::debug!(%e, "malformed aggregate: forwarded the messages before the fault");
                    return;
                }
            }
            if self.error.is_some() {
                return;
            }
        }
    }

    fn handle_command(&mut self, now: Instant, stream: u32, encoding: Encoding, command: Command) {
        if self.phase == Phase::AwaitConnect {
            match command {
                Command::Connect(connect) => self.handle_connect(now, encoding, connect),
                Command::Result { .. } | Command::Error { .. } | Command::OnStatus { .. } => {}
                other => {
                    let name = echoed_name(other.name());
                    self.fail(
                        now,
                        SessionError::Protocol(format!("{name} before connect")),
                    );
                }
            }
            return;
        }
        tracing::trace!(stream, name = echoed_name(command.name()), "command");
        // Statuses follow the framing the client last used: Flash/AIR
        // connect with type 20, then switch to type 17 with objectEncoding 3.
        self.encoding = encoding;
        match command {
            Command::Connect(_) => {
                self.fail(now, SessionError::Protocol("a second connect".to_owned()));
            }
            Command::CreateStream { transaction_id } => {
                self.create_stream(stream, encoding, transaction_id);
            }
            Command::DeleteStream {
                stream_id,
                transaction_id,
            } => {
                // Every known client sends transaction id 0 and waits for
                // nothing; one that asks gets its `_result`, as from TC.
                self.reply(stream, encoding, transaction_id, vec![Value::Undefined]);
                if let Some(id) = stream_id_from(stream_id) {
                    self.stop_stream(id);
                    if self.streams.remove(&id).is_some() {
                        tracing::debug!(stream = id, "stream deleted");
                    }
                }
            }
            Command::CloseStream { .. } => self.stop_stream(stream),
            Command::ReleaseStream {
                transaction_id,
                name,
            } => {
                self.reply(stream, encoding, transaction_id, vec![Value::Undefined]);
                tracing::debug!(name = %redact(&name), "releaseStream");
                let (name, _) = split_query(&name);
                self.events.push_back(SessionEvent::ReleaseStream {
                    name,
                    max_priority: self.config.max_publish_priority,
                });
            }
            Command::FcPublish {
                transaction_id,
                name,
            } => {
                self.reply(stream, encoding, transaction_id, vec![Value::Undefined]);
                self.send_notice(
                    stream,
                    encoding,
                    "onFCPublish",
                    "NetStream.Publish.Start",
                    name,
                );
            }
            Command::FcUnpublish {
                transaction_id,
                name,
            } => {
                self.reply(stream, encoding, transaction_id, vec![Value::Undefined]);
                let (name, _) = split_query(&name);
                let published = self.streams.iter().find_map(|(id, s)| match &s.state {
                    StreamState::PublishPending { name: n, .. }
                    | StreamState::Publishing { name: n, .. }
                        if *n == name =>
                    {
                        Some(*id)
                    }
                    _ => None,
                });
                if let Some(id) = published {
                    self.stop_stream(id);
                }
                self.send_notice(
                    stream,
                    encoding,
                    "onFCUnpublish",
                    "NetStream.Unpublish.Success",
                    name,
                );
            }
            Command::Publish { name, kind, .. } => self.publish(stream, name, kind),
            Command::Play(play) => self.play(stream, play),
            Command::Pause { pause, .. } => self.pause(now, stream, pause),
            Command::Seek { .. } => self.send_status(
                stream,
                "error",
                "NetStream.Seek.Failed",
                "Seeking is not possible on a live stream.",
                vec![],
            ),
            Command::ReceiveAudio(on) => self.receive(now, stream, FrameKind::Audio, on),
            Command::ReceiveVideo(on) => self.receive(now, stream, FrameKind::Video, on),
            Command::CheckBw { transaction_id } => {
                self.reply(stream, encoding, transaction_id, vec![Value::Undefined]);
            }
            Command::GetStreamLength { transaction_id, .. } => {
                self.reply(stream, encoding, transaction_id, vec![Value::Number(0.0)]);
            }
            // librtmp (rtmpdump) subscribes this way before playing a live
            // stream and reports an error if refused; FMS answers with a
            // notice, and playback itself goes through `play`.
            Command::Other(ref cmd) if cmd.name == "FCSubscribe" => {
                let name = cmd
                    .args
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let tid = cmd.transaction_id;
                self.reply(stream, encoding, tid, vec![Value::Undefined]);
                self.send_notice(
                    stream,
                    encoding,
                    "onFCSubscribe",
                    "NetStream.Play.Start",
                    name,
                );
            }
            // Replies and statuses from a client need nothing from us.
            Command::Result { .. } | Command::Error { .. } | Command::OnStatus { .. } => {}
            Command::SetPeerInfo { addresses } => self.set_peer_info(addresses),
            Command::Relay { target, args } => self.relay(Some(target), args),
            Command::Broadcast { args } => self.relay(None, args),
            Command::Watch { target } => self.watch(target),
            other => {
                let tid = other.transaction_id();
                let name = echoed_name(other.name());
                if tid != 0.0 {
                    self.call_failed(stream, encoding, tid, &format!("unknown command {name}"));
                } else {
                    tracing::debug!(name, "ignored unknown command without transaction id");
                }
            }
        }
    }

    fn handle_connect(&mut self, now: Instant, encoding: Encoding, connect: Connect) {
        let tid = connect.transaction_id;
        let Some(app) = connect.resolved_app() else {
            self.reject_connect(
                now,
                encoding,
                tid,
                "connect must name an app (app or tcUrl).",
                "neither app nor tcUrl given".to_owned(),
            );
            return;
        };
        // The App's own settings, if the operator gave it any.
        if let Some(settings) = self.config.apps.get(&app).cloned() {
            if let Some(keys) = settings.auth_keys {
                self.config.auth_keys = keys;
            }
            if let Some(rt) = settings.real_time {
                self.config.real_time = rt;
            }
        }
        if let Err(refusal) = self
            .config
            .loop_guard
            .check(&crate::via::chain(&connect.properties))
        {
            let description = refusal.to_string();
            self.reject_connect(now, encoding, tid, &description, description.clone());
            return;
        }
        if !self.authenticate(now, encoding, tid, &app, &connect.args) {
            return;
        }
        let object_encoding = connect.object_encoding();
        let flash_ver = connect
            .properties
            .get("flashVer")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.flash_ver.clone_from(&flash_ver);
        self.tc_url = connect.tc_url().map(str::to_owned);
        self.client_caps = EnhancedCaps::from_object(&connect.properties);
        if self.client_caps.is_enhanced() {
            tracing::debug!(caps = ?self.client_caps, "client announced Enhanced RTMP");
        }
        let info = ConnectInfo {
            app,
            connection_id: self.connection_id.clone(),
            tc_url: connect.tc_url().map(str::to_owned),
            flash_ver,
            command_object: connect.properties,
            args: connect.args,
            user: self.user.clone(),
        };
        let pending = PendingConnect {
            encoding,
            transaction_id: tid,
            object_encoding,
            info,
        };
        if self.config.hold_connect {
            tracing::debug!(app = %pending.info.app, "connect awaits a decision");
            self.timers.set(Timer::Connect, None);
            self.phase = Phase::ConnectPending;
            self.events
                .push_back(SessionEvent::ConnectRequest(Box::new(pending.info.clone())));
            self.pending_connect = Some(Box::new(pending));
            return;
        }
        self.finish_connect(pending);
    }

    /// Answers an accepted `connect` and joins its App.
    pub(super) fn finish_connect(&mut self, pending: PendingConnect) {
        let PendingConnect {
            encoding,
            transaction_id: tid,
            object_encoding,
            info,
        } = pending;
        let window = self.config.window_ack_size;
        self.send_control(Message::WindowAckSize(window));
        // The simplified dialect leaves out what its clients mishandle: a
        // chunk size change and the bandwidth message (see SessionConfig).
        if !self.config.simplified_rtmp {
            self.send_control(Message::SetPeerBandwidth {
                size: window,
                limit: BandwidthLimit::Dynamic,
            });
            self.push(Outgoing::SetChunkSize(self.config.out_chunk_size));
        }
        // Enhanced RTMP v2: the server states what it supports in the
        // same object (see docs/enhanced-rtmp.md). Legacy clients ignore
        // members they do not know.
        let properties = Value::object(
            [
                ("fmsVer", Value::from(self.config.fms_version.as_str())),
                ("capabilities", Value::Number(31.0)),
                ("mode", Value::Number(1.0)),
            ]
            .into_iter()
            .chain(EnhancedCaps::server().to_members()),
        );
        let success = status_info(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
            [
                ("objectEncoding", Value::Number(object_encoding)),
                ("connectionID", Value::from(self.connection_id.as_str())),
            ]
            .into_iter()
            .chain(
                self.config
                    .server_info
                    .as_deref()
                    .map(|i| ("serverInfo", Value::from(i))),
            )
            .collect(),
        );
        self.send_command(
            0,
            encoding,
            Command::Result {
                transaction_id: tid,
                command_object: properties,
                args: vec![success],
            },
        );
        self.phase = Phase::Connected;
        self.encoding = encoding;
        self.timers.set(Timer::Connect, None);
        tracing::info!(
            app = %info.app,
            connection_id = %self.connection_id,
            user = self.user.as_deref(),
            flash_ver = info.flash_ver.as_deref(),
            "connected"
        );
        self.app = Some(info.app.clone());
        self.events
            .push_back(SessionEvent::Connected(Box::new(info)));
    }

    /// `_result` with a null command object, unless the client asked for
    /// no reply (transaction id 0).
    fn reply(&mut self, stream: u32, encoding: Encoding, transaction_id: f64, args: Vec<Value>) {
        if transaction_id == 0.0 {
            return;
        }
        self.send_command(
            stream,
            encoding,
            Command::Result {
                transaction_id,
                command_object: Value::Null,
                args,
            },
        );
    }

    /// `_error` with a `NetConnection.Call.Failed` info object.
    fn call_failed(&mut self, stream: u32, encoding: Encoding, transaction_id: f64, why: &str) {
        let info = status_info("error", "NetConnection.Call.Failed", why, vec![]);
        self.send_command(
            stream,
            encoding,
            Command::Error {
                transaction_id,
                command_object: Value::Null,
                args: vec![info],
            },
        );
    }

    /// `onFCPublish` / `onFCUnpublish`: a transaction-less command whose
    /// info object names the stream.
    fn send_notice(
        &mut self,
        stream: u32,
        encoding: Encoding,
        name: &str,
        code: &str,
        about: String,
    ) {
        let info = Value::object([
            ("code", Value::from(code)),
            ("description", Value::from(about)),
        ]);
        self.send_command(
            stream,
            encoding,
            Command::Other(GenericCommand {
                name: name.to_owned(),
                transaction_id: 0.0,
                command_object: Value::Null,
                args: vec![info],
            }),
        );
    }

    fn create_stream(&mut self, stream: u32, encoding: Encoding, transaction_id: f64) {
        let limit = self.config.max_streams.min(super::MAX_STREAMS);
        if self.streams.len() >= limit as usize {
            let why = format!("too many streams (at most {limit} at once)");
            self.call_failed(stream, encoding, transaction_id, &why);
            return;
        }
        // Skip ids whose chunk stream ids a live stream uses: fewer than
        // MAX_STREAMS are live, so one of the next MAX_STREAMS is free.
        let mut id = self.next_stream_id;
        for _ in 0..super::MAX_STREAMS {
            let set = super::stream_csids(id).0;
            if !self
                .streams
                .keys()
                .any(|&s| super::stream_csids(s).0 == set)
            {
                break;
            }
            id = id.wrapping_add(1).max(1);
        }
        let Some(next) = id.checked_add(1) else {
            self.call_failed(stream, encoding, transaction_id, "stream ids exhausted");
            return;
        };
        self.next_stream_id = next;
        self.streams.insert(id, NetStream::default());
        tracing::debug!(stream = id, "stream created");
        self.send_command(
            stream,
            encoding,
            Command::Result {
                transaction_id,
                command_object: Value::Null,
                args: vec![Value::Number(f64::from(id))],
            },
        );
    }

    /// Ends whatever `stream` does (publish or play) and tells the broker;
    /// the stream stays allocated.
    fn stop_stream(&mut self, stream: u32) {
        let Some(st) = self.streams.get_mut(&stream) else {
            return;
        };
        match std::mem::take(&mut st.state) {
            StreamState::Idle => {}
            StreamState::PublishPending { name, .. } | StreamState::Publishing { name, .. } => {
                tracing::info!(stream, name = %redact(&name), "unpublished");
                self.events.push_back(SessionEvent::Unpublish { stream });
            }
            StreamState::PlayPending(play) => {
                tracing::info!(stream, name = %redact(&play.name), "play withdrawn");
                self.events.push_back(SessionEvent::StopPlay { stream });
            }
            StreamState::Playing(play) => {
                tracing::info!(stream, name = %redact(&play.name), "stopped playing");
                self.backlog.close_lane(stream);
                self.stop_partial(stream);
                self.events.push_back(SessionEvent::StopPlay { stream });
            }
        }
    }

    fn publish(&mut self, stream: u32, name: Option<String>, kind: PublishKind) {
        let bad_name = "NetStream.Publish.BadName";
        let Some(st) = self.streams.get_mut(&stream) else {
            self.send_status(
                stream,
                "error",
                bad_name,
                "No such stream: call createStream first.",
                vec![],
            );
            return;
        };
        let Some(name) = name else {
            // Flash stops a publish with publish(false) or publish(null).
            if let StreamState::PublishPending { name, .. } | StreamState::Publishing { name, .. } =
                &st.state
            {
                let description = format!("{name} is now unpublished.");
                self.stop_stream(stream);
                self.send_status(
                    stream,
                    "status",
                    "NetStream.Unpublish.Success",
                    &description,
                    vec![],
                );
            }
            return;
        };
        if !matches!(st.state, StreamState::Idle) {
            self.send_status(
                stream,
                "error",
                bad_name,
                "The stream is already publishing or playing.",
                vec![],
            );
            return;
        }
        if !self.may_publish_more() {
            self.send_status(
                stream,
                "error",
                bad_name,
                "this connection may not publish more streams at once",
                vec![],
            );
            return;
        }
        let (name, query) = split_query(&name);
        let asked = query_param(&query, "priority")
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0);
        let priority = asked.min(self.config.max_publish_priority);
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(st) = self.streams.get_mut(&stream) {
            st.state = StreamState::PublishPending {
                name: name.clone(),
                seq,
            };
        }
        tracing::info!(stream, name = %redact(&name), ?kind, priority, "publish requested");
        self.events.push_back(SessionEvent::Publish {
            stream,
            seq,
            name,
            query,
            kind,
            priority,
        });
    }

    fn play(&mut self, stream: u32, play: Play) {
        let failed = "NetStream.Play.Failed";
        match self.streams.get(&stream).map(|s| &s.state) {
            None => {
                self.send_status(
                    stream,
                    "error",
                    failed,
                    "No such stream: call createStream first.",
                    vec![],
                );
                return;
            }
            Some(StreamState::PublishPending { .. } | StreamState::Publishing { .. }) => {
                self.send_status(stream, "error", failed, "The stream is publishing.", vec![]);
                return;
            }
            Some(StreamState::Playing(_) | StreamState::PlayPending(_)) => self.stop_stream(stream),
            Some(StreamState::Idle) => {}
        }
        let (name, query) = split_query(&play.name);
        let mut rt = play_options(play.options.as_ref(), &self.config.real_time);
        query_play_options(&query, &mut rt, &self.config.real_time);
        // TC's web player asks for `NAME?asis&...`: the flag is the prefix.
        let asis = query_param(&query, "asis").is_some_and(flag_on);
        let broker_name = if asis && !name.starts_with("asis:") {
            format!("asis:{name}")
        } else {
            name.clone()
        };
        let tracks = TrackFilter::new(&self.client_caps, play.options.as_ref(), &query);
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(st) = self.streams.get_mut(&stream) {
            st.state = StreamState::PlayPending(Box::new(PendingPlay {
                seq,
                name,
                rt,
                reset: play.reset,
                options: play.options,
                query: query.clone(),
                tracks,
            }));
        }
        tracing::debug!(stream, name = %redact(&broker_name), "play requested");
        self.events.push_back(SessionEvent::Play {
            stream,
            request: PlayRequest {
                seq,
                name: broker_name,
                query,
            },
        });
    }

    /// The play on `stream` was accepted: the player is told and media may
    /// follow.
    fn start_playing(&mut self, stream: u32, pending: PendingPlay) {
        let PendingPlay {
            name,
            rt,
            reset,
            tracks,
            ..
        } = pending;
        tracing::debug!(
            stream,
            video = ?tracks.video(),
            audio = ?tracks.audio(),
            "track selection"
        );
        if let Some(st) = self.streams.get_mut(&stream) {
            st.state = StreamState::Playing(PlayState {
                name: name.clone(),
                paused: false,
                audio: true,
                video: true,
                stash: VecDeque::new(),
                tracks,
            });
        }
        self.backlog.open_lane(stream, rt);
        self.send_control(Message::UserControl(UserControl::StreamBegin(stream)));
        let details = || vec![("details", Value::from(name.as_str()))];
        if reset {
            let description = format!("Playing and resetting {name}.");
            self.send_status(
                stream,
                "status",
                "NetStream.Play.Reset",
                &description,
                details(),
            );
        }
        let description = format!("Started playing {name}.");
        self.send_status(
            stream,
            "status",
            "NetStream.Play.Start",
            &description,
            details(),
        );
        self.send_sample_access(stream);
        tracing::info!(stream, name = %redact(&name), "playing");
    }

    /// `|RtmpSampleAccess(true, true)`: lets Flash players read the
    /// decoded audio and video (BitmapData.draw, SoundMixer), as FMS does.
    fn send_sample_access(&mut self, stream: u32) {
        let mut body = BytesMut::new();
        let values = [
            Value::from("|RtmpSampleAccess"),
            Value::from(true),
            Value::from(true),
        ];
        if amf0::encode_all(&values, &mut body).is_ok() {
            self.push(Outgoing::Message(RawMessage {
                csid: stream_csids(stream).0,
                timestamp: MediaTime::ZERO,
                type_id: type_id::DATA_AMF0,
                stream_id: stream,
                payload: body.freeze(),
            }));
        }
    }

    fn playing_mut(&mut self, stream: u32) -> Option<&mut PlayState> {
        match self.streams.get_mut(&stream) {
            Some(NetStream {
                state: StreamState::Playing(play),
                ..
            }) => Some(play),
            _ => None,
        }
    }

    fn pause(&mut self, now: Instant, stream: u32, pause: bool) {
        let Some(play) = self.playing_mut(stream) else {
            tracing::debug!(stream, "pause on a stream that is not playing ignored");
            return;
        };
        let was_paused = std::mem::replace(&mut play.paused, pause);
        let name = play.name.clone();
        let details = vec![("details", Value::from(name.as_str()))];
        if pause {
            self.backlog.discard_droppable(stream, None);
            let description = format!("Paused {name}.");
            self.send_status(
                stream,
                "status",
                "NetStream.Pause.Notify",
                &description,
                details,
            );
        } else {
            let description = format!("Unpaused {name}.");
            self.send_status(
                stream,
                "status",
                "NetStream.Unpause.Notify",
                &description,
                details,
            );
            if was_paused {
                self.backlog.resume_video_at_keyframe(stream);
                self.flush_stash(now, stream);
            }
        }
    }

    fn receive(&mut self, now: Instant, stream: u32, kind: FrameKind, on: bool) {
        let Some(play) = self.playing_mut(stream) else {
            tracing::debug!(
                stream,
                "receiveAudio/receiveVideo on a stream that is not playing ignored"
            );
            return;
        };
        let flag = match kind {
            FrameKind::Audio => &mut play.audio,
            _ => &mut play.video,
        };
        if std::mem::replace(flag, on) == on {
            return;
        }
        if !on {
            self.backlog.discard_droppable(stream, Some(kind));
            return;
        }
        if kind == FrameKind::Video {
            self.backlog.resume_video_at_keyframe(stream);
        }
        self.flush_stash(now, stream);
    }

    /// Hands the player the stashed frames of the kinds it wants again.
    fn flush_stash(&mut self, now: Instant, stream: u32) {
        let Some(play) = self.playing_mut(stream) else {
            return;
        };
        let (ready, kept): (VecDeque<Frame>, VecDeque<Frame>) = std::mem::take(&mut play.stash)
            .into_iter()
            .partition(|f| play.wants(f.kind));
        play.stash = kept;
        for frame in ready {
            let Some(play) = self.playing_mut(stream) else {
                return;
            };
            let Some((frame, head)) = play.tracks.apply(frame) else {
                continue;
            };
            if self
                .backlog
                .push_frame_with_head(now, stream, frame, head)
                .is_err()
            {
                self.fail(
                    now,
                    SessionError::SlowPeer("its player backlog of configuration and data is full"),
                );
                return;
            }
        }
    }

    /// A frame for the player on `stream`.
    pub(super) fn deliver(&mut self, now: Instant, stream: u32, frame: Frame) {
        let Some(NetStream {
            state: StreamState::Playing(play),
            ..
        }) = self.streams.get_mut(&stream)
        else {
            tracing::trace!(stream, "frame for a stream that is not playing ignored");
            return;
        };
        if play.wants(frame.kind) {
            // One track of a multitrack stream, unless it takes them all.
            let Some((frame, head)) = play.tracks.apply(frame) else {
                return;
            };
            if self
                .backlog
                .push_frame_with_head(now, stream, frame, head)
                .is_err()
            {
                self.fail(
                    now,
                    SessionError::SlowPeer("its player backlog of configuration and data is full"),
                );
            }
        } else if !frame.is_droppable() {
            // Keep the latest configuration and data so resuming works.
            if play.stash.len() >= MAX_STASH {
                play.stash.pop_front();
            }
            play.stash.push_back(frame);
        }
    }

    /// An `onStatus` for a player that must stay in order with its media.
    fn in_band_status(&mut self, now: Instant, stream: u32, code: &str, what: &str) {
        self.in_band_status_with(now, stream, code, what, Vec::new());
    }

    /// As [`Self::in_band_status`], with more members in the info object.
    fn in_band_status_with(
        &mut self,
        now: Instant,
        stream: u32,
        code: &str,
        what: &str,
        extra: Vec<(&str, Value)>,
    ) {
        let Some(play) = self.playing_mut(stream) else {
            return;
        };
        let name = play.name.clone();
        let mut members = vec![("details", Value::from(name.as_str()))];
        members.extend(extra);
        let info = status_info("status", code, &format!("{name} is now {what}."), members);
        let msg = Message::Command {
            encoding: self.encoding,
            command: Command::OnStatus { info },
        };
        match msg.to_raw(stream_csids(stream).0, MediaTime::ZERO, stream) {
            Ok(raw) => {
                if self.backlog.push_message(now, stream, raw).is_err() {
                    self.fail(
                        now,
                        SessionError::SlowPeer("its player backlog of statuses is full"),
                    );
                }
            }
            Err(e) => tracing::warn!(%e, "could not encode a status"),
        }
    }

    /// Whether the publish request `seq` of `stream` still waits for its
    /// answer (an answer to a superseded request is ignored).
    pub(crate) fn publish_pending(&self, stream: u32, seq: u64) -> bool {
        matches!(
            self.streams.get(&stream).map(|s| &s.state),
            Some(StreamState::PublishPending { seq: s, .. }) if *s == seq
        )
    }

    /// The connection's highest publish priority from now on, as a decider
    /// granted it (a token's `pri`).
    pub(crate) fn set_max_publish_priority(&mut self, max: u32) {
        self.config.max_publish_priority = max;
    }

    /// A decider's real-time treatment for the play request `seq` of
    /// `stream`, still waiting: the player's own options apply over it,
    /// within its caps. False if that request no longer waits.
    pub(crate) fn set_pending_play_real_time(
        &mut self,
        stream: u32,
        seq: u64,
        granted: RealTimeConfig,
    ) -> bool {
        match self.streams.get_mut(&stream).map(|s| &mut s.state) {
            Some(StreamState::PlayPending(p)) if p.seq == seq => {
                let mut rt = play_options(p.options.as_ref(), &granted);
                query_play_options(&p.query, &mut rt, &granted);
                p.rt = rt;
                true
            }
            _ => false,
        }
    }

    /// Whether the play request `seq` of `stream` still waits.
    pub(crate) fn play_pending(&self, stream: u32, seq: u64) -> bool {
        matches!(
            self.streams.get(&stream).map(|s| &s.state),
            Some(StreamState::PlayPending(p)) if p.seq == seq
        )
    }

    pub(super) fn on_broker_event(&mut self, now: Instant, event: BrokerEvent) {
        let bad_name = "NetStream.Publish.BadName";
        match event {
            BrokerEvent::PublishAccepted {
                stream,
                seq,
                hashname,
            } => {
                if !self.publish_pending(stream, seq) {
                    return;
                }
                let Some(st) = self.streams.get_mut(&stream) else {
                    return;
                };
                let StreamState::PublishPending { name, .. } = &st.state else {
                    return;
                };
                let name = name.clone();
                st.state = StreamState::Publishing {
                    name: name.clone(),
                    last_media: now,
                };
                tracing::info!(stream, name = %redact(&name), "publishing");
                self.send_control(Message::UserControl(UserControl::StreamBegin(stream)));
                let description = format!("{name} is now published.");
                self.send_status(
                    stream,
                    "status",
                    "NetStream.Publish.Start",
                    &description,
                    vec![
                        ("details", Value::from(name)),
                        ("hashname", Value::from(hashname)),
                    ],
                );
            }
            BrokerEvent::PublishRejected {
                stream,
                seq,
                reason,
            } => {
                if !self.publish_pending(stream, seq) {
                    return;
                }
                let Some(st) = self.streams.get_mut(&stream) else {
                    return;
                };
                if let StreamState::PublishPending { name, .. } = &st.state {
                    tracing::info!(stream, name = %redact(name), %reason, "publish rejected");
                    st.state = StreamState::Idle;
                    let code = match &reason {
                        PublishRejection::Denied(d) if d.kind != DenialKind::BadName => {
                            "NetStream.Publish.Denied"
                        }
                        _ => bad_name,
                    };
                    self.send_status(stream, "error", code, &reason.to_string(), vec![]);
                }
            }
            BrokerEvent::PlayAccepted { stream, seq } => {
                if !self.play_pending(stream, seq) {
                    return;
                }
                let Some(st) = self.streams.get_mut(&stream) else {
                    return;
                };
                if let StreamState::PlayPending(pending) = std::mem::take(&mut st.state) {
                    self.start_playing(stream, *pending);
                }
            }
            BrokerEvent::PlayRejected {
                stream,
                seq,
                reason,
            } => {
                if !self.play_pending(stream, seq) {
                    return;
                }
                let Some(st) = self.streams.get_mut(&stream) else {
                    return;
                };
                if let StreamState::PlayPending(pending) = std::mem::take(&mut st.state) {
                    tracing::info!(stream, name = %redact(&pending.name), %reason, "play refused");
                    let code = match &reason {
                        PlayRejection::Denied(d) if d.kind == DenialKind::NotFound => {
                            "NetStream.Play.StreamNotFound"
                        }
                        _ => "NetStream.Play.Failed",
                    };
                    let details = vec![("details", Value::from(pending.name.as_str()))];
                    self.send_status(stream, "error", code, &reason.to_string(), details);
                }
            }
            BrokerEvent::PublishEvicted { stream, reason } => {
                let Some(st) = self.streams.get_mut(&stream) else {
                    return;
                };
                if let StreamState::Publishing { name, .. } = &st.state {
                    tracing::info!(stream, name = %redact(name), ?reason, "publish ended by the server");
                    st.state = StreamState::Idle;
                    let (code, description) = match &reason {
                        Eviction::Released => (bad_name, "another client released this stream"),
                        Eviction::TakenOver => (
                            bad_name,
                            "another client published this stream at a higher priority",
                        ),
                        Eviction::Ended(d) => ("NetStream.Publish.Denied", d.as_str()),
                    };
                    let description = description.to_owned();
                    self.send_status(stream, "error", code, &description, vec![]);
                }
            }
            BrokerEvent::PublishNotify {
                stream,
                priority,
                publisher_name,
            } => {
                let mut extra = vec![("priority", Value::Number(f64::from(priority)))];
                if let Some(name) = publisher_name {
                    extra.push(("publisherName", Value::from(name.as_str())));
                }
                self.in_band_status_with(
                    now,
                    stream,
                    "NetStream.Play.PublishNotify",
                    "published",
                    extra,
                );
            }
            BrokerEvent::UnpublishNotify { stream } => {
                self.in_band_status(now, stream, "NetStream.Play.UnpublishNotify", "unpublished");
            }
            BrokerEvent::Frame { stream, frame } => self.deliver(now, stream, frame),
            BrokerEvent::Relay { body } => self.deliver_relay(body),
            BrokerEvent::Disconnected { connection_id } => {
                self.notify_disconnected(connection_id);
            }
        }
    }
}

/// A message stream id as clients send it (a Number); None unless it is a
/// whole number in 1..=u32::MAX.
fn stream_id_from(n: f64) -> Option<u32> {
    (n.fract() == 0.0 && n >= 1.0 && n <= f64::from(u32::MAX)).then_some(n as u32)
}

/// A peer-chosen command name, shortened for logs and replies.
fn echoed_name(name: &str) -> &str {
    name.char_indices()
        .nth(MAX_ECHOED_NAME)
        .map_or(name, |(i, _)| &name[..i])
}

/// Splits a stream name at its first `?`: the name proper (the stream key)
/// and the query (tokens and options, as SRS, MediaMTX and nginx-rtmp
/// take them), empty if there is none.
pub(crate) fn split_query(name: &str) -> (String, String) {
    match name.split_once('?') {
        Some((name, query)) => (name.to_owned(), query.to_owned()),
        None => (name.to_owned(), String::new()),
    }
}

/// The value of `key` in a `a=1&b;c=x?d` query (TC separates parameters
/// with `&`, `?` or `;`): `Some("")` for a bare flag, `None` if absent. A
/// later occurrence overrides an earlier one, as in TC.
pub(crate) fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split(['&', '?', ';'])
        .rev()
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// TC's reading of a flag parameter: present and not `0`, `no` or
/// `false` (a bare flag is on).
fn flag_on(value: &str) -> bool {
    !matches!(value, "0" | "no" | "false")
}

/// The real-time options TC's own web player sends in the name's query
/// (`NAME?asis&audioLifetime=0.25&videoLifetime=1`), applied over `rt`
/// with the same caps as [`play_options`].
fn query_play_options(query: &str, rt: &mut RealTimeConfig, default: &RealTimeConfig) {
    if query.is_empty() {
        return;
    }
    let cap = default.cap();
    let seconds = |key: &str, cap: Duration| {
        query_param(query, key)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s >= 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .map(|d| d.min(cap))
    };
    if let Some(d) = seconds("audioLifetime", cap.audio_lifetime) {
        rt.audio_lifetime = d;
    }
    if let Some(d) = seconds("videoLifetime", cap.video_lifetime) {
        rt.video_lifetime = d;
    }
    if let Some(d) = seconds("finishByMargin", cap.finish_by_margin) {
        rt.finish_by_margin = d;
    }
    if let Some(v) = query_param(query, "expirePreviousGop") {
        rt.expire_previous_gop = flag_on(v);
    }
}

/// The real-time treatment a player asked for in its `play` options, each
/// value clamped to [`RealTimeConfig::cap`]. Missing, negative or
/// non-numeric values keep the server's default.
pub(super) fn play_options(options: Option<&Value>, default: &RealTimeConfig) -> RealTimeConfig {
    let mut rt = *default;
    let Some(options) = options else {
        return rt;
    };
    let cap = default.cap();
    let seconds = |key: &str, cap: Duration| {
        option_number(options, key)
            .filter(|s| *s >= 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .map(|d| d.min(cap))
    };
    if let Some(d) = seconds("audioLifetime", cap.audio_lifetime) {
        rt.audio_lifetime = d;
    }
    if let Some(d) = seconds("videoLifetime", cap.video_lifetime) {
        rt.video_lifetime = d;
    }
    if let Some(d) = seconds("finishByMargin", cap.finish_by_margin) {
        rt.finish_by_margin = d;
    }
    if let Some(on) = option_truthy(options, "expirePreviousGop") {
        rt.expire_previous_gop = on;
    }
    rt
}

fn option_number(options: &Value, key: &str) -> Option<f64> {
    match options {
        Value::AvmPlus(o) => o.get(key).and_then(amf3::Value::as_f64),
        _ => options.get(key).and_then(Value::as_f64),
    }
}

/// ActionScript truthiness of a member: false, 0, NaN, "", null and
/// undefined are false, anything else true.
fn option_truthy(options: &Value, key: &str) -> Option<bool> {
    let truthy = |b: Option<bool>, n: Option<f64>, s: Option<&str>, null: bool| {
        b.or(n.map(|n| n != 0.0 && !n.is_nan()))
            .or(s.map(|s| !s.is_empty()))
            .unwrap_or(!null)
    };
    match options {
        Value::AvmPlus(o) => o
            .get(key)
            .map(|v| truthy(v.as_bool(), v.as_f64(), v.as_str(), v.is_null())),
        _ => options
            .get(key)
            .map(|v| truthy(v.as_bool(), v.as_f64(), v.as_str(), v.is_null())),
    }
}
