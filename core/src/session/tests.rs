//! Behaviour of a [`Session`] driven by a scripted client and a fake broker
//! (the tests hand it [`BrokerEvent`]s themselves), on a virtual clock.

use std::time::Duration;

use bytes::Bytes;

use super::test_client::{connect_command, Pair, Received};
use super::*;
use crate::chunk::ChunkError;
use crate::event::{PlayRequest, PublishRejection};
use crate::message::{BandwidthLimit, Connect, Data, GenericCommand, Play, PublishKind};

// ---- builders -------------------------------------------------------------

fn avc_config() -> Bytes {
    Bytes::from_static(&[0x17, 0x00, 0, 0, 0, b'a', b'v', b'c', b'C'])
}

fn avc_key(len: usize) -> Bytes {
    let mut v = vec![0x17, 0x01, 0, 0, 0];
    v.resize(len.max(6), 0xAB);
    Bytes::from(v)
}

fn avc_inter(len: usize) -> Bytes {
    let mut v = vec![0x27, 0x01, 0, 0, 0];
    v.resize(len.max(6), 0xCD);
    Bytes::from(v)
}

fn aac_config() -> Bytes {
    Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10])
}

fn aac_raw(len: usize) -> Bytes {
    let mut v = vec![0xAF, 0x01];
    v.resize(len.max(3), 0x21);
    Bytes::from(v)
}

fn frame(kind: FrameKind, ts: u32, payload: Bytes, keyframe: bool, config: bool) -> Frame {
    Frame {
        kind,
        timestamp: MediaTime::from_millis(ts),
        payload,
        keyframe,
        config,
    }
}

fn key_frame(ts: u32, len: usize) -> Frame {
    frame(FrameKind::Video, ts, avc_key(len), true, false)
}

fn inter_frame(ts: u32, len: usize) -> Frame {
    frame(FrameKind::Video, ts, avc_inter(len), false, false)
}

fn audio_frame(ts: u32, len: usize) -> Frame {
    frame(FrameKind::Audio, ts, aac_raw(len), false, false)
}

fn video_config_frame() -> Frame {
    frame(FrameKind::Video, 0, avc_config(), false, true)
}

fn create_stream_cmd(tid: f64) -> Command {
    Command::CreateStream {
        transaction_id: tid,
    }
}

fn publish_cmd(name: Option<&str>) -> Command {
    Command::Publish {
        transaction_id: 0.0,
        name: name.map(str::to_owned),
        kind: PublishKind::Live,
    }
}

fn play_cmd(name: &str) -> Command {
    Command::Play(Play {
        transaction_id: 0.0,
        name: name.to_owned(),
        start: -2.0,
        duration: -1.0,
        reset: true,
        options: None,
    })
}

fn other_cmd(name: &str, tid: f64) -> Command {
    Command::Other(GenericCommand {
        name: name.to_owned(),
        transaction_id: tid,
        command_object: Value::Null,
        args: vec![],
    })
}

/// createStream; returns the id from the `_result`.
fn create_stream(p: &mut Pair) -> u32 {
    p.command(0, create_stream_cmd(2.0));
    let got = p.receive();
    let [r] = got.as_slice() else {
        panic!("one reply expected, got {got:?}");
    };
    match &r.msg {
        Message::Command {
            command: Command::Result { args, .. },
            ..
        } => args[0].as_f64().expect("stream id") as u32,
        other => panic!("expected _result, got {other:?}"),
    }
}

/// A connected publisher whose publish of "cam" on stream 1 was accepted.
fn publisher() -> Pair {
    let mut p = Pair::connected();
    let s = create_stream(&mut p);
    p.command(s, publish_cmd(Some("cam")));
    p.session.handle_broker_event(
        p.now,
        BrokerEvent::PublishAccepted {
            stream: s,
            seq: 1,
            hashname: "sha256:x".to_owned(),
        },
    );
    p.receive();
    p.take_events();
    p
}

/// A connected player playing "cam" on a fresh stream, its replies read.
fn player_with(config: SessionConfig) -> (Pair, u32) {
    let mut p = Pair::connected_with(config);
    let s = create_stream(&mut p);
    p.command(s, play_cmd("cam"));
    p.accept_plays();
    p.receive();
    p.take_events();
    (p, s)
}

fn player() -> (Pair, u32) {
    player_with(SessionConfig::default())
}

fn give(p: &mut Pair, stream: u32, frame: Frame) {
    p.session
        .handle_broker_event(p.now, BrokerEvent::Frame { stream, frame });
}

/// The media (audio/video/data) messages among `got`.
fn media(got: &[Received]) -> Vec<&Received> {
    got.iter()
        .filter(|r| matches!(r.raw.type_id, 8 | 9 | 18) && r.raw.stream_id != 0)
        .filter(|r| {
            !matches!(&r.msg, Message::Data { data, .. } if data.handler() == "|RtmpSampleAccess")
        })
        .collect()
}

fn codes(got: &[Received]) -> Vec<&str> {
    got.iter().filter_map(Received::code).collect()
}

fn frame_events(events: &[SessionEvent]) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Frame { frame, .. } => Some(frame),
            _ => None,
        })
        .collect()
}

// ---- connect ----------------------------------------------------------------

#[test]
fn connect_is_answered_with_window_bandwidth_chunk_size_then_result() {
    let mut p = Pair::handshaken();
    p.command(0, connect_command("live", 0.0));
    let got = p.receive();
    let kinds: Vec<&Message> = got.iter().map(|r| &r.msg).collect();
    assert_eq!(kinds[0], &Message::WindowAckSize(2_500_000));
    assert_eq!(
        kinds[1],
        &Message::SetPeerBandwidth {
            size: 2_500_000,
            limit: BandwidthLimit::Dynamic
        }
    );
    assert_eq!(kinds[2], &Message::SetChunkSize(4096));
    assert_eq!(got[3].command(), Some("_result"));
    assert_eq!(got.len(), 4);
    assert!(got[..3]
        .iter()
        .all(|r| r.raw.csid == 2 && r.raw.stream_id == 0));
}

#[test]
fn connect_result_carries_success_object_encoding_and_connection_id() {
    let mut p = Pair::handshaken();
    p.command(0, connect_command("live", 3.0));
    let got = p.receive();
    let result = &got[3];
    let Message::Command {
        command:
            Command::Result {
                transaction_id,
                command_object,
                ..
            },
        ..
    } = &result.msg
    else {
        panic!("expected _result, got {result:?}");
    };
    assert_eq!(*transaction_id, 1.0);
    assert_eq!(
        command_object.get("fmsVer").and_then(Value::as_str),
        Some("FMS/3,5,7,7009")
    );
    assert_eq!(
        command_object.get("capabilities").and_then(Value::as_f64),
        Some(31.0)
    );
    assert_eq!(result.code(), Some("NetConnection.Connect.Success"));
    assert_eq!(result.info_str("level"), Some("status"));
    let info = result.info().unwrap();
    assert_eq!(
        info.get("objectEncoding").and_then(Value::as_f64),
        Some(3.0)
    );
    let id = result.info_str("connectionID").unwrap();
    assert_eq!(id, p.session.connection_id());
    assert_eq!(id.len(), 32);
    assert!(id
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
}

#[test]
fn connect_emits_connected_exactly_once_with_app_and_id() {
    let mut p = Pair::handshaken();
    p.command(0, connect_command("live/123", 0.0));
    let id = p.session.connection_id().to_owned();
    let events = p.take_events();
    let [SessionEvent::Connected(info)] = events.as_slice() else {
        panic!("one Connected expected, got {events:?}");
    };
    assert_eq!(
        (info.app.as_str(), info.connection_id.as_str()),
        ("live/123", id.as_str())
    );
    assert_eq!(p.session.app(), Some("live/123"));
}

#[test]
fn connect_app_falls_back_to_tc_url_path() {
    let mut p = Pair::handshaken();
    p.command(
        0,
        Command::Connect(Connect {
            transaction_id: 1.0,
            properties: Value::object([("tcUrl", Value::from("rtmp://h:1935/live/x?k=1"))]),
            args: vec![],
        }),
    );
    assert_eq!(p.session.app(), Some("live/x"));
}

#[test]
fn connect_without_app_or_tc_url_is_rejected_and_closes() {
    let mut p = Pair::handshaken();
    p.command(
        0,
        Command::Connect(Connect {
            transaction_id: 1.0,
            properties: Value::object([("flashVer", Value::from("LNX 9,0,124,2"))]),
            args: vec![],
        }),
    );
    let got = p.receive();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].command(), Some("_error"));
    assert_eq!(got[0].code(), Some("NetConnection.Connect.Rejected"));
    assert_eq!(got[0].info_str("level"), Some("error"));
    assert!(matches!(
        p.session.error(),
        Some(SessionError::ConnectRejected(_))
    ));
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
    assert!(p.session.is_closed());
}

#[test]
fn amf3_connect_is_answered_as_an_amf3_command() {
    let mut p = Pair::handshaken();
    let msg = Message::Command {
        encoding: Encoding::Amf3,
        command: connect_command("live", 3.0),
    };
    p.send(3, 0, 0, &msg).unwrap();
    let got = p.receive();
    let result = &got[3];
    assert_eq!(result.raw.type_id, type_id::COMMAND_AMF3);
    assert_eq!(result.raw.payload[0], 0);
    assert_eq!(result.command(), Some("_result"));
    assert_eq!(result.code(), Some("NetConnection.Connect.Success"));
}

#[test]
fn command_before_connect_closes_with_protocol_error() {
    let mut p = Pair::handshaken();
    p.command(0, create_stream_cmd(2.0));
    assert!(matches!(p.session.error(), Some(SessionError::Protocol(_))));
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
}

#[test]
fn second_connect_closes_with_protocol_error() {
    let mut p = Pair::connected();
    p.command(0, connect_command("live", 0.0));
    assert!(matches!(p.session.error(), Some(SessionError::Protocol(_))));
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
}

// ---- NetConnection commands -------------------------------------------------

#[test]
fn pipelined_release_fcpublish_create_stream_are_all_answered_in_order() {
    let mut p = Pair::connected();
    let mut bytes = Vec::new();
    for command in [
        Command::ReleaseStream {
            transaction_id: 2.0,
            name: "cam".to_owned(),
        },
        Command::FcPublish {
            transaction_id: 3.0,
            name: "cam".to_owned(),
        },
        create_stream_cmd(4.0),
    ] {
        let msg = Message::Command {
            encoding: Encoding::Amf0,
            command,
        };
        let raw = msg.to_raw(3, MediaTime::ZERO, 0).unwrap();
        bytes.extend(p.encode(&raw));
    }
    p.input(&bytes).unwrap();
    let got = p.receive();
    let seen: Vec<(Option<&str>, f64)> = got
        .iter()
        .map(|r| match &r.msg {
            Message::Command { command, .. } => (Some(command.name()), command.transaction_id()),
            _ => (None, -1.0),
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some("_result"), 2.0),
            (Some("_result"), 3.0),
            (Some("onFCPublish"), 0.0),
            (Some("_result"), 4.0),
        ]
    );
    assert_eq!(got[2].code(), Some("NetStream.Publish.Start"));
    assert_eq!(got[2].info_str("description"), Some("cam"));
    let Message::Command {
        command: Command::Result { args, .. },
        ..
    } = &got[3].msg
    else {
        unreachable!()
    };
    assert_eq!(args[0].as_f64(), Some(1.0));
    assert_eq!(
        p.take_events(),
        [SessionEvent::ReleaseStream {
            name: "cam".to_owned(),
            max_priority: 0,
        }]
    );
}

#[test]
fn release_stream_without_transaction_id_gets_no_reply() {
    let mut p = Pair::connected();
    p.command(
        0,
        Command::ReleaseStream {
            transaction_id: 0.0,
            name: "cam".to_owned(),
        },
    );
    assert!(p.receive().is_empty());
    assert_eq!(p.take_events().len(), 1);
}

#[test]
fn stream_ids_count_up_and_are_never_reused() {
    let mut p = Pair::connected();
    assert_eq!(create_stream(&mut p), 1);
    assert_eq!(create_stream(&mut p), 2);
    p.command(
        0,
        Command::DeleteStream {
            transaction_id: 0.0,
            stream_id: 2.0,
        },
    );
    assert!(p.receive().is_empty());
    assert_eq!(create_stream(&mut p), 3);
}

#[test]
fn create_stream_beyond_the_limit_gets_call_failed() {
    let config = SessionConfig {
        max_streams: 2,
        ..SessionConfig::default()
    };
    let mut p = Pair::connected_with(config);
    create_stream(&mut p);
    create_stream(&mut p);
    p.command(0, create_stream_cmd(5.0));
    let got = p.receive();
    assert_eq!(got[0].command(), Some("_error"));
    assert_eq!(got[0].code(), Some("NetConnection.Call.Failed"));
    p.command(
        0,
        Command::DeleteStream {
            transaction_id: 0.0,
            stream_id: 1.0,
        },
    );
    assert_eq!(create_stream(&mut p), 3);
}

#[test]
fn unknown_command_with_transaction_id_gets_call_failed() {
    let mut p = Pair::connected();
    p.command(0, other_cmd("frobnicate", 7.0));
    let got = p.receive();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].command(), Some("_error"));
    let Message::Command { command, .. } = &got[0].msg else {
        unreachable!()
    };
    assert_eq!(command.transaction_id(), 7.0);
    assert_eq!(got[0].code(), Some("NetConnection.Call.Failed"));
    assert_eq!(
        got[0].info_str("description"),
        Some("unknown command frobnicate")
    );
    assert!(p.session.error().is_none());
}

#[test]
fn unknown_command_without_transaction_id_is_ignored() {
    let mut p = Pair::connected();
    p.command(0, other_cmd("frobnicate", 0.0));
    assert!(p.receive().is_empty());
    assert!(p.session.error().is_none());
}

#[test]
fn check_bw_and_get_stream_length_are_answered() {
    let mut p = Pair::connected();
    p.command(
        0,
        Command::CheckBw {
            transaction_id: 3.0,
        },
    );
    p.command(
        0,
        Command::GetStreamLength {
            transaction_id: 4.0,
            name: "cam".to_owned(),
        },
    );
    let got = p.receive();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.command() == Some("_result")));
}

#[test]
fn client_results_and_statuses_are_ignored() {
    let mut p = Pair::connected();
    p.command(
        0,
        Command::Result {
            transaction_id: 1.0,
            command_object: Value::Null,
            args: vec![],
        },
    );
    assert!(p.receive().is_empty());
    assert!(p.session.error().is_none());
}

#[test]
fn ping_request_is_answered_with_ping_response() {
    let mut p = Pair::connected();
    let ping = Message::UserControl(UserControl::PingRequest(4242));
    p.send(2, 0, 0, &ping).unwrap();
    let got = p.receive();
    assert_eq!(
        got[0].msg,
        Message::UserControl(UserControl::PingResponse(4242))
    );
}

#[test]
fn acknowledgement_is_sent_when_the_peer_window_fills() {
    let mut p = Pair::connected();
    p.send(2, 0, 0, &Message::WindowAckSize(1000)).unwrap();
    // Ignored data on stream 0, just to move bytes.
    let raw = RawMessage {
        csid: 4,
        timestamp: MediaTime::ZERO,
        type_id: type_id::AUDIO,
        stream_id: 0,
        payload: Bytes::from(vec![0u8; 1500]),
    };
    p.send_raw(&raw).unwrap();
    let got = p.receive();
    let acks: Vec<u32> = got
        .iter()
        .filter_map(|r| match r.msg {
            Message::Acknowledgement { sequence } => Some(sequence),
            _ => None,
        })
        .collect();
    // One as soon as the window is known (the handshake and connect already
    // exceed it), one after the 1500 bytes.
    assert_eq!(acks.len(), 2);
    assert!(acks[0] > 3073, "handshake bytes count too");
    assert!(acks[1] >= acks[0] + 1500);
}

// ---- publish ----------------------------------------------------------------

#[test]
fn publish_emits_publish_and_answers_start_only_after_acceptance() {
    let mut p = Pair::connected();
    let s = create_stream(&mut p);
    p.command(s, publish_cmd(Some("cam")));
    assert!(p.receive().is_empty(), "nothing before the broker decides");
    assert_eq!(
        p.take_events(),
        [SessionEvent::Publish {
            stream: s,
            name: "cam".to_owned(),
            kind: PublishKind::Live,
            seq: 1,
            query: String::new(),
            priority: 0
        }]
    );
    p.session.handle_broker_event(
        p.now,
        BrokerEvent::PublishAccepted {
            stream: s,
            seq: 1,
            hashname: "sha256:abc".to_owned(),
        },
    );
    let got = p.receive();
    assert_eq!(
        got[0].msg,
        Message::UserControl(UserControl::StreamBegin(s))
    );
    assert_eq!(got[1].code(), Some("NetStream.Publish.Start"));
    assert_eq!(got[1].raw.stream_id, s);
    assert_eq!(got[1].info_str("level"), Some("status"));
    assert_eq!(
        got[1].info_str("description"),
        Some("cam is now published.")
    );
    assert_eq!(got[1].info_str("details"), Some("cam"));
    assert_eq!(got[1].info_str("hashname"), Some("sha256:abc"));
}

#[test]
fn rejected_publish_gets_bad_name_with_the_reason() {
    let mut p = Pair::connected();
    let s = create_stream(&mut p);
    p.command(s, publish_cmd(Some("cam")));
    p.session.handle_broker_event(
        p.now,
        BrokerEvent::PublishRejected {
            stream: s,
            seq: 1,
            reason: PublishRejection::AlreadyPublishing,
        },
    );
    let got = p.receive();
    assert_eq!(codes(&got), ["NetStream.Publish.BadName"]);
    assert_eq!(got[0].info_str("level"), Some("error"));
    assert_eq!(
        got[0].info_str("description"),
        Some(PublishRejection::AlreadyPublishing.to_string().as_str())
    );
    // Back to idle: it may try again.
    p.take_events();
    p.command(s, publish_cmd(Some("cam2")));
    assert_eq!(p.take_events().len(), 1);
}

#[test]
fn publish_on_a_stream_not_created_gets_bad_name() {
    let mut p = Pair::connected();
    p.command(5, publish_cmd(Some("cam")));
    assert_eq!(codes(&p.receive()), ["NetStream.Publish.BadName"]);
    assert!(p.take_events().is_empty());
}

#[test]
fn publish_on_a_stream_already_publishing_gets_bad_name() {
    let mut p = publisher();
    p.command(1, publish_cmd(Some("other")));
    assert_eq!(codes(&p.receive()), ["NetStream.Publish.BadName"]);
    assert!(p.take_events().is_empty());
}

#[test]
fn accepted_publisher_media_becomes_frames_with_flags_and_timestamps() {
    let mut p = publisher();
    p.send(6, 1, 0, &Message::Video(avc_config())).unwrap();
    p.send(6, 1, 40, &Message::Video(avc_key(100))).unwrap();
    p.send(6, 1, 80, &Message::Video(avc_inter(100))).unwrap();
    p.send(4, 1, 50, &Message::Audio(aac_config())).unwrap();
    p.send(4, 1, 60, &Message::Audio(Bytes::from_static(b"\x01")))
        .unwrap();
    let events = p.take_events();
    let frames = frame_events(&events);
    let flags: Vec<(FrameKind, u32, bool, bool)> = frames
        .iter()
        .map(|f| (f.kind, f.timestamp.as_millis(), f.keyframe, f.config))
        .collect();
    assert_eq!(
        flags,
        [
            (FrameKind::Video, 0, false, true),
            (FrameKind::Video, 40, true, false),
            (FrameKind::Video, 80, false, false),
            (FrameKind::Audio, 50, false, true),
            // Unparseable: forwarded with both flags off.
            (FrameKind::Audio, 60, false, false),
        ]
    );
    assert!(events
        .iter()
        .all(|e| matches!(e, SessionEvent::Frame { stream: 1, .. })));
}

#[test]
fn set_data_frame_becomes_a_data_keyframe_event_with_the_amf0_body() {
    let mut p = publisher();
    let mut body = bytes::BytesMut::new();
    crate::amf::amf0::encode_all(
        &[
            Value::from("@setDataFrame"),
            Value::from("onMetaData"),
            Value::object([("width", Value::Number(1280.0))]),
        ],
        &mut body,
    )
    .unwrap();
    // Sent as AMF3 data (type 15): subscribers must still get AMF0 bytes.
    let mut amf3 = vec![0u8];
    amf3.extend_from_slice(&body);
    let raw = RawMessage {
        csid: 5,
        timestamp: MediaTime::from_millis(7),
        type_id: type_id::DATA_AMF3,
        stream_id: 1,
        payload: Bytes::from(amf3),
    };
    p.send_raw(&raw).unwrap();
    let events = p.take_events();
    let [SessionEvent::SetDataFrame {
        stream: 1,
        handler,
        frame,
    }] = events.as_slice()
    else {
        panic!("expected one SetDataFrame, got {events:?}");
    };
    assert_eq!(handler, "onMetaData");
    assert_eq!(frame.kind, FrameKind::Data);
    assert_eq!(frame.timestamp.as_millis(), 7);
    let values = crate::amf::amf0::decode_all(&frame.payload).unwrap();
    assert_eq!(values[0].as_str(), Some("onMetaData"));
    assert_eq!(values[1].get("width").and_then(Value::as_f64), Some(1280.0));
}

#[test]
fn clear_data_frame_and_plain_data_are_forwarded() {
    let mut p = publisher();
    let clear = Message::Data {
        encoding: Encoding::Amf0,
        data: Data::ClearDataFrame {
            handler: "onMetaData".to_owned(),
        },
    };
    p.send(5, 1, 0, &clear).unwrap();
    let mut body = bytes::BytesMut::new();
    crate::amf::amf0::encode_all(&[Value::from("onCuePoint"), Value::Number(1.0)], &mut body)
        .unwrap();
    let raw = RawMessage {
        csid: 5,
        timestamp: MediaTime::from_millis(9),
        type_id: type_id::DATA_AMF0,
        stream_id: 1,
        payload: body.freeze(),
    };
    p.send_raw(&raw).unwrap();
    let events = p.take_events();
    assert_eq!(
        events[0],
        SessionEvent::ClearDataFrame {
            stream: 1,
            handler: "onMetaData".to_owned()
        }
    );
    assert!(matches!(
        &events[1],
        SessionEvent::Frame { stream: 1, frame } if frame.kind == FrameKind::Data && frame.payload == raw.payload
    ));
}

fn flv_tag(type_id: u8, ts: u32, body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32;
    let mut v = vec![type_id];
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.extend_from_slice(&ts.to_be_bytes()[1..]);
    v.push((ts >> 24) as u8);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(body);
    v.extend_from_slice(&(len + 11).to_be_bytes());
    v
}

#[test]
fn aggregate_is_split_into_frames_rebased_on_its_timestamp() {
    let mut p = publisher();
    let mut payload = flv_tag(8, 100, &aac_raw(10));
    payload.extend(flv_tag(9, 140, &avc_key(20)));
    let raw = RawMessage {
        csid: 6,
        timestamp: MediaTime::from_millis(1000),
        type_id: type_id::AGGREGATE,
        stream_id: 1,
        payload: Bytes::from(payload),
    };
    p.send_raw(&raw).unwrap();
    let events = p.take_events();
    let frames = frame_events(&events);
    let got: Vec<(FrameKind, u32, bool)> = frames
        .iter()
        .map(|f| (f.kind, f.timestamp.as_millis(), f.keyframe))
        .collect();
    assert_eq!(
        got,
        [
            (FrameKind::Audio, 1000, false),
            (FrameKind::Video, 1040, true)
        ]
    );
}

#[test]
fn malformed_aggregate_forwards_its_good_prefix() {
    let mut p = publisher();
    let mut payload = flv_tag(8, 0, &aac_raw(10));
    payload.extend_from_slice(&[9, 0, 0, 50, 0, 0]); // a truncated tag header
    let raw = RawMessage {
        csid: 6,
        timestamp: MediaTime::ZERO,
        type_id: type_id::AGGREGATE,
        stream_id: 1,
        payload: Bytes::from(payload),
    };
    p.send_raw(&raw).unwrap();
    assert_eq!(frame_events(&p.take_events()).len(), 1);
    assert!(p.session.error().is_none());
}

#[test]
fn media_before_the_publish_is_accepted_is_dropped() {
    let mut p = Pair::connected();
    let s = create_stream(&mut p);
    p.command(s, publish_cmd(Some("cam")));
    p.take_events();
    p.send(6, s, 0, &Message::Video(avc_key(50))).unwrap();
    assert!(p.take_events().is_empty());
}

#[test]
fn media_from_a_player_is_dropped() {
    let (mut p, s) = player();
    p.send(6, s, 0, &Message::Video(avc_key(50))).unwrap();
    p.send(4, s, 0, &Message::Audio(aac_raw(10))).unwrap();
    assert!(p.take_events().is_empty());
    assert!(p.session.error().is_none());
}

#[test]
fn evicted_publisher_gets_bad_name_and_its_media_is_ignored() {
    let mut p = publisher();
    p.session.handle_broker_event(
        p.now,
        BrokerEvent::PublishEvicted {
            stream: 1,
            reason: crate::event::Eviction::Released,
        },
    );
    let got = p.receive();
    assert_eq!(codes(&got), ["NetStream.Publish.BadName"]);
    assert_eq!(
        got[0].info_str("description"),
        Some("another client released this stream")
    );
    p.send(6, 1, 0, &Message::Video(avc_key(50))).unwrap();
    assert!(p.take_events().is_empty(), "no frames and no Unpublish");
}

#[test]
fn publish_with_null_name_unpublishes() {
    let mut p = publisher();
    p.command(1, publish_cmd(None));
    assert_eq!(p.take_events(), [SessionEvent::Unpublish { stream: 1 }]);
    assert_eq!(codes(&p.receive()), ["NetStream.Unpublish.Success"]);
}

#[test]
fn fc_unpublish_unpublishes_the_named_stream() {
    let mut p = publisher();
    p.command(
        0,
        Command::FcUnpublish {
            transaction_id: 5.0,
            name: "cam".to_owned(),
        },
    );
    assert_eq!(p.take_events(), [SessionEvent::Unpublish { stream: 1 }]);
    let got = p.receive();
    assert_eq!(got[0].command(), Some("_result"));
    assert_eq!(got[1].command(), Some("onFCUnpublish"));
    assert_eq!(got[1].code(), Some("NetStream.Unpublish.Success"));
}

#[test]
fn delete_stream_ends_its_publish() {
    let mut p = publisher();
    p.command(
        0,
        Command::DeleteStream {
            transaction_id: 0.0,
            stream_id: 1.0,
        },
    );
    assert_eq!(p.take_events(), [SessionEvent::Unpublish { stream: 1 }]);
}

#[test]
fn a_decision_for_a_superseded_publish_is_ignored() {
    let mut p = Pair::connected();
    let s = create_stream(&mut p);
    p.command(s, publish_cmd(Some("a")));
    p.command(s, publish_cmd(None));
    p.command(s, publish_cmd(Some("b")));
    p.receive();
    p.take_events();
    // The broker's answer to "a" arrives while "b" waits.
    p.session.handle_broker_event(
        p.now,
        BrokerEvent::PublishAccepted {
            stream: s,
            seq: 1,
            hashname: "sha256:a".to_owned(),
        },
    );
    assert!(p.receive().is_empty());
    p.session.handle_broker_event(
        p.now,
        BrokerEvent::PublishRejected {
            stream: s,
            seq: 2,
            reason: PublishRejection::AlreadyPublishing,
        },
    );
    assert_eq!(codes(&p.receive()), ["NetStream.Publish.BadName"]);
}

// ---- play -------------------------------------------------------------------

#[test]
fn play_sends_stream_begin_reset_start_and_sample_access_on_the_player_stream() {
    let mut p = Pair::connected();
    create_stream(&mut p);
    let s = create_stream(&mut p);
    assert_eq!(s, 2);
    p.command(s, play_cmd("cam"));
    p.accept_plays();
    let got = p.receive();
    assert_eq!(
        got[0].msg,
        Message::UserControl(UserControl::StreamBegin(2))
    );
    assert_eq!(got[1].code(), Some("NetStream.Play.Reset"));
    assert_eq!(got[2].code(), Some("NetStream.Play.Start"));
    assert_eq!(got[2].info_str("description"), Some("Started playing cam."));
    assert_eq!(got[2].info_str("details"), Some("cam"));
    assert!(matches!(
        &got[3].msg,
        Message::Data { data, .. } if data.handler() == "|RtmpSampleAccess"
    ));
    assert_eq!(got[3].raw.type_id, type_id::DATA_AMF0);
    assert!(got[1..].iter().all(|r| r.raw.stream_id == 2));
    assert_eq!(got.len(), 4);
    assert_eq!(
        p.take_events(),
        [SessionEvent::Play {
            stream: 2,
            request: PlayRequest {
                seq: 1,
                name: "cam".to_owned(),
                query: String::new()
            }
        }]
    );
}

#[test]
fn play_without_reset_sends_no_reset_status() {
    let mut p = Pair::connected();
    let s = create_stream(&mut p);
    p.command(
        s,
        Command::Play(Play {
            transaction_id: 0.0,
            name: "cam".to_owned(),
            start: -1000.0,
            duration: -1.0,
            reset: false,
            options: None,
        }),
    );
    p.accept_plays();
    assert_eq!(codes(&p.receive()), ["NetStream.Play.Start"]);
}

#[test]
fn playing_again_on_a_stream_stops_the_previous_play_first() {
    let (mut p, s) = player();
    p.command(s, play_cmd("other"));
    assert_eq!(
        p.take_events(),
        [
            SessionEvent::StopPlay { stream: s },
            SessionEvent::Play {
                stream: s,
                request: PlayRequest {
                    seq: 2,
                    name: "other".to_owned(),
                    query: String::new()
                }
            }
        ]
    );
}

#[test]
fn close_stream_on_a_player_stops_play() {
    let (mut p, s) = player();
    p.command(
        s,
        Command::CloseStream {
            transaction_id: 0.0,
        },
    );
    assert_eq!(p.take_events(), [SessionEvent::StopPlay { stream: s }]);
    give(&mut p, s, key_frame(0, 50));
    assert!(media(&p.receive()).is_empty());
}

#[test]
fn broker_frames_are_written_on_the_player_stream_with_their_timestamps() {
    let (mut p, s) = player();
    give(&mut p, s, video_config_frame());
    give(&mut p, s, key_frame(12_345, 500));
    give(&mut p, s, audio_frame(12_350, 20));
    let mut data = bytes::BytesMut::new();
    crate::amf::amf0::encode_all(&[Value::from("onMetaData")], &mut data).unwrap();
    give(
        &mut p,
        s,
        frame(FrameKind::Data, 12_360, data.freeze(), false, false),
    );
    let got = p.receive();
    let m = media(&got);
    let seen: Vec<(u8, u32, u32)> = m
        .iter()
        .map(|r| (r.raw.type_id, r.raw.stream_id, r.raw.timestamp.as_millis()))
        .collect();
    assert_eq!(
        seen,
        [(9, s, 0), (9, s, 12_345), (8, s, 12_350), (18, s, 12_360)]
    );
    assert_eq!(m[1].raw.payload, avc_key(500));
}

#[test]
fn many_frames_are_batched_into_few_transmits() {
    let (mut p, s) = player();
    for i in 0..100 {
        give(&mut p, s, audio_frame(i * 20, 300));
    }
    let first = p.session.poll_transmit(p.now).unwrap();
    assert!(first.bufs.len() <= MAX_TRANSMIT_BUFS);
    assert!(first.bufs.len() > 2);
}

#[test]
fn publish_and_unpublish_notify_stay_in_order_with_media() {
    let (mut p, s) = player();
    give(&mut p, s, key_frame(0, 50));
    p.session
        .handle_broker_event(p.now, BrokerEvent::UnpublishNotify { stream: s });
    p.session.handle_broker_event(
        p.now,
        BrokerEvent::PublishNotify {
            stream: s,
            priority: 0,
            publisher_name: None,
        },
    );
    let got = p.receive();
    assert_eq!(got[0].raw.type_id, 9);
    assert_eq!(got[1].code(), Some("NetStream.Play.UnpublishNotify"));
    assert_eq!(got[1].info_str("level"), Some("status"));
    assert_eq!(got[2].code(), Some("NetStream.Play.PublishNotify"));
    assert!(got.iter().all(|r| r.raw.stream_id == s));
}

#[test]
fn seek_fails_on_a_live_stream() {
    let (mut p, s) = player();
    p.command(
        s,
        Command::Seek {
            transaction_id: 0.0,
            millis: 1000.0,
        },
    );
    assert_eq!(codes(&p.receive()), ["NetStream.Seek.Failed"]);
}

#[test]
fn play_options_override_real_time_within_the_cap() {
    let default = RealTimeConfig::default();
    let options = Value::object([
        ("audioLifetime", Value::Number(1.5)),
        ("videoLifetime", Value::Number(1000.0)),
        ("finishByMargin", Value::Number(-3.0)),
        ("expirePreviousGop", Value::Number(1.0)),
    ]);
    let rt = dialogue::play_options(Some(&options), &default);
    assert_eq!(rt.audio_lifetime, Duration::from_millis(1500));
    assert_eq!(rt.video_lifetime, Duration::from_secs(10));
    assert_eq!(rt.finish_by_margin, default.finish_by_margin);
    assert!(rt.expire_previous_gop);
}

#[test]
fn cap_is_ten_seconds_or_twice_the_default() {
    let rt = RealTimeConfig {
        audio_lifetime: Duration::from_secs(8),
        ..RealTimeConfig::default()
    };
    let cap = rt.cap();
    assert_eq!(cap.audio_lifetime, Duration::from_secs(16));
    assert_eq!(cap.video_lifetime, Duration::from_secs(10));
}

// ---- real-time treatment ----------------------------------------------------

fn small_budget(bytes: usize) -> SessionConfig {
    SessionConfig {
        real_time: RealTimeConfig {
            max_backlog_bytes: bytes,
            ..RealTimeConfig::default()
        },
        ..SessionConfig::default()
    }
}

#[test]
fn slow_player_backlog_stays_under_its_byte_budget() {
    let (mut p, s) = player_with(small_budget(100_000));
    for i in 0..500 {
        let f = if i % 30 == 0 {
            key_frame(i * 33, 20_000)
        } else {
            inter_frame(i * 33, 20_000)
        };
        give(&mut p, s, f);
        give(&mut p, s, audio_frame(i * 33, 300));
        assert!(p.session.backlog_bytes() <= 100_000);
    }
    assert!(p.session.dropped_frames() > 0);
    assert!(p.session.dropped_bytes() > 0);
    assert!(p.session.error().is_none());
}

#[test]
fn slow_player_video_resumes_at_a_keyframe() {
    let (mut p, s) = player_with(small_budget(100_000));
    give(&mut p, s, key_frame(0, 20_000));
    for i in 1..10 {
        give(&mut p, s, inter_frame(i * 33, 20_000));
    }
    // Over budget: the GOP went, and no keyframe is queued to resume at.
    give(&mut p, s, inter_frame(330, 20_000));
    give(&mut p, s, key_frame(363, 20_000));
    give(&mut p, s, inter_frame(396, 20_000));
    let got = p.receive();
    let video: Vec<(u32, bool)> = media(&got)
        .iter()
        .map(|r| (r.raw.timestamp.as_millis(), r.raw.payload[0] == 0x17))
        .collect();
    assert_eq!(video, [(363, true), (396, false)]);
}

#[test]
fn stale_video_is_abandoned_up_to_the_next_keyframe() {
    let (mut p, s) = player();
    give(&mut p, s, key_frame(0, 100));
    give(&mut p, s, inter_frame(33, 100));
    p.now += Duration::from_secs(4);
    give(&mut p, s, inter_frame(66, 100));
    give(&mut p, s, key_frame(99, 100));
    let got = p.receive();
    let ts: Vec<u32> = media(&got)
        .iter()
        .map(|r| r.raw.timestamp.as_millis())
        .collect();
    assert_eq!(ts, [99]);
    assert_eq!(p.session.dropped_frames(), 3);
}

#[test]
fn stale_audio_is_abandoned() {
    let (mut p, s) = player();
    give(&mut p, s, audio_frame(0, 10));
    p.now += Duration::from_secs(3);
    give(&mut p, s, audio_frame(3000, 10));
    let got = p.receive();
    let ts: Vec<u32> = media(&got)
        .iter()
        .map(|r| r.raw.timestamp.as_millis())
        .collect();
    assert_eq!(ts, [3000]);
}

#[test]
fn configs_and_data_are_never_dropped() {
    let (mut p, s) = player_with(small_budget(10_000));
    give(&mut p, s, video_config_frame());
    give(
        &mut p,
        s,
        frame(FrameKind::Audio, 0, aac_config(), false, true),
    );
    for i in 0..50 {
        give(&mut p, s, inter_frame(i, 5_000));
    }
    p.now += Duration::from_secs(60);
    let got = p.receive();
    let m = media(&got);
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].raw.payload, avc_config());
    assert_eq!(m[1].raw.payload, aac_config());
}

#[test]
fn expire_previous_gop_drops_unsent_video_when_a_keyframe_arrives() {
    let mut p = Pair::connected();
    let s = create_stream(&mut p);
    p.command(
        s,
        Command::Play(Play {
            transaction_id: 0.0,
            name: "cam".to_owned(),
            start: -2.0,
            duration: -1.0,
            reset: true,
            options: Some(Value::object([("expirePreviousGop", Value::from(true))])),
        }),
    );
    p.accept_plays();
    p.receive();
    give(&mut p, s, key_frame(0, 100));
    give(&mut p, s, inter_frame(33, 100));
    give(&mut p, s, audio_frame(40, 10));
    give(&mut p, s, key_frame(66, 100));
    let got = p.receive();
    let seen: Vec<(u8, u32)> = media(&got)
        .iter()
        .map(|r| (r.raw.type_id, r.raw.timestamp.as_millis()))
        .collect();
    assert_eq!(seen, [(8, 40), (9, 66)]);
}

#[test]
fn pause_stops_media_and_unpause_resumes_with_configs_at_a_keyframe() {
    let (mut p, s) = player();
    p.command(
        s,
        Command::Pause {
            transaction_id: 0.0,
            pause: true,
            millis: 0.0,
        },
    );
    assert_eq!(codes(&p.receive()), ["NetStream.Pause.Notify"]);
    give(&mut p, s, key_frame(0, 100));
    give(&mut p, s, audio_frame(10, 10));
    give(&mut p, s, video_config_frame());
    assert!(media(&p.receive()).is_empty());
    p.command(
        s,
        Command::Pause {
            transaction_id: 0.0,
            pause: false,
            millis: 0.0,
        },
    );
    give(&mut p, s, inter_frame(33, 100));
    give(&mut p, s, key_frame(66, 100));
    let got = p.receive();
    assert_eq!(codes(&got), ["NetStream.Unpause.Notify"]);
    let m = media(&got);
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].raw.payload, avc_config());
    assert_eq!(m[1].raw.timestamp.as_millis(), 66);
}

#[test]
fn receive_video_false_stops_video_but_not_audio() {
    let (mut p, s) = player();
    p.command(s, Command::ReceiveVideo(false));
    give(&mut p, s, key_frame(0, 100));
    give(&mut p, s, audio_frame(10, 10));
    let got = p.receive();
    let types: Vec<u8> = media(&got).iter().map(|r| r.raw.type_id).collect();
    assert_eq!(types, [8]);
    p.command(s, Command::ReceiveVideo(true));
    give(&mut p, s, inter_frame(33, 100));
    give(&mut p, s, key_frame(66, 100));
    let got = p.receive();
    let ts: Vec<u32> = media(&got)
        .iter()
        .map(|r| r.raw.timestamp.as_millis())
        .collect();
    assert_eq!(ts, [66]);
}

#[test]
fn receive_audio_false_stops_audio() {
    let (mut p, s) = player();
    p.command(s, Command::ReceiveAudio(false));
    give(&mut p, s, audio_frame(10, 10));
    give(&mut p, s, key_frame(20, 100));
    let got = p.receive();
    let types: Vec<u8> = media(&got).iter().map(|r| r.raw.type_id).collect();
    assert_eq!(types, [9]);
}

// ---- timers and closing -----------------------------------------------------

#[test]
fn silent_peer_is_pinged() {
    let mut p = Pair::connected();
    let deadline = p.session.poll_timeout().unwrap();
    assert_eq!(deadline, p.now + Duration::from_secs(10));
    p.advance(Duration::from_secs(10));
    let got = p.receive();
    assert!(matches!(
        got[0].msg,
        Message::UserControl(UserControl::PingRequest(_))
    ));
}

#[test]
fn dead_peer_closes_and_emits_closed_once() {
    let mut p = Pair::connected();
    for _ in 0..7 {
        p.advance(Duration::from_secs(10));
    }
    assert!(matches!(p.session.error(), Some(SessionError::PeerDead(_))));
    assert_eq!(p.closed_count(), 1);
    p.advance(Duration::from_secs(10));
    p.session.handle_eof(p.now);
    p.poll_events();
    assert_eq!(p.closed_count(), 1);
    p.receive();
    assert!(p.session.is_closed());
}

#[test]
fn input_keeps_a_peer_alive() {
    let mut p = Pair::connected();
    for _ in 0..10 {
        p.advance(Duration::from_secs(10));
        let ping = Message::UserControl(UserControl::PingResponse(0));
        p.send(2, 0, 0, &ping).unwrap();
    }
    assert!(p.session.error().is_none());
}

#[test]
fn idle_publisher_closes_and_emits_closed_once() {
    let mut p = publisher();
    // Pings are answered, but no media flows.
    for _ in 0..4 {
        p.advance(Duration::from_secs(10));
        let pong = Message::UserControl(UserControl::PingResponse(0));
        let _ = p.send(2, 0, 0, &pong);
    }
    assert!(matches!(
        p.session.error(),
        Some(SessionError::PublisherIdle(_))
    ));
    assert_eq!(p.closed_count(), 1);
    p.advance(Duration::from_secs(60));
    assert_eq!(p.closed_count(), 1);
}

#[test]
fn media_keeps_a_publisher_alive() {
    let mut p = publisher();
    for i in 0..10 {
        p.advance(Duration::from_secs(10));
        p.send(4, 1, i * 10_000, &Message::Audio(aac_raw(10)))
            .unwrap();
    }
    assert!(p.session.error().is_none());
}

#[test]
fn handshake_deadline_closes() {
    let mut p = Pair::new(SessionConfig::default());
    assert_eq!(
        p.session.poll_timeout(),
        Some(p.now + Duration::from_secs(10))
    );
    p.advance(Duration::from_secs(10));
    assert!(matches!(
        p.session.error(),
        Some(SessionError::Handshake(_))
    ));
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
    assert!(p.session.is_closed());
}

#[test]
fn no_connect_within_the_connect_timeout_closes() {
    let mut p = Pair::handshaken();
    p.advance(Duration::from_secs(10));
    assert!(matches!(
        p.session.error(),
        Some(SessionError::ConnectTimeout(_))
    ));
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
}

#[test]
fn server_close_sends_connect_closed_then_closes() {
    let mut p = publisher();
    p.session.close(p.now, "server shutdown");
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
    assert!(!p.session.is_closed(), "the status is still owed");
    let got = p.receive();
    assert_eq!(codes(&got), ["NetConnection.Connect.Closed"]);
    assert_eq!(got[0].raw.stream_id, 0);
    assert_eq!(got[0].info_str("level"), Some("status"));
    assert!(p.session.is_closed());
}

#[test]
fn eof_closes_and_emits_closed_once() {
    let mut p = Pair::connected();
    p.session.handle_eof(p.now);
    p.session.handle_eof(p.now);
    p.session.close(p.now, "again");
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
    assert_eq!(p.session.error(), Some(&SessionError::PeerClosed));
    assert!(p.session.is_closed());
}

#[test]
fn input_after_close_is_ignored_with_the_sticky_error() {
    let mut p = Pair::connected();
    p.session.close(p.now, "bye");
    p.receive();
    let r = p.session.handle_input(p.now, &[0x03, 0, 0, 0]);
    assert_eq!(r, Err(SessionError::ClosedByServer("bye".to_owned())));
    assert!(p.session.poll_transmit(p.now).is_none());
}

#[test]
fn a_closing_session_gives_up_flushing_after_a_while() {
    let mut p = Pair::connected();
    p.session.close(p.now, "bye");
    p.take_events();
    assert!(!p.session.is_closed());
    let deadline = p.session.poll_timeout().unwrap();
    p.now = deadline;
    p.session.handle_timeout(p.now);
    assert!(p.session.is_closed());
}

#[test]
fn chunk_stream_errors_close_the_session() {
    let mut p = Pair::connected();
    // A type-3 header on a chunk stream never seen before.
    let r = p.input(&[0xC0 | 40, 1, 2, 3]);
    assert!(matches!(r, Err(SessionError::Chunk(_))));
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
}

#[test]
fn a_peer_that_never_reads_is_closed_before_replies_pile_up() {
    let mut p = Pair::connected();
    let msg = Message::Command {
        encoding: Encoding::Amf0,
        command: Command::CheckBw {
            transaction_id: 3.0,
        },
    };
    let raw = msg.to_raw(3, MediaTime::ZERO, 0).unwrap();
    let one = p.encode(&raw);
    let many: Vec<u8> = one.repeat(100);
    for _ in 0..400 {
        if p.input(&many).is_err() {
            break;
        }
    }
    assert!(matches!(p.session.error(), Some(SessionError::SlowPeer(_))));
}

#[test]
fn one_large_read_is_taken_whole() {
    let config = SessionConfig {
        decoder_limits: crate::chunk::DecoderLimits {
            max_buffered_bytes: 20_000,
            max_message_len: 8_000,
            ..crate::chunk::DecoderLimits::default()
        },
        ..SessionConfig::default()
    };
    let mut p = Pair::connected_with(config);
    let ping = Message::UserControl(UserControl::PingRequest(1));
    let raw = ping.to_raw(2, MediaTime::ZERO, 0).unwrap();
    let bytes: Vec<u8> = (0..5_000).flat_map(|_| p.encode(&raw)).collect();
    assert!(bytes.len() > 20_000);
    p.input(&bytes).unwrap();
    assert_eq!(p.receive().len(), 5_000);
}

#[test]
fn a_type_17_command_after_an_amf0_connect_is_answered_as_type_17() {
    let mut p = Pair::connected();
    let msg = Message::Command {
        encoding: Encoding::Amf3,
        command: create_stream_cmd(2.0),
    };
    p.send(3, 0, 0, &msg).unwrap();
    let got = p.receive();
    assert_eq!(got[0].raw.type_id, type_id::COMMAND_AMF3);
    assert_eq!(got[0].command(), Some("_result"));
}

#[test]
fn a_player_flooded_with_data_it_cannot_read_is_closed() {
    let (mut p, s) = player();
    let mut data = bytes::BytesMut::new();
    crate::amf::amf0::encode_all(
        &[Value::from("onTextData"), Value::from("x".repeat(4000))],
        &mut data,
    )
    .unwrap();
    let data = data.freeze();
    for i in 0..5000 {
        give(
            &mut p,
            s,
            frame(FrameKind::Data, i, data.clone(), false, false),
        );
        if p.session.error().is_some() {
            break;
        }
    }
    assert!(matches!(p.session.error(), Some(SessionError::SlowPeer(_))));
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn on_arbitrary_bytes_after_connect(
            bytes in prop::collection::vec(any::<u8>(), 0..2000),
            splits in prop::collection::vec(1usize..300, 1..8),
        ) {
            let mut p = publisher();
            let mut rest = bytes.as_slice();
            let mut i = 0;
            while !rest.is_empty() {
                let n = splits[i % splits.len()].min(rest.len());
                i += 1;
                let _ = p.input(&rest[..n]);
                rest = &rest[n..];
                let _ = p.session.poll_transmit(p.now);
            }
            p.advance(Duration::from_secs(100));
            prop_assert!(p.closed_count() <= 1);
        }

        #[test]
        fn on_arbitrary_commands_and_broker_events(
            ops in prop::collection::vec((0u8..12, 0u32..4, any::<bool>()), 0..60),
        ) {
            let mut p = Pair::connected();
            for (op, stream, flag) in ops {
                match op {
                    0 => p.command(0, create_stream_cmd(2.0)),
                    1 => p.command(stream, publish_cmd(flag.then_some("cam"))),
                    2 => p.command(stream, play_cmd("cam")),
                    3 => p.command(stream, Command::Pause { transaction_id: 0.0, pause: flag, millis: 0.0 }),
                    4 => p.command(stream, Command::ReceiveVideo(flag)),
                    5 => p.command(0, Command::DeleteStream { transaction_id: 0.0, stream_id: f64::from(stream) }),
                    6 => p.session.handle_broker_event(p.now, BrokerEvent::PublishAccepted { stream, seq: 1, hashname: String::new() }),
                    7 => p.session.handle_broker_event(p.now, BrokerEvent::PublishRejected { stream, seq: 1, reason: PublishRejection::TooManyStreams }),
                    8 => p.session.handle_broker_event(p.now, BrokerEvent::PublishEvicted { stream, reason: crate::event::Eviction::TakenOver }),
                    9 => give(&mut p, stream, if flag { key_frame(0, 100) } else { inter_frame(0, 100) }),
                    10 => { p.receive(); }
                    _ => p.now += Duration::from_secs(2),
                }
                p.poll_events();
            }
            prop_assert!(p.closed_count() <= 1);
        }
    }
}

#[test]
fn fcsubscribe_is_answered_with_a_result_and_on_fcsubscribe() {
    let mut p = Pair::connected();
    let msg = Message::Command {
        encoding: Encoding::Amf0,
        command: Command::Other(GenericCommand {
            name: "FCSubscribe".to_owned(),
            transaction_id: 4.0,
            command_object: Value::Null,
            args: vec![Value::from("cam")],
        }),
    };
    let raw = msg.to_raw(3, MediaTime::ZERO, 0).unwrap();
    let bytes = p.encode(&raw);
    p.input(&bytes).unwrap();
    let got = p.receive();
    let seen: Vec<&str> = got
        .iter()
        .filter_map(|r| match &r.msg {
            Message::Command { command, .. } => Some(command.name()),
            _ => None,
        })
        .collect();
    assert_eq!(seen, ["_result", "onFCSubscribe"]);
    assert_eq!(got[1].code(), Some("NetStream.Play.Start"));
    assert_eq!(got[1].info_str("description"), Some("cam"));
}

// ---- finish-by margin and Abort ---------------------------------------------

/// A player whose `play` carried `options`.
fn player_with_options(options: Value) -> (Pair, u32) {
    let mut p = Pair::connected();
    let s = create_stream(&mut p);
    p.command(
        s,
        Command::Play(Play {
            transaction_id: 0.0,
            name: "cam".to_owned(),
            start: -2.0,
            duration: -1.0,
            reset: true,
            options: Some(options),
        }),
    );
    p.accept_plays();
    p.receive();
    p.take_events();
    (p, s)
}

fn video_csid(stream: u32) -> u32 {
    stream_csids(stream).2
}

fn aborts(got: &[Received]) -> Vec<u32> {
    got.iter()
        .filter_map(|r| match r.msg {
            Message::Abort { csid } => Some(csid),
            _ => None,
        })
        .collect()
}

#[test]
fn a_large_message_is_handed_out_in_pieces_of_whole_chunks() {
    let (mut p, s) = player();
    give(&mut p, s, key_frame(0, 100_000));
    let first = p.session.poll_transmit(p.now).expect("a first piece");
    // The first transmit stays near the pacing budget instead of carrying
    // the whole keyframe.
    assert!(first.len() < 30_000, "first transmit {} bytes", first.len());
    let rest = p.transmitted();
    let all: Vec<u8> = first.bufs.concat().into_iter().chain(rest).collect();
    let got = p.decode_bytes(&all);
    let m = media(&got);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].raw.payload, avc_key(100_000));
}

#[test]
fn a_message_unfinished_at_its_finish_by_deadline_is_aborted_and_the_next_decodes() {
    let (mut p, s) = player();
    give(&mut p, s, key_frame(0, 100_000));
    let first = p.receive_one().expect("a first piece");
    assert!(media(&first).is_empty(), "the keyframe went out whole");
    let rt = RealTimeConfig::default();
    p.now += rt.video_lifetime + rt.finish_by_margin + Duration::from_millis(1);
    give(&mut p, s, inter_frame(4_000, 5_000));
    give(&mut p, s, key_frame(4_033, 10_000));
    let got = p.receive();
    assert_eq!(aborts(&got), [video_csid(s)]);
    // The inter frame depends on the abandoned keyframe; the next
    // keyframe arrives whole and decodes.
    let m = media(&got);
    let ts: Vec<u32> = m.iter().map(|r| r.raw.timestamp.as_millis()).collect();
    assert_eq!(ts, [4_033]);
    assert_eq!(m[0].raw.payload, avc_key(10_000));
    assert_eq!(p.session.aborted_messages(), 1);
    assert_eq!(p.session.dropped_frames(), 2);
}

#[test]
fn a_message_started_in_time_is_finished_within_its_margin() {
    let (mut p, s) = player();
    give(&mut p, s, key_frame(0, 100_000));
    assert!(media(&p.receive_one().expect("a first piece")).is_empty());
    let rt = RealTimeConfig::default();
    // Past its lifetime, but within the finish-by margin.
    p.now += rt.video_lifetime + rt.finish_by_margin / 2;
    let got = p.receive();
    assert!(aborts(&got).is_empty());
    let m = media(&got);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].raw.payload, avc_key(100_000));
}

#[test]
fn play_option_finish_by_margin_applies_to_that_player() {
    let (mut p, s) = player_with_options(Value::object([("finishByMargin", Value::Number(0.0))]));
    give(&mut p, s, key_frame(0, 100_000));
    assert!(media(&p.receive_one().expect("a first piece")).is_empty());
    // Within the default margin, but past this player's (zero) margin.
    p.now += RealTimeConfig::default().video_lifetime + Duration::from_millis(1);
    let got = p.receive();
    assert_eq!(aborts(&got), [video_csid(s)]);
    assert!(media(&got).is_empty());
}

#[test]
fn play_option_audio_lifetime_applies_to_that_player() {
    let (mut p, s) = player_with_options(Value::object([("audioLifetime", Value::Number(0.5))]));
    let (mut q, t) = player();
    give(&mut p, s, audio_frame(0, 10));
    give(&mut q, t, audio_frame(0, 10));
    p.now += Duration::from_millis(600);
    q.now += Duration::from_millis(600);
    assert!(media(&p.receive()).is_empty());
    assert_eq!(media(&q.receive()).len(), 1);
}

#[test]
fn play_option_video_lifetime_applies_to_that_player() {
    let (mut p, s) = player_with_options(Value::object([("videoLifetime", Value::Number(8.0))]));
    give(&mut p, s, key_frame(0, 100));
    // Past the default 3 s, within this player's 8 s.
    p.now += Duration::from_secs(5);
    assert_eq!(media(&p.receive()).len(), 1);
}

#[test]
fn play_option_lifetime_is_capped_at_ten_seconds() {
    let (mut p, s) = player_with_options(Value::object([("videoLifetime", Value::Number(3600.0))]));
    give(&mut p, s, key_frame(0, 100));
    p.now += Duration::from_secs(11);
    assert!(media(&p.receive()).is_empty());
}

#[test]
fn close_stream_mid_message_aborts_it() {
    let (mut p, s) = player();
    give(&mut p, s, key_frame(0, 100_000));
    assert!(media(&p.receive_one().expect("a first piece")).is_empty());
    p.command(
        s,
        Command::CloseStream {
            transaction_id: 0.0,
        },
    );
    let got = p.receive();
    assert_eq!(aborts(&got), [video_csid(s)]);
    assert!(media(&got).is_empty());
    // A new play on the same stream gets whole frames again.
    p.command(s, play_cmd("cam"));
    p.accept_plays();
    give(&mut p, s, key_frame(0, 10_000));
    let m: Vec<Bytes> = media(&p.receive())
        .iter()
        .map(|r| r.raw.payload.clone())
        .collect();
    assert_eq!(m, [avc_key(10_000)]);
}

#[test]
fn never_dropped_frames_are_never_aborted() {
    let (mut p, s) = player();
    let mut data = bytes::BytesMut::new();
    let big = "x".repeat(60_000);
    crate::amf::amf0::encode_all(
        &[Value::from("onMetaData"), Value::from(big.as_str())],
        &mut data,
    )
    .unwrap();
    let data = data.freeze();
    give(
        &mut p,
        s,
        frame(FrameKind::Data, 0, data.clone(), false, false),
    );
    assert!(media(&p.receive_one().expect("a first piece")).is_empty());
    p.now += Duration::from_secs(60);
    let got = p.receive();
    assert!(aborts(&got).is_empty());
    assert_eq!(media(&got)[0].raw.payload, data);
}

#[test]
fn delete_stream_with_a_transaction_id_gets_a_result() {
    let mut p = Pair::connected();
    let s = create_stream(&mut p);
    p.command(
        0,
        Command::DeleteStream {
            transaction_id: 7.0,
            stream_id: f64::from(s),
        },
    );
    let got = p.receive();
    let [r] = got.as_slice() else {
        panic!("one reply expected, got {got:?}");
    };
    assert!(matches!(
        r.msg,
        Message::Command {
            command: Command::Result { transaction_id, .. },
            ..
        } if transaction_id == 7.0
    ));
}

// ---- simplified dialect -----------------------------------------------------

#[test]
fn simplified_connect_sends_no_chunk_size_or_peer_bandwidth() {
    let mut p = Pair::handshaken_with(SessionConfig {
        simplified_rtmp: true,
        ..SessionConfig::default()
    });
    p.command(0, connect_command("live", 0.0));
    let got = p.receive();
    let kinds: Vec<&Message> = got.iter().map(|r| &r.msg).collect();
    assert_eq!(kinds[0], &Message::WindowAckSize(2_500_000));
    assert_eq!(got[1].command(), Some("_result"));
    assert_eq!(got.len(), 2);
}

// ---- known attacks (docs/fuzzing.md) ------------------------------------------

/// A type 0 chunk header on chunk stream 5: video on message stream 1.
fn video_header(len: u32) -> Vec<u8> {
    let l = len.to_be_bytes();
    vec![0x05, 0, 0, 0, l[1], l[2], l[3], 9, 1, 0, 0, 0]
}

#[test]
fn continuation_changing_the_message_length_closes_the_session() {
    // FFmpeg CVE-2016-10191: a type 1 header in the middle of a message
    // declares a new length; trusting it overflowed FFmpeg's buffer.
    let mut p = Pair::connected();
    let mut bytes = video_header(300);
    bytes.extend_from_slice(&[0xaa; 128]);
    bytes.extend_from_slice(&[0x45, 0, 0, 0, 0x10, 0, 0, 9]); // length 1 MiB
    bytes.extend_from_slice(&[0xbb; 128]);
    assert_eq!(
        p.input(&bytes),
        Err(SessionError::Chunk(ChunkError::HeaderChangedMidMessage {
            csid: 5
        }))
    );
    assert_eq!(p.closed_count(), 1);
}

#[test]
fn message_declaring_16_mib_is_refused_before_its_payload_arrives() {
    // A 24-bit length of 16 MiB - 1 with nothing behind it: refused at the
    // header (past the 8 MiB default), nothing held beyond the header.
    let mut p = Pair::connected();
    let result = p.input(&video_header(0x00FF_FFFF));
    assert!(
        matches!(
            result,
            Err(SessionError::Chunk(ChunkError::MessageTooLong { .. }))
        ),
        "{result:?}"
    );
    assert!(p.session.input_buffered_bytes() <= 12, "only the header");
}

mod transmit {
    use super::*;

    fn transmit(parts: &[&'static [u8]]) -> Transmit {
        Transmit {
            bufs: parts.iter().map(|b| Bytes::from_static(b)).collect(),
        }
    }

    fn rest(t: &Transmit) -> Vec<u8> {
        t.bufs.iter().flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn partial_write_resumes_inside_a_buffer() {
        let mut t = transmit(&[b"abc", b"defg"]);
        t.advance(4);
        assert_eq!(rest(&t), b"efg");
        assert_eq!(t.bufs.len(), 1);
    }

    #[test]
    fn empty_buffers_never_hold_up_completion() {
        let mut t = transmit(&[b"", b"ab", b"", b""]);
        t.advance(2);
        assert!(t.is_empty());
        assert!(t.bufs.is_empty());
    }

    #[test]
    fn io_slices_skip_empty_buffers_and_respect_the_array() {
        let t = transmit(&[b"", b"ab", b"", b"c", b"d"]);
        let mut slices = [std::io::IoSlice::new(&[]); 2];
        assert_eq!(t.io_slices(&mut slices), 2);
        assert_eq!(&*slices[0], b"ab");
        assert_eq!(&*slices[1], b"c");
    }
}

#[test]
fn connect_result_carries_server_info_when_configured() {
    let mut p = Pair::handshaken_with(SessionConfig {
        server_info: Some("edge-7".to_owned()),
        ..SessionConfig::default()
    });
    p.command(0, connect_command("live", 0.0));
    let got = p.receive();
    let result = got
        .iter()
        .find(|r| r.command() == Some("_result"))
        .expect("a connect result");
    assert_eq!(result.info_str("serverInfo"), Some("edge-7"));
}

fn merging_player() -> (Pair, u32) {
    player_with(SessionConfig {
        merge_window: Duration::from_millis(20),
        ..SessionConfig::default()
    })
}

#[test]
fn merge_window_holds_media_until_it_passes_then_sends_it_in_one_transmit() {
    let (mut p, s) = merging_player();
    give(&mut p, s, audio_frame(0, 300));
    p.advance(Duration::from_millis(10));
    give(&mut p, s, inter_frame(10, 2_000));
    assert!(
        p.receive_one().is_none(),
        "media went out inside the window"
    );
    assert_eq!(
        p.session.poll_timeout(),
        Some(p.now + Duration::from_millis(10)),
        "no deadline for the held media"
    );
    p.advance(Duration::from_millis(10));
    let got = p.receive_one().expect("held media goes at the deadline");
    assert_eq!(media(&got).len(), 2, "both messages in one transmit");
    assert!(p.receive_one().is_none());
}

#[test]
fn merge_window_never_holds_replies() {
    let (mut p, s) = merging_player();
    give(&mut p, s, audio_frame(0, 300));
    p.command(0, create_stream_cmd(5.0));
    let got = p.receive_one().expect("the reply goes at once");
    assert!(
        got.iter().any(|r| r.command() == Some("_result")),
        "no reply in {got:?}"
    );
}

#[test]
fn merge_window_sends_a_full_batch_at_once() {
    let (mut p, s) = merging_player();
    give(&mut p, s, inter_frame(0, 64 * 1024));
    assert!(
        p.receive_one().is_some(),
        "a batch's worth was held for the window"
    );
}

#[test]
fn merge_window_sends_once_its_size_bound_is_queued() {
    let (mut p, s) = player_with(SessionConfig {
        merge_window: Duration::from_millis(50),
        merge_bytes: 4_000,
        ..SessionConfig::default()
    });
    give(&mut p, s, inter_frame(0, 2_500));
    assert!(p.receive_one().is_none(), "held below the size bound");
    give(&mut p, s, inter_frame(33, 2_500));
    let got = p.receive_one().expect("the size bound releases the batch");
    assert_eq!(media(&got).len(), 2, "both frames in one transmit");
}

#[test]
fn merge_window_never_holds_the_start_of_a_keyframe() {
    let (mut p, s) = merging_player();
    give(&mut p, s, audio_frame(0, 300));
    assert!(p.receive_one().is_none(), "audio alone is held");
    give(&mut p, s, key_frame(10, 8_000));
    let got = p.receive_one().expect("a keyframe goes at once");
    let sent = media(&got);
    assert_eq!(sent.len(), 2, "the held audio and the keyframe: {got:?}");
    assert_eq!(sent[1].raw.type_id, 9, "the keyframe follows the audio");
}

#[test]
fn without_a_merge_window_media_goes_at_once() {
    let (mut p, s) = player();
    give(&mut p, s, audio_frame(0, 300));
    let got = p.receive_one().expect("media at once");
    assert_eq!(media(&got).len(), 1);
}

#[test]
fn empty_media_from_a_publisher_never_reaches_the_broker() {
    // Zero-length audio/video carries nothing a player could decode, yet
    // each would cost a cache entry and a backlog entry per player.
    let mut p = publisher();
    p.send(6, 1, 0, &Message::Video(Bytes::new())).unwrap();
    p.send(4, 1, 0, &Message::Audio(Bytes::new())).unwrap();
    p.send(6, 1, 40, &Message::Video(avc_key(100))).unwrap();
    let events = p.take_events();
    let frames = frame_events(&events);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert!(frames[0].keyframe);
}

#[test]
fn a_stalled_players_backlog_is_released_by_lifetime_on_a_timer() {
    // A player whose socket takes nothing is never polled for a transmit:
    // its media must still go once its lifetime has passed.
    let (mut p, s) = player();
    give(&mut p, s, video_config_frame());
    give(&mut p, s, key_frame(0, 1000));
    for i in 0..100 {
        give(&mut p, s, audio_frame(i * 20, 100));
        give(&mut p, s, inter_frame(i * 20, 1000));
    }
    assert_eq!(p.session.backlog_entries(), 202);
    let due = p.session.poll_timeout().expect("a deadline");
    assert!(due <= p.now + Duration::from_secs(3), "{due:?}");
    p.advance(Duration::from_millis(3100));
    // Only the configuration (never dropped) is left.
    assert_eq!(p.session.backlog_entries(), 1);
    assert_eq!(p.session.dropped_frames(), 201);
    assert!(
        p.session.poll_timeout().map_or(true, |d| d > p.now),
        "a deadline stays due"
    );
}

#[test]
fn live_message_streams_never_share_chunk_stream_ids() {
    // Message streams are mapped onto 20 sets of chunk stream ids; two
    // live streams on one set would corrupt each other's headers.
    let mut p = Pair::connected_with(SessionConfig {
        max_streams: 64,
        ..SessionConfig::default()
    });
    let mut live: Vec<u32> = (0..20).map(|_| create_stream(&mut p)).collect();
    p.command(
        0,
        Command::DeleteStream {
            transaction_id: 0.0,
            stream_id: 2.0,
        },
    );
    live.retain(|&s| s != 2);
    p.receive();
    live.push(create_stream(&mut p));
    let mut sets: Vec<u32> = live.iter().map(|&s| stream_csids(s).0).collect();
    sets.sort_unstable();
    sets.dedup();
    assert_eq!(sets.len(), live.len(), "streams {live:?}");
    // A 21st live stream would have to share: refused.
    p.command(0, create_stream_cmd(9.0));
    let got = p.receive();
    assert_eq!(got[0].command(), Some("_error"), "{got:?}");
}
