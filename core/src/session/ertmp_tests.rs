//! Enhanced RTMP v2 in a session: the `connect` negotiation, multitrack
//! delivery (every track to players that announced it, one track as
//! single-track packets to the others, track selection), and reconnect
//! requests.

use bytes::Bytes;

use super::test_client::{Pair, Received};
use super::*;
use crate::message::{Connect, Play};

/// `connect` to App "live" with `extra` members in the command object.
fn connect_with(extra: Vec<(&str, Value)>) -> Command {
    let mut members = vec![
        ("app", Value::from("live")),
        ("tcUrl", Value::from("rtmp://localhost/live")),
    ];
    members.extend(extra);
    Command::Connect(Connect {
        transaction_id: 1.0,
        properties: Value::object(members),
        args: vec![],
    })
}

/// A session connected with `extra` announced, its replies read.
fn connected(extra: Vec<(&str, Value)>) -> Pair {
    let mut p = Pair::handshaken();
    p.command(0, connect_with(extra));
    p.receive();
    p.take_events();
    p
}

fn caps_ex(flags: u32) -> Vec<(&'static str, Value)> {
    vec![("capsEx", Value::Number(f64::from(flags)))]
}

/// Plays `name` (with `options`) on a new stream, accepted; returns it.
fn play(p: &mut Pair, name: &str, options: Option<Value>) -> u32 {
    p.command(
        0,
        Command::CreateStream {
            transaction_id: 2.0,
        },
    );
    let got = p.receive();
    let stream = got
        .iter()
        .find_map(|r| match &r.msg {
            Message::Command {
                command: Command::Result { args, .. },
                ..
            } => args.first().and_then(Value::as_f64),
            _ => None,
        })
        .expect("createStream result") as u32;
    p.command(
        stream,
        Command::Play(Play {
            transaction_id: 0.0,
            name: name.to_owned(),
            start: -2.0,
            duration: -1.0,
            reset: true,
            options,
        }),
    );
    p.accept_plays();
    p.receive();
    p.take_events();
    stream
}

fn give(
    p: &mut Pair,
    stream: u32,
    kind: FrameKind,
    ts: u32,
    payload: Bytes,
    key: bool,
    config: bool,
) {
    let frame = Frame {
        kind,
        timestamp: MediaTime::from_millis(ts),
        payload,
        keyframe: key,
        config,
    };
    p.session
        .handle_broker_event(p.now, BrokerEvent::Frame { stream, frame });
}

/// The audio and video payloads the player received, in order.
fn media(got: &[Received]) -> Vec<(u8, Vec<u8>)> {
    got.iter()
        .filter(|r| matches!(r.raw.type_id, 8 | 9))
        .map(|r| (r.raw.type_id, r.raw.payload.to_vec()))
        .collect()
}

/// A ManyTracks multitrack video message of `avc1` tracks.
fn multi_avc(frame_type: u8, packet_type: u8, tracks: &[(u8, &[u8])]) -> Bytes {
    let mut v = vec![0x80 | frame_type << 4 | 6, 0x10 | packet_type];
    v.extend_from_slice(b"avc1");
    for (id, body) in tracks {
        v.push(*id);
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(body);
    }
    Bytes::from(v)
}

/// A ManyTracks multitrack audio message of `mp4a` tracks.
fn multi_aac(packet_type: u8, tracks: &[(u8, &[u8])]) -> Bytes {
    let mut v = vec![0x95, 0x10 | packet_type];
    v.extend_from_slice(b"mp4a");
    for (id, body) in tracks {
        v.push(*id);
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(body);
    }
    Bytes::from(v)
}

/// A two-track publish (config, a large keyframe with a composition time,
/// an inter frame as CodedFramesX, AAC config and a frame), as messages,
/// and what a single-track publisher of each track would have sent.
struct TwoTracks {
    sent: Vec<(FrameKind, Bytes, bool, bool)>,
    /// Per track id: the legacy payloads, in order.
    legacy: [Vec<(u8, Vec<u8>)>; 2],
}

fn two_tracks() -> TwoTracks {
    let big = |fill: u8| vec![fill; 9000];
    let (k0, k1) = (big(0xA0), big(0xA1));
    let key0 = [&[0, 0, 0x28][..], &k0].concat();
    let key1 = [&[0, 0, 0x14][..], &k1].concat();
    let sent = vec![
        (
            FrameKind::Video,
            multi_avc(1, 0, &[(0, b"cfg-zero"), (1, b"cfg-one")]),
            false,
            true,
        ),
        (
            FrameKind::Audio,
            multi_aac(0, &[(0, &[0x12, 0x10]), (1, &[0x11, 0x90])]),
            false,
            true,
        ),
        (
            FrameKind::Video,
            multi_avc(1, 1, &[(0, &key0), (1, &key1)]),
            true,
            false,
        ),
        (
            FrameKind::Audio,
            multi_aac(1, &[(0, &[0x21, 0x00]), (1, &[0x21, 0x11])]),
            false,
            false,
        ),
        (
            FrameKind::Video,
            multi_avc(2, 3, &[(0, &[0xE0]), (1, &[0xE1])]),
            false,
            false,
        ),
    ];
    let legacy = |cfg: &[u8], key: &[u8], asc: &[u8], aac: &[u8], inter: u8| {
        vec![
            (9, [&[0x17, 0, 0, 0, 0][..], cfg].concat()),
            (8, [&[0xAF, 0][..], asc].concat()),
            (9, [&[0x17, 1][..], key].concat()),
            (8, [&[0xAF, 1][..], aac].concat()),
            (9, vec![0x27, 1, 0, 0, 0, inter]),
        ]
    };
    TwoTracks {
        sent,
        legacy: [
            legacy(b"cfg-zero", &key0, &[0x12, 0x10], &[0x21, 0x00], 0xE0),
            legacy(b"cfg-one", &key1, &[0x11, 0x90], &[0x21, 0x11], 0xE1),
        ],
    }
}

fn give_all(p: &mut Pair, stream: u32, t: &TwoTracks) {
    for (i, (kind, payload, key, config)) in t.sent.iter().enumerate() {
        give(
            p,
            stream,
            *kind,
            40 * i as u32,
            payload.clone(),
            *key,
            *config,
        );
    }
}

// ---- negotiation -------------------------------------------------------------

#[test]
fn connect_result_states_the_servers_enhanced_rtmp_support() {
    let mut p = Pair::handshaken();
    p.command(0, connect_with(vec![]));
    let got = p.receive();
    let result = got
        .iter()
        .find(|r| r.command() == Some("_result"))
        .expect("_result");
    let Message::Command {
        command: Command::Result { command_object, .. },
        ..
    } = &result.msg
    else {
        panic!("{result:?}")
    };
    let caps = EnhancedCaps::from_object(command_object);
    assert_eq!(caps, EnhancedCaps::server());
    assert_eq!(caps.caps_ex, Some(0x0F));
    assert!(caps.fourcc_list.iter().any(|f| f == "hvc1"));
    assert_eq!(
        caps.video_fourcc_info,
        vec![("*".to_owned(), FOURCC_CAN_FORWARD)]
    );
    // The legacy members are still there.
    assert_eq!(
        command_object.get("capabilities").and_then(Value::as_f64),
        Some(31.0)
    );
}

#[test]
fn the_session_remembers_what_the_client_announced() {
    let mut p = Pair::handshaken();
    p.command(
        0,
        connect_with(vec![
            (
                "fourCcList",
                Value::StrictArray(vec![Value::from("hvc1"), Value::from("av01")]),
            ),
            (
                "videoFourCcInfoMap",
                Value::object([("hvc1", Value::Number(3.0))]),
            ),
            (
                "audioFourCcInfoMap",
                Value::object([("*", Value::Number(4.0))]),
            ),
            ("capsEx", Value::Number(3.0)),
        ]),
    );
    let caps = p.session.client_caps().clone();
    assert_eq!(caps.fourcc_list, ["hvc1", "av01"]);
    assert_eq!(caps.video_fourcc_info, vec![("hvc1".to_owned(), 3)]);
    assert_eq!(caps.audio_fourcc_info, vec![("*".to_owned(), 4)]);
    assert!(caps.supports_multitrack() && caps.supports_reconnect());
    let events = p.take_events();
    let Some(SessionEvent::Connected(info)) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(info.enhanced_caps(), caps);

    let legacy = connected(vec![]);
    assert!(!legacy.session.client_caps().is_enhanced());
}

// ---- multitrack delivery -------------------------------------------------------

#[test]
fn a_legacy_player_gets_track_zero_as_a_single_track_publisher_sends_it() {
    let t = two_tracks();
    let mut p = connected(vec![]);
    let s = play(&mut p, "cam", None);
    give_all(&mut p, s, &t);
    assert_eq!(media(&p.receive()), t.legacy[0]);
}

#[test]
fn a_player_that_announced_multitrack_gets_every_message_as_sent() {
    let t = two_tracks();
    let mut p = connected(caps_ex(CAPS_EX_MULTITRACK));
    let s = play(&mut p, "cam", None);
    give_all(&mut p, s, &t);
    let sent: Vec<(u8, Vec<u8>)> = t
        .sent
        .iter()
        .map(|(kind, payload, ..)| {
            let type_id = if *kind == FrameKind::Video { 9 } else { 8 };
            (type_id, payload.to_vec())
        })
        .collect();
    assert_eq!(media(&p.receive()), sent);
}

#[test]
fn a_player_picks_tracks_in_its_query_or_play_options() {
    let t = two_tracks();
    let mut p = connected(vec![]);
    let s = play(&mut p, "cam?videoTrack=1&audioTrack=1", None);
    give_all(&mut p, s, &t);
    assert_eq!(media(&p.receive()), t.legacy[1]);

    // In the options object, and for a multitrack-capable player too.
    let mut p = connected(caps_ex(CAPS_EX_MULTITRACK));
    let options = Value::object([("videoTrack", Value::Number(1.0))]);
    let s = play(&mut p, "cam", Some(options));
    give_all(&mut p, s, &t);
    let got = media(&p.receive());
    let video: Vec<_> = got.iter().filter(|(ty, _)| *ty == 9).cloned().collect();
    let expected: Vec<_> = t.legacy[1]
        .iter()
        .filter(|(ty, _)| *ty == 9)
        .cloned()
        .collect();
    assert_eq!(video, expected);
    // Audio stays as sent: every track.
    assert_eq!(got.iter().filter(|(ty, _)| *ty == 8).count(), 2);
    assert!(got.iter().any(|(ty, p)| *ty == 8 && p[0] == 0x95));

    // `all` asks for every track without announcing anything.
    let mut p = connected(vec![]);
    let s = play(&mut p, "cam?videoTrack=all&audioTrack=all", None);
    give_all(&mut p, s, &t);
    assert_eq!(media(&p.receive()).len(), t.sent.len());
}

#[test]
fn ffmpeg_layout_legacy_track_zero_plus_one_track_messages() {
    // FFmpeg 8+ writes track 0 as plain legacy tags and track 1 as
    // OneTrack multitrack messages. A legacy player gets track 0 as is;
    // one that picked track 1 gets it rewritten, starting at its own
    // keyframe even when the other track's keyframe came first.
    let one_track = |first: u8, packet_type: u8, body: &[u8]| {
        let mut v = vec![first, packet_type];
        v.extend_from_slice(b"avc1");
        v.push(1);
        v.extend_from_slice(body);
        Bytes::from(v)
    };
    let cfg0 = Bytes::from_static(&[0x17, 0, 0, 0, 0, 0xC0]);
    let cfg1 = one_track(0x96, 0x00, &[0xC1]);
    let key0 = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0xA0]);
    let inter1 = one_track(0xA6, 0x01, &[0, 0, 0, 0xB1]);
    let key1 = one_track(0x96, 0x01, &[0, 0, 0, 0xA1]);
    let inter0 = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0xB0]);
    let feed = |p: &mut Pair, s: u32| {
        give(p, s, FrameKind::Video, 0, cfg0.clone(), false, true);
        give(p, s, FrameKind::Video, 0, cfg1.clone(), false, true);
        // Track 1's inter frame before its keyframe: undecodable.
        give(p, s, FrameKind::Video, 10, inter1.clone(), false, false);
        give(p, s, FrameKind::Video, 20, key0.clone(), true, false);
        give(p, s, FrameKind::Video, 20, key1.clone(), true, false);
        give(p, s, FrameKind::Video, 40, inter0.clone(), false, false);
    };
    let mut p = connected(vec![]);
    let s = play(&mut p, "cam", None);
    feed(&mut p, s);
    let got: Vec<Vec<u8>> = media(&p.receive()).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, [cfg0.to_vec(), key0.to_vec(), inter0.to_vec()]);

    let mut p = connected(vec![]);
    let s = play(&mut p, "cam?videoTrack=1", None);
    feed(&mut p, s);
    let got: Vec<Vec<u8>> = media(&p.receive()).into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        got,
        [vec![0x17, 0, 0, 0, 0, 0xC1], vec![0x17, 1, 0, 0, 0, 0xA1]]
    );
}

// ---- reconnect request ---------------------------------------------------------

#[test]
fn a_reconnect_request_goes_to_a_client_that_announced_it_with_tc_url() {
    let mut p = connected(caps_ex(CAPS_EX_RECONNECT));
    assert!(p
        .session
        .request_reconnect(p.now, Some("rtmp://b.example/live"), "moving"));
    let got = p.receive();
    let [r] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!((r.raw.stream_id, r.command()), (0, Some("onStatus")));
    assert_eq!(r.code(), Some("NetConnection.Connect.ReconnectRequest"));
    assert_eq!(r.info_str("level"), Some("status"));
    assert_eq!(r.info_str("tcUrl"), Some("rtmp://b.example/live"));
    assert_eq!(r.info_str("description"), Some("moving"));
    // Without a target the client reconnects to its own tcUrl.
    assert!(p.session.request_reconnect(p.now, None, "again"));
    let got = p.receive();
    assert_eq!(got[0].info_str("tcUrl"), None);
    assert!(p.session.is_connected(), "still served until it leaves");

    let mut legacy = connected(caps_ex(CAPS_EX_MULTITRACK));
    assert!(!legacy.session.request_reconnect(legacy.now, None, "x"));
    assert!(legacy.receive().is_empty());
}
