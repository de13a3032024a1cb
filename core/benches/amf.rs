//! AMF on the command path: the cost of the messages every connection
//! exchanges once or a few times (`connect`, `play`, `onMetaData`), which
//! bounds how fast a server can take a crowd of viewers joining at once.
//!
//! * `amf0/connect`: the body of a `connect` as FFmpeg 7 sends it to play
//!   (name, transaction id, a 9-member command object with Enhanced RTMP's
//!   `fourCcList`), encoded with [`amf0::encode_all`] and decoded with
//!   [`amf0::decode_all`].
//! * `amf0/onMetaData`: `@setDataFrame onMetaData` with the ECMA array
//!   FFmpeg writes for a 720p30 H.264+AAC stream (16 members).
//! * `amf3/object_with_traits`: one typed object (8 sealed members, 2
//!   dynamic) with inline traits, as Flash writes a class instance.
//! * `amf3/array_of_32_objects`: an array of 32 such objects where, as in
//!   Flash's output, all but the first refer to the first's traits and
//!   repeated strings are string references.
//! * `message/play`: the typed layer: [`Message::decode`] of a `play`
//!   command (AMF0 parse plus typing into [`Command::Play`]) and
//!   [`Message::to_raw`] back to a payload.
//!
//! Throughput is the encoded size in bytes.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tincan_core::amf::{amf0, amf3};
use tincan_core::message::{Command, Encoding, Message, Play, Value};
use tincan_core::time::MediaTime;

/// `connect` as FFmpeg 7's RTMP client sends it to play a stream.
fn connect_values() -> Vec<Value> {
    vec![
        Value::from("connect"),
        Value::Number(1.0),
        Value::object([
            ("app", Value::from("live")),
            ("flashVer", Value::from("LNX 9,0,124,2")),
            ("tcUrl", Value::from("rtmp://127.0.0.1:1935/live")),
            ("fpad", Value::Boolean(false)),
            ("capabilities", Value::Number(15.0)),
            ("audioCodecs", Value::Number(4071.0)),
            ("videoCodecs", Value::Number(252.0)),
            ("videoFunction", Value::Number(1.0)),
            (
                "fourCcList",
                Value::StrictArray(
                    ["av01", "vp09", "hvc1", "avc1", "mp4a", "Opus", "fLaC"]
                        .into_iter()
                        .map(Value::from)
                        .collect(),
                ),
            ),
        ]),
    ]
}

/// `@setDataFrame onMetaData {...}` as FFmpeg writes it for 720p30
/// H.264 at 2.5 Mbit/s with 48 kHz stereo AAC.
fn metadata_values() -> Vec<Value> {
    let members: Vec<(String, Value)> = [
        ("duration", Value::Number(0.0)),
        ("width", Value::Number(1280.0)),
        ("height", Value::Number(720.0)),
        ("videodatarate", Value::Number(2500.0)),
        ("framerate", Value::Number(30.0)),
        ("videocodecid", Value::Number(7.0)),
        ("audiodatarate", Value::Number(128.0)),
        ("audiosamplerate", Value::Number(48000.0)),
        ("audiosamplesize", Value::Number(16.0)),
        ("stereo", Value::Boolean(true)),
        ("audiocodecid", Value::Number(10.0)),
        ("major_brand", Value::from("isom")),
        ("minor_version", Value::from("512")),
        ("compatible_brands", Value::from("isomiso2avc1mp41")),
        ("encoder", Value::from("Lavf61.7.100")),
        ("filesize", Value::Number(0.0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vec![
        Value::from("@setDataFrame"),
        Value::from("onMetaData"),
        Value::EcmaArray(members),
    ]
}

/// Writes AMF3 the way Flash Player does: strings and traits already
/// written are sent as references.
#[derive(Default)]
struct Amf3Writer {
    out: BytesMut,
    strings: HashMap<String, u32>,
    traits: HashMap<String, u32>,
}

impl Amf3Writer {
    fn u29(&mut self, v: u32) {
        assert!(v < 1 << 29);
        if v < 0x80 {
            self.out.put_u8(v as u8);
        } else if v < 0x4000 {
            self.out.put_u8(((v >> 7) | 0x80) as u8);
            self.out.put_u8((v & 0x7f) as u8);
        } else if v < 0x20_0000 {
            self.out.put_u8(((v >> 14) | 0x80) as u8);
            self.out.put_u8((((v >> 7) & 0x7f) | 0x80) as u8);
            self.out.put_u8((v & 0x7f) as u8);
        } else {
            self.out.put_u8((((v >> 22) & 0x7f) | 0x80) as u8);
            self.out.put_u8((((v >> 15) & 0x7f) | 0x80) as u8);
            self.out.put_u8((((v >> 8) & 0x7f) | 0x80) as u8);
            self.out.put_u8((v & 0xff) as u8);
        }
    }

    /// A string without its marker (`UTF-8-vr`).
    fn string_body(&mut self, s: &str) {
        if s.is_empty() {
            self.u29(1);
        } else if let Some(&i) = self.strings.get(s) {
            self.u29(i << 1);
        } else {
            let i = self.strings.len() as u32;
            self.strings.insert(s.to_owned(), i);
            self.u29(((s.len() as u32) << 1) | 1);
            self.out.put_slice(s.as_bytes());
        }
    }

    fn string(&mut self, s: &str) {
        self.out.put_u8(0x06);
        self.string_body(s);
    }

    fn integer(&mut self, v: u32) {
        self.out.put_u8(0x04);
        self.u29(v);
    }

    fn double(&mut self, v: f64) {
        self.out.put_u8(0x05);
        self.out.put_f64(v);
    }

    fn boolean(&mut self, v: bool) {
        self.out.put_u8(if v { 0x03 } else { 0x02 });
    }

    /// Opens an object of `class` with these sealed member names (in the
    /// order their values must follow) and dynamic members after them.
    fn object_header(&mut self, class: &str, sealed: &[&str]) {
        self.out.put_u8(0x0a);
        if let Some(&i) = self.traits.get(class) {
            // U29O-traits-ref: index << 2 | 0b01.
            self.u29((i << 2) | 0b01);
            return;
        }
        let i = self.traits.len() as u32;
        self.traits.insert(class.to_owned(), i);
        // U29O-traits: count << 4 | dynamic (0b1000) | inline traits (0b011).
        self.u29(((sealed.len() as u32) << 4) | 0b1011);
        self.string_body(class);
        for name in sealed {
            self.string_body(name);
        }
    }

    /// One chat message as a Flash client's class instance.
    fn chat_message(&mut self, n: u32) {
        self.object_header(
            "com.example.chat.ChatMessage",
            &[
                "id", "room", "sender", "text", "sentAt", "urgent", "color", "seq",
            ],
        );
        self.integer(n);
        self.string("lobby");
        self.string(if n % 2 == 0 { "alice" } else { "bob" });
        self.string(&format!("message number {n}: hello from the benchmark"));
        self.double(1.7e12 + f64::from(n));
        self.boolean(n % 5 == 0);
        self.integer(0x00FF_8800 & 0x0FFF_FFFF);
        self.double(f64::from(n) * 1.5);
        // Dynamic members, then the empty name that ends them.
        self.string_body("clientVersion");
        self.string("AIR 51.1");
        self.string_body("retries");
        self.integer(0);
        self.string_body("");
    }

    fn finish(self) -> Vec<u8> {
        self.out.to_vec()
    }
}

fn amf3_object() -> Vec<u8> {
    let mut w = Amf3Writer::default();
    w.chat_message(7);
    w.finish()
}

fn amf3_array() -> Vec<u8> {
    let mut w = Amf3Writer::default();
    w.out.put_u8(0x09);
    w.u29((32 << 1) | 1); // 32 dense items
    w.string_body(""); // no associative part
    for n in 0..32 {
        w.chat_message(n);
    }
    w.finish()
}

fn play_message() -> Message {
    // FFmpeg's play: transaction id, null, name, start -2000 (live).
    Message::Command {
        encoding: Encoding::Amf0,
        command: Command::Play(Play {
            transaction_id: 4.0,
            name: "bench-stream".to_owned(),
            start: -2000.0,
            duration: -1.0,
            reset: true,
            options: None,
        }),
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn amf0_bench(c: &mut Criterion, name: &str, values: &[Value]) {
    let mut encoded = BytesMut::new();
    amf0::encode_all(values, &mut encoded).expect("encodes");
    assert_eq!(
        amf0::decode_all(&encoded).expect("decodes"),
        values,
        "round trip"
    );
    let mut group = c.benchmark_group(format!("amf0/{name}"));
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    let mut out = BytesMut::with_capacity(encoded.len());
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            amf0::encode_all(black_box(values), &mut out).expect("encodes");
            black_box(&out);
        });
    });
    group.bench_function("decode", |b| {
        b.iter(|| black_box(amf0::decode_all(black_box(&encoded)).expect("decodes")));
    });
    group.finish();
}

fn amf0_benches(c: &mut Criterion) {
    amf0_bench(c, "connect", &connect_values());
    amf0_bench(c, "onMetaData", &metadata_values());
}

fn amf3_benches(c: &mut Criterion) {
    let object = amf3_object();
    let (value, used) = amf3::decode(&object).expect("object decodes");
    assert_eq!(used, object.len());
    assert_eq!(
        value.get("sender").and_then(|v| v.as_str()),
        Some("bob"),
        "sealed member"
    );
    assert_eq!(
        value.get("clientVersion").and_then(|v| v.as_str()),
        Some("AIR 51.1"),
        "dynamic member"
    );

    let array = amf3_array();
    let (value, used) = amf3::decode(&array).expect("array decodes");
    assert_eq!(used, array.len());
    let amf3::Value::Array { dense, .. } = &value else {
        panic!("not an array: {value:?}");
    };
    assert_eq!(dense.len(), 32);
    assert_eq!(
        dense[31].get("sender").and_then(|v| v.as_str()),
        Some("bob"),
        "trait and string references resolve"
    );

    let mut group = c.benchmark_group("amf3");
    group.throughput(Throughput::Bytes(object.len() as u64));
    group.bench_function("object_with_traits/decode", |b| {
        b.iter(|| black_box(amf3::decode(black_box(&object)).expect("decodes")));
    });
    group.throughput(Throughput::Bytes(array.len() as u64));
    group.bench_function("array_of_32_objects/decode", |b| {
        b.iter(|| black_box(amf3::decode(black_box(&array)).expect("decodes")));
    });
    group.finish();
}

fn message_benches(c: &mut Criterion) {
    let play = play_message();
    let raw = play.to_raw(8, MediaTime::ZERO, 1).expect("play encodes");
    assert_eq!(Message::decode(&raw).expect("play decodes"), play);
    let mut group = c.benchmark_group("message/play");
    group.throughput(Throughput::Bytes(raw.payload.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| black_box(Message::decode(black_box(&raw)).expect("decodes")));
    });
    group.bench_function("encode", |b| {
        b.iter(|| {
            black_box(
                black_box(&play)
                    .to_raw(8, MediaTime::ZERO, 1)
                    .expect("encodes"),
            )
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = amf0_benches, amf3_benches, message_benches
}
criterion_main!(benches);
