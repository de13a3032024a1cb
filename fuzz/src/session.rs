//! One server [`Session`] fed arbitrary bytes, timer events and broker
//! events, with a loopback broker stand-in: what the session publishes is
//! played back to its own players, and its relays, broadcasts and watches
//! answered, so media and TC messages flow without a second machine.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::chunk::DecoderLimits;
use tincan_core::entropy::SeededEntropy;
use tincan_core::event::{BrokerEvent, Frame, FrameKind, PublishRejection, SessionEvent};
use tincan_core::session::{RealTimeConfig, Session, SessionConfig};
use tincan_core::time::MediaTime;

use crate::script::Script;

/// The backlog budget the fuzzed sessions run with: small, so the fuzzer
/// reaches it.
pub const MAX_BACKLOG_BYTES: usize = 64 * 1024;
/// What the backlog may hold beyond the droppable budget: configuration,
/// data frames and in-band statuses, which are never dropped and bounded
/// separately (at least 1 MiB).
pub const FIXED_BACKLOG_BYTES: usize = 1024 * 1024;
/// The decoder's buffered-bytes bound in the fuzzed sessions.
pub const MAX_BUFFERED_BYTES: usize = 512 * 1024;

/// Session knobs for fuzzing: real limits, scaled down so the fuzzer hits
/// them.
pub fn config() -> SessionConfig {
    let defaults = SessionConfig::default();
    SessionConfig {
        real_time: RealTimeConfig {
            max_backlog_bytes: MAX_BACKLOG_BYTES,
            ..RealTimeConfig::default()
        },
        decoder_limits: DecoderLimits {
            max_message_len: MAX_BUFFERED_BYTES / 2,
            max_buffered_bytes: MAX_BUFFERED_BYTES,
            ..defaults.decoder_limits
        },
        ..defaults
    }
}

/// Asserts the memory a session holds stays within its configured bounds.
pub fn check_session_memory(session: &Session) {
    assert!(
        session.backlog_bytes() <= MAX_BACKLOG_BYTES + FIXED_BACKLOG_BYTES,
        "backlog {} past its bound",
        session.backlog_bytes()
    );
    assert!(
        session.input_buffered_bytes() <= MAX_BUFFERED_BYTES,
        "decoder holds {} bytes",
        session.input_buffered_bytes()
    );
}

/// Operation codes of the [`session`] script (the byte is taken modulo 8).
pub mod op {
    /// + run: bytes from the peer.
    pub const INPUT: u8 = 0;
    /// + u16: that many milliseconds pass.
    pub const ADVANCE: u8 = 1;
    /// + u8: the socket takes that many transmits (0: until none is left).
    pub const DRAIN: u8 = 2;
    /// The peer hangs up.
    pub const EOF: u8 = 3;
    /// + event (see `broker_event`): the broker says something.
    pub const BROKER: u8 = 4;
    /// The server closes the session.
    pub const CLOSE: u8 = 5;
    /// Graceful shutdown notice.
    pub const SHUTDOWN: u8 = 6;
    /// Time jumps to the session's next deadline.
    pub const DEADLINE: u8 = 7;
}

/// A broker event made from the script: kind byte, stream byte, then for a
/// relay a run body, for a frame: flags byte, u32 timestamp, run payload.
fn broker_event(s: &mut Script<'_>, streams: &[u32]) -> BrokerEvent {
    let kind = s.u8();
    let pick = s.u8();
    // Mostly a stream the session actually uses, sometimes any id.
    let stream = if pick < 200 && !streams.is_empty() {
        streams[usize::from(pick) % streams.len()]
    } else {
        u32::from(pick)
    };
    match kind % 8 {
        0 => BrokerEvent::PublishAccepted {
            stream,
            seq: 1,
            hashname: "sha256:00".to_owned(),
        },
        1 => BrokerEvent::PublishRejected {
            stream,
            seq: 1,
            reason: PublishRejection::AlreadyPublishing,
        },
        2 => BrokerEvent::PublishEvicted {
            stream,
            reason: tincan_core::event::Eviction::Released,
        },
        3 => BrokerEvent::PublishNotify {
            stream,
            priority: 0,
            publisher_name: None,
        },
        4 => BrokerEvent::UnpublishNotify { stream },
        5 => BrokerEvent::Relay {
            body: Bytes::copy_from_slice(s.run()),
        },
        6 => BrokerEvent::Disconnected {
            connection_id: format!("c{stream}"),
        },
        _ => {
            let flags = s.u8();
            let timestamp = MediaTime::from_millis(s.u32());
            let payload = Bytes::copy_from_slice(s.run());
            BrokerEvent::Frame {
                stream,
                frame: Frame {
                    kind: match flags % 3 {
                        0 => FrameKind::Audio,
                        1 => FrameKind::Video,
                        _ => FrameKind::Data,
                    },
                    timestamp,
                    payload,
                    keyframe: flags & 0x10 != 0,
                    config: flags & 0x20 != 0,
                },
            }
        }
    }
}

/// One session: arbitrary bytes, timer events and broker events never
/// panic, `Closed` is emitted once and last, a closed session hands out
/// nothing more, and the session's memory
/// (backlog, decoder buffers) stays within its configured bounds.
///
/// Script: u8 flags (bit 0 set: no loopback broker, publishes and plays
/// get no automatic answer), then operations (see [`op`]).
pub fn session(data: &[u8]) {
    let mut s = Script::new(data);
    let manual = s.u8() & 1 == 1;
    let start = Instant::now();
    let mut now = start;
    let mut session = Session::new(now, config(), &mut SeededEntropy::new(3));
    let mut playing: BTreeSet<u32> = BTreeSet::new();
    let mut publishing: BTreeSet<u32> = BTreeSet::new();
    let mut closed = false;
    while let Some(code) = s.op() {
        match code % 8 {
            op::INPUT => {
                let bytes = s.run();
                let _ = session.handle_input(now, bytes);
            }
            op::ADVANCE => {
                now += Duration::from_millis(u64::from(s.u16()));
                session.handle_timeout(now);
            }
            op::DRAIN => {
                let n = s.u8();
                let mut taken = 0usize;
                // Bounded even when draining "everything": a session never
                // has more than its queues to give.
                while n == 0 || taken < usize::from(n) {
                    if session.poll_transmit(now).is_none() {
                        break;
                    }
                    taken += 1;
                    assert!(taken < 1_000_000, "poll_transmit never runs dry");
                }
            }
            op::EOF => session.handle_eof(now),
            op::BROKER => {
                let streams: Vec<u32> = playing.iter().chain(&publishing).copied().collect();
                let event = broker_event(&mut s, &streams);
                session.handle_broker_event(now, event);
            }
            op::CLOSE => session.close(now, "fuzz"),
            op::SHUTDOWN => session.notify_shutdown(now),
            _ => {
                if let Some(deadline) = session.poll_timeout() {
                    now = now.max(deadline);
                }
                session.handle_timeout(now);
            }
        }
        // The loopback broker: answer, and play what is published back to
        // every player of this session.
        while let Some(event) = session.poll_event() {
            assert!(!closed, "an event after Closed: {event:?}");
            let answers: Vec<BrokerEvent> = match event {
                SessionEvent::Closed => {
                    closed = true;
                    vec![]
                }
                SessionEvent::Publish { stream, .. } if !manual => {
                    publishing.insert(stream);
                    let mut out = vec![BrokerEvent::PublishAccepted {
                        stream,
                        seq: 1,
                        hashname: "sha256:00".to_owned(),
                    }];
                    out.extend(playing.iter().map(|&stream| BrokerEvent::PublishNotify {
                        stream,
                        priority: 0,
                        publisher_name: None,
                    }));
                    out
                }
                SessionEvent::Unpublish { stream } => {
                    publishing.remove(&stream);
                    vec![]
                }
                SessionEvent::Play { stream, .. } => {
                    playing.insert(stream);
                    vec![]
                }
                SessionEvent::StopPlay { stream } => {
                    playing.remove(&stream);
                    vec![]
                }
                SessionEvent::Frame { frame, .. } | SessionEvent::SetDataFrame { frame, .. }
                    if !manual =>
                {
                    playing
                        .iter()
                        .map(|&stream| BrokerEvent::Frame {
                            stream,
                            frame: frame.clone(),
                        })
                        .collect()
                }
                // TC messaging to itself: a relay or broadcast comes back,
                // a watch is answered as if the target were gone.
                SessionEvent::Relay { body, .. } | SessionEvent::Broadcast { body } if !manual => {
                    vec![BrokerEvent::Relay { body }]
                }
                SessionEvent::Watch { target } if !manual => {
                    vec![BrokerEvent::Disconnected {
                        connection_id: target,
                    }]
                }
                _ => vec![],
            };
            for answer in answers {
                session.handle_broker_event(now, answer);
            }
        }
        check_session_memory(&session);
        if session.is_closed() {
            assert!(closed, "closed without emitting Closed");
            assert!(
                session.poll_transmit(now).is_none(),
                "a closed session still has output"
            );
        }
    }
}
