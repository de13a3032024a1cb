//! A [`Broker`] driven by arbitrary sequences of sessions connecting,
//! publishing, playing, sending media and vanishing, its bookkeeping
//! checked after every step.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::broker::{Broker, BrokerConfig};
use tincan_core::event::{
    BrokerEvent, ConnectInfo, Frame, FrameKind, PlayRequest, SessionEvent, SessionId,
};
use tincan_core::message::PublishKind;
use tincan_core::time::MediaTime;

use crate::script::Script;

/// Stream names publishers use: plain names, and the reserved or empty
/// ones the broker must refuse.
const PUBLISH_NAMES: [&str; 6] = ["a", "b", "c", "", "asis:a", "sha256:00"];
/// Play names: plain, `asis:`, and the `sha256:` form of "a" (so hashed
/// and plain players meet), and a malformed hash.
const PLAY_NAMES: [&str; 6] = [
    "a",
    "b",
    "asis:a",
    "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
    "sha256:zz",
    "c",
];
const APPS: [&str; 2] = ["live", "other"];
const HANDLERS: [&str; 3] = ["onMetaData", "onTextData", "onCuePoint"];

/// Operation codes of the [`broker`] script (the byte is taken modulo 15).
/// `s` is a session index byte, `m` a message stream byte, `n` a name
/// index byte.
pub mod op {
    /// + app byte + connection-id byte: a session opens and connects.
    pub const CONNECT: u8 = 0;
    /// s m n kind: publish.
    pub const PUBLISH: u8 = 1;
    /// s m: unpublish.
    pub const UNPUBLISH: u8 = 2;
    /// s m n: play.
    pub const PLAY: u8 = 3;
    /// s m: stop playing.
    pub const STOP_PLAY: u8 = 4;
    /// s m flags u32-timestamp run: a media frame.
    pub const FRAME: u8 = 5;
    /// s m handler run: `@setDataFrame`.
    pub const SET_DATA: u8 = 6;
    /// s m handler: `@clearDataFrame`.
    pub const CLEAR_DATA: u8 = 7;
    /// s n: `releaseStream`.
    pub const RELEASE: u8 = 8;
    /// s: the session closes.
    pub const CLOSE: u8 = 9;
    /// u16: milliseconds pass (the republish grace is 1 s).
    pub const ADVANCE: u8 = 10;
    /// A session opens but never connects, and publishes.
    pub const STRAY: u8 = 11;
    /// s + connection-id byte + run: TC `relay`.
    pub const RELAY: u8 = 12;
    /// s + run: TC `broadcast` to the sender's App.
    pub const BROADCAST: u8 = 13;
    /// s + connection-id byte: TC `watch`.
    pub const WATCH: u8 = 14;
}

fn pick<T: Copy>(list: &[T], b: u8) -> T {
    list[usize::from(b) % list.len()]
}

/// Broker: arbitrary operations never panic; after every step the
/// bookkeeping agrees with itself ([`Broker::check_invariants`]: at most
/// one publisher per name, no subscriber of a closed session, counts
/// consistent, watches and App members only of connected sessions), no
/// event is addressed to a session that closed or never
/// opened, and no two live publishes of one name are accepted.
pub fn broker(data: &[u8]) {
    let mut s = Script::new(data);
    let mut now = Instant::now();
    let mut broker = Broker::new(BrokerConfig {
        republish_grace: Duration::from_secs(1),
        fast_start_max_bytes: 4096,
        fast_start_max_duration: Duration::from_secs(2),
        fast_start_max_frames: 64,
        max_data_keyframes: 4,
        max_config_frames: 4,
        max_streams: 8,
        release_stream_evicts_any: false,
    });
    // Sessions in opening order; index bytes pick among them.
    let mut sessions: Vec<SessionId> = Vec::new();
    let mut apps: HashMap<SessionId, &str> = HashMap::new();
    let mut opened: BTreeSet<SessionId> = BTreeSet::new();
    let mut closed: BTreeSet<SessionId> = BTreeSet::new();
    // The model: which (session, message stream) publishes which name, as
    // the broker told the publishers; the name a pending publish asked for.
    let mut live: HashMap<(SessionId, u32), (&str, &str)> = HashMap::new();
    let mut asked: HashMap<(SessionId, u32), &str> = HashMap::new();
    while let Some(code) = s.op() {
        let session = |s: &mut Script<'_>| -> Option<SessionId> {
            let b = s.u8();
            (!sessions.is_empty()).then(|| sessions[usize::from(b) % sessions.len()])
        };
        let stream = |s: &mut Script<'_>| u32::from(s.u8() % 4);
        let mut sent: Option<(SessionId, SessionEvent)> = None;
        match code % 15 {
            op::CONNECT => {
                let id = broker.open_session();
                opened.insert(id);
                let app = pick(&APPS, s.u8());
                // A few connection ids repeat, as a buggy runtime might.
                let connection_id = format!("c{}", s.u8() % 32);
                sessions.push(id);
                apps.insert(id, app);
                sent = Some((
                    id,
                    SessionEvent::Connected(Box::new(ConnectInfo {
                        app: app.to_owned(),
                        connection_id,
                        ..ConnectInfo::default()
                    })),
                ));
            }
            op::PUBLISH => {
                if let Some(id) = session(&mut s) {
                    let stream = stream(&mut s);
                    let name = pick(&PUBLISH_NAMES, s.u8());
                    let kind = match s.u8() % 3 {
                        0 => PublishKind::Live,
                        1 => PublishKind::Record,
                        _ => PublishKind::Other("appendWithGap".to_owned()),
                    };
                    // A second publish on a stream replaces the first.
                    live.remove(&(id, stream));
                    asked.insert((id, stream), name);
                    let name = name.to_owned();
                    // Priorities 0..=2: a higher one takes a live name over.
                    let priority = u32::from(s.u8() % 3);
                    sent = Some((
                        id,
                        SessionEvent::Publish {
                            stream,
                            seq: 1,
                            name,
                            query: String::new(),
                            kind,
                            priority,
                        },
                    ));
                }
            }
            op::UNPUBLISH => {
                if let Some(id) = session(&mut s) {
                    let stream = stream(&mut s);
                    live.remove(&(id, stream));
                    sent = Some((id, SessionEvent::Unpublish { stream }));
                }
            }
            op::PLAY => {
                if let Some(id) = session(&mut s) {
                    let stream = stream(&mut s);
                    let name = pick(&PLAY_NAMES, s.u8()).to_owned();
                    let request = PlayRequest {
                        seq: 1,
                        name,
                        query: String::new(),
                    };
                    sent = Some((id, SessionEvent::Play { stream, request }));
                }
            }
            op::STOP_PLAY => {
                if let Some(id) = session(&mut s) {
                    let stream = stream(&mut s);
                    sent = Some((id, SessionEvent::StopPlay { stream }));
                }
            }
            op::FRAME => {
                if let Some(id) = session(&mut s) {
                    let stream = stream(&mut s);
                    let flags = s.u8();
                    let timestamp = MediaTime::from_millis(s.u32());
                    let payload = Bytes::copy_from_slice(s.run());
                    let frame = Frame {
                        kind: match flags % 3 {
                            0 => FrameKind::Audio,
                            1 => FrameKind::Video,
                            _ => FrameKind::Data,
                        },
                        timestamp,
                        payload,
                        keyframe: flags & 0x10 != 0,
                        config: flags & 0x20 != 0,
                    };
                    sent = Some((id, SessionEvent::Frame { stream, frame }));
                }
            }
            op::SET_DATA => {
                if let Some(id) = session(&mut s) {
                    let stream = stream(&mut s);
                    let handler = pick(&HANDLERS, s.u8()).to_owned();
                    let frame = Frame {
                        kind: FrameKind::Data,
                        timestamp: MediaTime::ZERO,
                        payload: Bytes::copy_from_slice(s.run()),
                        keyframe: false,
                        config: false,
                    };
                    sent = Some((
                        id,
                        SessionEvent::SetDataFrame {
                            stream,
                            handler,
                            frame,
                        },
                    ));
                }
            }
            op::CLEAR_DATA => {
                if let Some(id) = session(&mut s) {
                    let stream = stream(&mut s);
                    let handler = pick(&HANDLERS, s.u8()).to_owned();
                    sent = Some((id, SessionEvent::ClearDataFrame { stream, handler }));
                }
            }
            op::RELEASE => {
                if let Some(id) = session(&mut s) {
                    let name = pick(&PUBLISH_NAMES, s.u8()).to_owned();
                    let max_priority = u32::from(s.u8() % 3);
                    sent = Some((id, SessionEvent::ReleaseStream { name, max_priority }));
                }
            }
            op::CLOSE => {
                if let Some(id) = session(&mut s) {
                    // A session emits Closed once, as its last event.
                    if closed.insert(id) {
                        live.retain(|(owner, _), _| *owner != id);
                        sessions.retain(|&other| other != id);
                        sent = Some((id, SessionEvent::Closed));
                    }
                }
            }
            op::ADVANCE => {
                now += Duration::from_millis(u64::from(s.u16()));
                broker.handle_timeout(now);
            }
            op::RELAY => {
                if let Some(id) = session(&mut s) {
                    let target = format!("c{}", s.u8() % 32);
                    let body = Bytes::copy_from_slice(s.run());
                    sent = Some((id, SessionEvent::Relay { target, body }));
                }
            }
            op::BROADCAST => {
                if let Some(id) = session(&mut s) {
                    let body = Bytes::copy_from_slice(s.run());
                    sent = Some((id, SessionEvent::Broadcast { body }));
                }
            }
            op::WATCH => {
                if let Some(id) = session(&mut s) {
                    let target = format!("c{}", s.u8() % 32);
                    sent = Some((id, SessionEvent::Watch { target }));
                }
            }
            _ => {
                let id = broker.open_session();
                opened.insert(id);
                let event = SessionEvent::Publish {
                    stream: 1,
                    name: "a".to_owned(),
                    kind: PublishKind::Live,
                    seq: 1,
                    query: String::new(),
                    priority: 0,
                };
                broker.handle_event(now, id, event);
            }
        }
        if let Some((id, event)) = sent {
            broker.handle_event(now, id, event);
        }
        while let Some((to, event)) = broker.poll_output() {
            assert!(
                opened.contains(&to),
                "event for a session never opened: {to}"
            );
            assert!(
                !closed.contains(&to),
                "event for closed session {to}: {event:?}"
            );
            match event {
                BrokerEvent::PublishAccepted { stream, .. } => {
                    let name = asked.get(&(to, stream)).copied().unwrap_or("?");
                    let app = apps.get(&to).copied().unwrap_or("?");
                    let twice = live.iter().any(|(&(other, other_stream), &(a, n))| {
                        (other, other_stream) != (to, stream) && a == app && n == name
                    });
                    assert!(!twice, "{app}/{name} accepted for two live publishers");
                    live.insert((to, stream), (app, name));
                }
                BrokerEvent::PublishEvicted { stream, .. } => {
                    live.remove(&(to, stream));
                }
                _ => {}
            }
        }
        if let Err(e) = broker.check_invariants() {
            panic!("broker bookkeeping: {e}");
        }
        assert!(broker.stream_count() <= 8, "max_streams exceeded");
    }
}
