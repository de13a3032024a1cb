//! Message-layer tests. AMF bodies are built byte by byte here, so that a
//! decoder test does not lean on the encoder it is also checking.

use super::*;

/// Hand-rolled AMF0 byte builder.
#[derive(Default)]
struct Amf(Vec<u8>);

impl Amf {
    fn s(mut self, v: &str) -> Self {
        self.0.push(0x02);
        self.0.extend_from_slice(&(v.len() as u16).to_be_bytes());
        self.0.extend_from_slice(v.as_bytes());
        self
    }
    fn n(mut self, v: f64) -> Self {
        self.0.push(0x00);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn b(mut self, v: bool) -> Self {
        self.0.extend_from_slice(&[0x01, v as u8]);
        self
    }
    fn null(mut self) -> Self {
        self.0.push(0x05);
        self
    }
    fn obj_start(mut self) -> Self {
        self.0.push(0x03);
        self
    }
    fn key(mut self, k: &str) -> Self {
        self.0.extend_from_slice(&(k.len() as u16).to_be_bytes());
        self.0.extend_from_slice(k.as_bytes());
        self
    }
    fn obj_end(mut self) -> Self {
        self.0.extend_from_slice(&[0x00, 0x00, 0x09]);
        self
    }
    fn bytes(self) -> Bytes {
        Bytes::from(self.0)
    }
}

fn raw(type_id: u8, payload: Bytes) -> RawMessage {
    RawMessage {
        csid: 3,
        timestamp: MediaTime::ZERO,
        type_id,
        stream_id: 0,
        payload,
    }
}

fn command(payload: Bytes) -> Command {
    match Message::decode(&raw(type_id::COMMAND_AMF0, payload)) {
        Ok(Message::Command {
            encoding: Encoding::Amf0,
            command,
        }) => command,
        other => panic!("expected an AMF0 command, got {other:?}"),
    }
}

fn round_trip(msg: &Message) -> Message {
    let raw = msg
        .to_raw(3, MediaTime::from_millis(40), 1)
        .expect("encodes");
    assert_eq!(raw.type_id, msg.type_id());
    Message::decode(&raw).expect("decodes")
}

/// The connect FFmpeg 5.1 sends when publishing (shape from
/// libavformat/rtmpproto.c gen_connect: app, type, flashVer, tcUrl).
fn ffmpeg_connect() -> Bytes {
    Amf::default()
        .s("connect")
        .n(1.0)
        .obj_start()
        .key("app")
        .s("live")
        .key("type")
        .s("nonprivate")
        .key("flashVer")
        .s("FMLE/3.0 (compatible; Lavf59.27.100)")
        .key("tcUrl")
        .s("rtmp://127.0.0.1:1935/live")
        .obj_end()
        .bytes()
}

#[test]
fn set_chunk_size_decodes_big_endian() {
    let m = Message::decode(&raw(1, Bytes::from_static(&[0, 0, 0x10, 0]))).unwrap();
    assert_eq!(m, Message::SetChunkSize(4096));
}

#[test]
fn protocol_control_messages_round_trip() {
    for m in [
        Message::SetChunkSize(60_000),
        Message::Abort { csid: 6 },
        Message::Acknowledgement { sequence: u32::MAX },
        Message::WindowAckSize(2_500_000),
        Message::SetPeerBandwidth {
            size: 2_500_000,
            limit: BandwidthLimit::Dynamic,
        },
    ] {
        assert_eq!(round_trip(&m), m);
    }
}

#[test]
fn short_protocol_control_is_refused() {
    let err = Message::decode(&raw(5, Bytes::from_static(&[0, 1]))).unwrap_err();
    assert_eq!(
        err,
        MessageError::TooShort {
            kind: "Window Acknowledgement Size",
            needed: 4,
            got: 2
        }
    );
}

#[test]
fn unknown_bandwidth_limit_is_refused() {
    let err = Message::decode(&raw(6, Bytes::from_static(&[0, 0, 1, 0, 7]))).unwrap_err();
    assert_eq!(err, MessageError::UnknownBandwidthLimit(7));
}

#[test]
fn user_control_events_round_trip() {
    for uc in [
        UserControl::StreamBegin(1),
        UserControl::StreamEof(1),
        UserControl::StreamDry(2),
        UserControl::SetBufferLength {
            stream_id: 1,
            millis: 3000,
        },
        UserControl::StreamIsRecorded(1),
        UserControl::PingRequest(123_456),
        UserControl::PingResponse(u32::MAX),
        UserControl::Other {
            event_type: 31,
            data: Bytes::from_static(&[0, 0, 0, 1]),
        },
    ] {
        let m = Message::UserControl(uc);
        assert_eq!(round_trip(&m), m);
    }
}

#[test]
fn stream_begin_has_exact_wire_bytes() {
    let p = Message::UserControl(UserControl::StreamBegin(1))
        .encode_payload()
        .unwrap();
    assert_eq!(&p[..], &[0, 0, 0, 0, 0, 1]);
}

#[test]
fn short_set_buffer_length_is_refused() {
    let err = Message::decode(&raw(4, Bytes::from_static(&[0, 3, 0, 0, 0, 1]))).unwrap_err();
    assert!(
        matches!(err, MessageError::TooShort { needed: 10, .. }),
        "{err:?}"
    );
}

#[test]
fn ffmpeg_connect_is_typed() {
    let Command::Connect(c) = command(ffmpeg_connect()) else {
        panic!("not a connect");
    };
    assert_eq!(c.transaction_id, 1.0);
    assert_eq!(c.app(), Some("live"));
    assert_eq!(c.tc_url(), Some("rtmp://127.0.0.1:1935/live"));
    assert_eq!(c.object_encoding(), 0.0);
    assert_eq!(c.resolved_app().as_deref(), Some("live"));
    assert!(c.args.is_empty());
}

#[test]
fn connect_app_is_derived_from_tc_url_path() {
    let body = Amf::default()
        .s("connect")
        .n(1.0)
        .obj_start()
        .key("tcUrl")
        .s("rtmp://example.com:1935/live/12345?token=x")
        .obj_end()
        .bytes();
    let Command::Connect(c) = command(body) else {
        panic!("not a connect");
    };
    assert_eq!(c.app(), None);
    assert_eq!(c.resolved_app().as_deref(), Some("live/12345"));
}

#[test]
fn connect_without_app_or_tc_url_has_no_app() {
    let body = Amf::default()
        .s("connect")
        .n(1.0)
        .obj_start()
        .key("flashVer")
        .s("LNX 9,0,124,2")
        .obj_end()
        .bytes();
    let Command::Connect(c) = command(body) else {
        panic!("not a connect");
    };
    assert_eq!(c.resolved_app(), None);
}

#[test]
fn connect_keeps_tc_auth_arguments() {
    let body = Amf::default()
        .s("connect")
        .n(1.0)
        .obj_start()
        .key("app")
        .s("live/12345")
        .obj_end()
        .s("mike")
        .s("8bddf00ca7e31862fe17872c463df61eafde6518f565cb3def0e82a3b2d639d7")
        .bytes();
    let Command::Connect(c) = command(body) else {
        panic!("not a connect");
    };
    let args: Vec<_> = c.args.iter().filter_map(Value::as_str).collect();
    assert_eq!(
        args,
        [
            "mike",
            "8bddf00ca7e31862fe17872c463df61eafde6518f565cb3def0e82a3b2d639d7"
        ]
    );
}

#[test]
fn connect_with_null_command_object_is_refused() {
    let body = Amf::default().s("connect").n(1.0).null().bytes();
    let err = Message::decode(&raw(20, body)).unwrap_err();
    assert!(matches!(
        err,
        MessageError::BadCommand {
            name: "connect",
            ..
        }
    ));
}

#[test]
fn amf3_command_skips_the_format_byte() {
    let mut body = vec![0u8];
    body.extend_from_slice(&ffmpeg_connect());
    let m = Message::decode(&raw(type_id::COMMAND_AMF3, Bytes::from(body))).unwrap();
    let Message::Command {
        encoding: Encoding::Amf3,
        command: Command::Connect(c),
    } = m
    else {
        panic!("expected an AMF3 connect, got {m:?}");
    };
    assert_eq!(c.app(), Some("live"));
}

#[test]
fn amf3_command_with_avmplus_values_is_typed() {
    // "publish" as an AMF3 string behind the AVM+ switch: 0x11 0x06 (len<<1|1).
    let mut body = vec![0u8, 0x11, 0x06, (7 << 1) | 1];
    body.extend_from_slice(b"publish");
    body.extend_from_slice(&Amf::default().n(5.0).null().0);
    body.extend_from_slice(&[0x11, 0x06, (3 << 1) | 1]);
    body.extend_from_slice(b"cam");
    let m = Message::decode(&raw(type_id::COMMAND_AMF3, Bytes::from(body))).unwrap();
    let Message::Command {
        command: Command::Publish { name, kind, .. },
        ..
    } = m
    else {
        panic!("expected publish, got {m:?}");
    };
    assert_eq!(name.as_deref(), Some("cam"));
    assert_eq!(kind, PublishKind::Live);
}

#[test]
fn amf3_command_with_nonzero_format_byte_is_refused() {
    let err = Message::decode(&raw(17, Bytes::from_static(&[3, 0x05]))).unwrap_err();
    assert_eq!(err, MessageError::BadFormatByte(3));
}

#[test]
fn command_without_a_name_is_refused() {
    let err = Message::decode(&raw(20, Amf::default().n(1.0).bytes())).unwrap_err();
    assert_eq!(err, MessageError::MissingName("command"));
}

#[test]
fn truncated_command_amf_is_refused() {
    let mut body = ffmpeg_connect().to_vec();
    body.truncate(body.len() - 5);
    let err = Message::decode(&raw(20, Bytes::from(body))).unwrap_err();
    assert!(
        matches!(
            err,
            MessageError::Amf {
                context: "command",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn bare_command_name_reads_as_transaction_zero() {
    let c = command(Amf::default().s("createStream").bytes());
    assert_eq!(
        c,
        Command::CreateStream {
            transaction_id: 0.0
        }
    );
}

#[test]
fn publish_types_are_parsed() {
    for (ty, kind) in [
        ("live", PublishKind::Live),
        ("record", PublishKind::Record),
        ("append", PublishKind::Append),
        ("appendWithGap", PublishKind::Other("appendWithGap".into())),
    ] {
        let body = Amf::default()
            .s("publish")
            .n(5.0)
            .null()
            .s("key")
            .s(ty)
            .bytes();
        assert_eq!(
            command(body),
            Command::Publish {
                transaction_id: 5.0,
                name: Some("key".into()),
                kind
            }
        );
    }
}

#[test]
fn publish_false_means_unpublish() {
    let body = Amf::default().s("publish").n(0.0).null().b(false).bytes();
    assert!(matches!(command(body), Command::Publish { name: None, .. }));
}

#[test]
fn publish_with_a_number_for_name_is_refused() {
    let body = Amf::default().s("publish").n(0.0).null().n(3.0).bytes();
    let err = Message::decode(&raw(20, body)).unwrap_err();
    assert!(matches!(
        err,
        MessageError::BadCommand {
            name: "publish",
            ..
        }
    ));
}

#[test]
fn play_defaults_to_live_start() {
    let body = Amf::default().s("play").n(0.0).null().s("cam").bytes();
    let Command::Play(p) = command(body) else {
        panic!("not play")
    };
    assert_eq!((p.start, p.duration, p.reset), (-2.0, -1.0, true));
    assert_eq!(p.options, None);
}

#[test]
fn play_reads_ffmpeg_start_argument() {
    // FFmpeg: play(name, -2000) for live; rtmpdump sends -1000.
    let body = Amf::default()
        .s("play")
        .n(4.0)
        .null()
        .s("cam")
        .n(-2000.0)
        .bytes();
    let Command::Play(p) = command(body) else {
        panic!("not play")
    };
    assert_eq!(
        (p.transaction_id, p.name.as_str(), p.start),
        (4.0, "cam", -2000.0)
    );
}

#[test]
fn play_reads_tc_options_object() {
    let body = Amf::default()
        .s("play")
        .n(0.0)
        .null()
        .s("asis:cam")
        .obj_start()
        .key("audioLifetime")
        .n(1.5)
        .obj_end()
        .bytes();
    let Command::Play(p) = command(body) else {
        panic!("not play")
    };
    let opts = p.options.expect("options object");
    assert_eq!(opts.get("audioLifetime").and_then(Value::as_f64), Some(1.5));
    assert_eq!(p.start, -2.0);
}

#[test]
fn pause_and_receive_flags_are_parsed() {
    let pause = Amf::default()
        .s("pause")
        .n(0.0)
        .null()
        .b(true)
        .n(1234.0)
        .bytes();
    assert_eq!(
        command(pause),
        Command::Pause {
            transaction_id: 0.0,
            pause: true,
            millis: 1234.0
        }
    );
    let audio = Amf::default()
        .s("receiveAudio")
        .n(0.0)
        .null()
        .b(false)
        .bytes();
    assert_eq!(command(audio), Command::ReceiveAudio(false));
    let video = Amf::default()
        .s("receiveVideo")
        .n(0.0)
        .null()
        .n(1.0)
        .bytes();
    assert_eq!(command(video), Command::ReceiveVideo(true));
}

#[test]
fn relay_splits_target_from_forwarded_arguments() {
    // The TC README's relay example.
    let body = Amf::default()
        .s("relay")
        .n(0.0)
        .null()
        .s("1f9a5f4769fef5884d321e969b6ef7b64fe8db5f11c12637")
        .s("this is a relay message")
        .n(5.0)
        .bytes();
    assert_eq!(
        command(body),
        Command::Relay {
            target: "1f9a5f4769fef5884d321e969b6ef7b64fe8db5f11c12637".into(),
            args: vec![Value::from("this is a relay message"), Value::Number(5.0)],
        }
    );
}

#[test]
fn relay_without_target_is_refused() {
    let body = Amf::default().s("relay").n(0.0).null().bytes();
    let err = Message::decode(&raw(20, body)).unwrap_err();
    assert!(matches!(
        err,
        MessageError::BadCommand { name: "relay", .. }
    ));
}

#[test]
fn unknown_command_is_kept_whole() {
    let body = Amf::default()
        .s("myCall")
        .n(9.0)
        .null()
        .s("x")
        .n(2.0)
        .bytes();
    let c = command(body.clone());
    assert_eq!(
        c,
        Command::Other(GenericCommand {
            name: "myCall".into(),
            transaction_id: 9.0,
            command_object: Value::Null,
            args: vec![Value::from("x"), Value::Number(2.0)],
        })
    );
    let m = Message::Command {
        encoding: Encoding::Amf0,
        command: c,
    };
    assert_eq!(m.encode_payload().unwrap(), body);
}

#[test]
fn every_command_round_trips() {
    let info = Value::object([
        ("level", Value::from("status")),
        ("code", Value::from("NetStream.Play.Start")),
    ]);
    let commands = vec![
        command(ffmpeg_connect()),
        Command::CreateStream {
            transaction_id: 4.0,
        },
        Command::DeleteStream {
            transaction_id: 0.0,
            stream_id: 1.0,
        },
        Command::CloseStream {
            transaction_id: 0.0,
        },
        Command::ReleaseStream {
            transaction_id: 2.0,
            name: "key".into(),
        },
        Command::FcPublish {
            transaction_id: 3.0,
            name: "key".into(),
        },
        Command::FcUnpublish {
            transaction_id: 6.0,
            name: "key".into(),
        },
        Command::Publish {
            transaction_id: 5.0,
            name: Some("key".into()),
            kind: PublishKind::Live,
        },
        Command::Play(Play {
            transaction_id: 0.0,
            name: "cam".into(),
            start: -1000.0,
            duration: -1.0,
            reset: false,
            options: Some(Value::object([("videoLifetime", Value::Number(2.0))])),
        }),
        Command::Pause {
            transaction_id: 0.0,
            pause: false,
            millis: 10.0,
        },
        Command::Seek {
            transaction_id: 0.0,
            millis: 0.0,
        },
        Command::ReceiveAudio(true),
        Command::ReceiveVideo(false),
        Command::SetPeerInfo {
            addresses: vec!["127.0.0.1:1935".into()],
        },
        Command::Relay {
            target: "ab".into(),
            args: vec![Value::Number(1.0)],
        },
        Command::Broadcast {
            args: vec![Value::from("hi")],
        },
        Command::Watch {
            target: "cd".into(),
        },
        Command::CheckBw {
            transaction_id: 7.0,
        },
        Command::GetStreamLength {
            transaction_id: 8.0,
            name: "cam".into(),
        },
        Command::Result {
            transaction_id: 1.0,
            command_object: Value::object([("fmsVer", Value::from("FMS/3,5,7,7009"))]),
            args: vec![info.clone()],
        },
        Command::Error {
            transaction_id: 9.0,
            command_object: Value::Null,
            args: vec![info.clone()],
        },
        Command::OnStatus { info },
    ];
    for command in commands {
        for encoding in [Encoding::Amf0, Encoding::Amf3] {
            let m = Message::Command {
                encoding,
                command: command.clone(),
            };
            assert_eq!(round_trip(&m), m, "{}", command.name());
        }
    }
}

#[test]
fn set_data_frame_body_is_what_subscribers_receive() {
    let subscriber_view = Amf::default()
        .s("onMetaData")
        .obj_start()
        .key("width")
        .n(1280.0)
        .obj_end()
        .bytes();
    let mut body = Amf::default().s("@setDataFrame").0;
    body.extend_from_slice(&subscriber_view);
    let payload = Bytes::from(body);
    let m = Message::decode(&raw(type_id::DATA_AMF0, payload.clone())).unwrap();
    let Message::Data {
        data:
            Data::SetDataFrame {
                handler,
                values,
                body,
            },
        ..
    } = &m
    else {
        panic!("expected @setDataFrame, got {m:?}");
    };
    assert_eq!(handler, "onMetaData");
    assert_eq!(values[0].get("width").and_then(Value::as_f64), Some(1280.0));
    assert_eq!(body, &subscriber_view);
    // Sliced from the publisher's payload, not copied.
    assert_eq!(
        body.as_ptr(),
        payload[payload.len() - body.len()..].as_ptr()
    );
    assert_eq!(m.encode_payload().unwrap(), payload);
}

#[test]
fn clear_data_frame_names_its_handler() {
    let body = Amf::default().s("@clearDataFrame").s("onMetaData").bytes();
    let m = Message::decode(&raw(18, body.clone())).unwrap();
    assert_eq!(
        m,
        Message::Data {
            encoding: Encoding::Amf0,
            data: Data::ClearDataFrame {
                handler: "onMetaData".into()
            }
        }
    );
    assert_eq!(m.encode_payload().unwrap(), body);
}

#[test]
fn plain_data_message_is_forwarded_as_is() {
    let body = Amf::default().s("onTextData").s("hello").bytes();
    let m = Message::decode(&raw(18, body.clone())).unwrap();
    let Message::Data { data, .. } = &m else {
        panic!("not data")
    };
    assert_eq!(data.handler(), "onTextData");
    assert_eq!(m.encode_payload().unwrap(), body);
}

#[test]
fn amf3_data_message_round_trips() {
    let mut body = vec![0u8];
    body.extend_from_slice(&Amf::default().s("@setDataFrame").s("onMetaData").n(1.0).0);
    let payload = Bytes::from(body);
    let m = Message::decode(&raw(type_id::DATA_AMF3, payload.clone())).unwrap();
    assert!(matches!(
        m,
        Message::Data {
            encoding: Encoding::Amf3,
            data: Data::SetDataFrame { .. }
        }
    ));
    assert_eq!(m.encode_payload().unwrap(), payload);
}

#[test]
fn media_payloads_are_shared_not_copied() {
    let payload = Bytes::from(vec![0x17, 1, 0, 0, 0, 0xAA]);
    let m = Message::decode(&raw(type_id::VIDEO, payload.clone())).unwrap();
    let Message::Video(v) = &m else {
        panic!("not video")
    };
    assert_eq!(v.as_ptr(), payload.as_ptr());
    assert_eq!(m.encode_payload().unwrap().as_ptr(), payload.as_ptr());
}

#[test]
fn shared_object_and_unknown_types_are_kept() {
    let m = Message::decode(&raw(19, Bytes::from_static(b"so"))).unwrap();
    assert_eq!(
        m,
        Message::Unknown {
            type_id: 19,
            payload: Bytes::from_static(b"so")
        }
    );
}

fn flv_tag(type_id: u8, ts: u32, body: &[u8], back_pointer: bool) -> Vec<u8> {
    let mut t = vec![type_id];
    t.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    let ts = ts.to_be_bytes();
    t.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0]]);
    t.extend_from_slice(&[0, 0, 0]);
    t.extend_from_slice(body);
    if back_pointer {
        t.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
    }
    t
}

fn aggregate(payload: Vec<u8>, ts: u32) -> RawMessage {
    RawMessage {
        csid: 6,
        timestamp: MediaTime::from_millis(ts),
        type_id: type_id::AGGREGATE,
        stream_id: 1,
        payload: Bytes::from(payload),
    }
}

#[test]
fn aggregate_splits_with_rebased_timestamps() {
    let mut p = flv_tag(9, 1000, &[0x17, 1, 0, 0, 0], true);
    p.extend(flv_tag(8, 1023, &[0xAF, 1, 0x21], true));
    p.extend(flv_tag(9, 1033, &[0x27, 1, 0, 0, 0], true));
    let subs: Vec<_> = split_aggregate(&aggregate(p, 5000))
        .collect::<Result<_, _>>()
        .unwrap();
    let shape: Vec<_> = subs
        .iter()
        .map(|m| (m.type_id, m.timestamp.as_millis(), m.stream_id, m.csid))
        .collect();
    assert_eq!(shape, [(9, 5000, 1, 6), (8, 5023, 1, 6), (9, 5033, 1, 6)]);
    assert_eq!(&subs[1].payload[..], &[0xAF, 1, 0x21]);
}

#[test]
fn aggregate_timestamps_wrap_at_two_to_the_32() {
    let mut p = flv_tag(8, 0, &[0xAF, 1], true);
    p.extend(flv_tag(8, 20, &[0xAF, 1], true));
    let subs: Vec<_> = split_aggregate(&aggregate(p, u32::MAX - 9))
        .map(|m| m.unwrap().timestamp.as_millis())
        .collect();
    assert_eq!(subs, [u32::MAX - 9, 10]);
}

#[test]
fn aggregate_uses_extended_tag_timestamp_byte() {
    let mut p = flv_tag(8, 0x0100_0000, &[0xAF, 1], true);
    p.extend(flv_tag(8, 0x0100_0010, &[0xAF, 1], true));
    let subs: Vec<_> = split_aggregate(&aggregate(p, 0))
        .map(|m| m.unwrap().timestamp.as_millis())
        .collect();
    assert_eq!(subs, [0, 16]);
}

#[test]
fn aggregate_without_final_back_pointer_is_accepted() {
    let mut p = flv_tag(9, 0, &[0x17, 1], true);
    p.extend(flv_tag(9, 40, &[0x27, 1], false));
    let n = split_aggregate(&aggregate(p, 0))
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .len();
    assert_eq!(n, 2);
}

#[test]
fn aggregate_with_overlong_tag_stops_with_error() {
    let mut p = flv_tag(9, 0, &[0x17, 1], true);
    let bad_start = p.len();
    p.extend(flv_tag(9, 40, &[0x27; 10], true));
    p.truncate(p.len() - 9);
    let results: Vec<_> = split_aggregate(&aggregate(p, 0)).collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert_eq!(
        results[1],
        Err(MessageError::AggregateTruncated { offset: bad_start })
    );
}

#[test]
fn nested_aggregate_is_refused() {
    let p = flv_tag(22, 0, &[0; 4], true);
    let results: Vec<_> = split_aggregate(&aggregate(p, 0)).collect();
    assert_eq!(results, [Err(MessageError::AggregateType(22))]);
}

#[test]
fn aggregate_shorter_than_a_tag_header_is_refused() {
    let results: Vec<_> = split_aggregate(&aggregate(vec![9, 0, 0], 0)).collect();
    assert_eq!(
        results,
        [Err(MessageError::AggregateTruncated { offset: 0 })]
    );
}

#[test]
fn oversized_amf_message_is_refused_before_decoding() {
    // A quarter-megabyte-plus of `null` markers: cheap to send, costly to
    // decode into values.
    let mut body = Amf::default().s("@setDataFrame").0;
    body.resize(MAX_AMF_MESSAGE_LEN + 1, 0x05);
    let err = Message::decode(&raw(type_id::DATA_AMF0, Bytes::from(body))).unwrap_err();
    assert_eq!(
        err,
        MessageError::AmfTooLong {
            type_id: type_id::DATA_AMF0,
            len: MAX_AMF_MESSAGE_LEN + 1,
            limit: MAX_AMF_MESSAGE_LEN
        }
    );
}

#[test]
fn oversized_media_is_not_subject_to_the_amf_limit() {
    let payload = Bytes::from(vec![0x27; MAX_AMF_MESSAGE_LEN * 2]);
    assert!(matches!(
        Message::decode(&raw(type_id::VIDEO, payload)),
        Ok(Message::Video(_))
    ));
}

#[test]
fn embedders_can_raise_the_amf_limit() {
    let body = Amf::default().s("onTextData").s(&"x".repeat(1000)).bytes();
    let r = raw(type_id::DATA_AMF0, body);
    assert!(Message::decode_with_amf_limit(&r, 100).is_err());
    assert!(Message::decode_with_amf_limit(&r, 2000).is_ok());
}

#[test]
fn command_with_a_reference_to_nothing_is_not_encoded() {
    // A relay forwards a peer's arguments; one that refers to a value the
    // forwarded message does not contain would reach the recipient as AMF no
    // decoder accepts (the shape the message fuzz target found).
    let relay = Message::Command {
        encoding: Encoding::Amf0,
        command: Command::Relay {
            target: "x".into(),
            args: vec![Value::Reference(0)],
        },
    };
    assert!(matches!(
        relay.encode_payload(),
        Err(MessageError::Amf {
            context: "command",
            source: AmfError::OutOfRange(_)
        })
    ));
}

#[test]
fn command_reference_to_an_earlier_argument_is_encoded() {
    let relay = Message::Command {
        encoding: Encoding::Amf0,
        command: Command::Relay {
            target: "x".into(),
            args: vec![Value::object([("a", Value::Null)]), Value::Reference(0)],
        },
    };
    assert_eq!(round_trip(&relay), relay);
}

#[test]
fn delete_stream_naming_the_stream_decodes_as_a_generic_command() {
    // GStreamer rtmp2sink: deleteStream(0, null, "name").
    let cmd = command(
        Amf::default()
            .s("deleteStream")
            .n(0.0)
            .null()
            .s("cam")
            .bytes(),
    );
    match cmd {
        Command::Other(g) => {
            assert_eq!(g.name, "deleteStream");
            assert_eq!(g.args, vec![Value::from("cam")]);
        }
        other => panic!("expected a generic command, got {other:?}"),
    }
}

/// A command `deep` (transaction 1, null object) whose one argument is
/// `levels` nested strict arrays of one element.
fn nested_command(levels: usize) -> Bytes {
    let mut b = vec![0x02, 0x00, 0x04];
    b.extend_from_slice(b"deep");
    b.push(0x00);
    b.extend_from_slice(&1.0f64.to_be_bytes());
    b.push(0x05);
    for _ in 0..levels {
        b.push(0x0A);
        b.extend_from_slice(&1u32.to_be_bytes());
    }
    b.push(0x05);
    Bytes::from(b)
}

#[test]
fn command_nested_past_the_configured_depth_is_refused() {
    let msg = raw(type_id::COMMAND_AMF0, nested_command(5));
    assert!(Message::decode(&msg).is_ok());
    assert!(matches!(
        Message::decode_with_amf_limits(&msg, MAX_AMF_MESSAGE_LEN, 4),
        Err(MessageError::Amf {
            source: crate::amf::AmfError::TooDeep { limit: 4 },
            ..
        })
    ));
}

#[test]
fn data_nested_past_the_configured_depth_is_refused() {
    let mut b = vec![0x02, 0x00, 0x0A];
    b.extend_from_slice(b"onMetaData");
    for _ in 0..3 {
        b.push(0x0A);
        b.extend_from_slice(&1u32.to_be_bytes());
    }
    b.push(0x05);
    let msg = raw(type_id::DATA_AMF0, Bytes::from(b));
    assert!(Message::decode_with_amf_limits(&msg, MAX_AMF_MESSAGE_LEN, 3).is_ok());
    assert!(Message::decode_with_amf_limits(&msg, MAX_AMF_MESSAGE_LEN, 2).is_err());
}
