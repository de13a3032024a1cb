//! The chunk layer on the media path: what one connection pays to cut a
//! message into chunks (the per-player cost of fan-out, since the payload
//! itself is shared) and to put a publisher's chunks back together.
//!
//! Three messages a live 720p30 H.264+AAC stream is made of: a 200-byte AAC
//! frame, a 12 KB P-frame and a 150 KB keyframe, at out chunk sizes 128 (the
//! protocol default), 4096 (ours, FFmpeg's, OBS's) and 60000 (one chunk for
//! all but keyframes). Messages follow each other on their chunk stream
//! every 33 ms, so after the first ones every header is the steady-state
//! type 3, as on a real connection.
//!
//! * `chunk_encode`: [`ChunkEncoder::write`] of one message into a reused
//!   `Vec<Bytes>` (cleared each time, as a runtime does after its write).
//! * `chunk_decode_whole`: [`ChunkDecoder`] given a run of steady-state
//!   messages (at least 64 KiB) in one buffer, drained with `poll_message`.
//! * `chunk_decode_tcp1460`: the same bytes in 1,460-byte pieces (one TCP
//!   segment each), draining after every piece, so messages and even chunk
//!   headers are split across reads.
//!
//! Throughput is payload bytes, so encode and decode figures compare.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits, RawMessage};
use tincan_core::message::type_id;
use tincan_core::time::MediaTime;

/// Chunk sizes compared.
const CHUNK_SIZES: [u32; 3] = [128, 4096, 60_000];
/// Milliseconds between messages on one chunk stream (30 fps).
const FRAME_MS: u32 = 33;
/// The decoder benches feed at least this much per iteration.
const MIN_RUN: usize = 64 * 1024;
/// One TCP segment's payload on an Ethernet path.
const SEGMENT: usize = 1460;

/// One kind of message under test.
struct Case {
    name: &'static str,
    msg: RawMessage,
}

fn cases() -> Vec<Case> {
    let message = |csid, type_id, len: usize, first: u8| RawMessage {
        csid,
        timestamp: MediaTime::ZERO,
        type_id,
        stream_id: 1,
        // Not all zeros, so nothing downstream can shortcut on it.
        payload: Bytes::from(
            std::iter::once(first)
                .chain((1..len).map(|i| (i * 7) as u8))
                .collect::<Vec<u8>>(),
        ),
    };
    vec![
        Case {
            name: "audio_200B",
            msg: message(4, type_id::AUDIO, 200, 0xAF),
        },
        Case {
            name: "pframe_12KB",
            msg: message(6, type_id::VIDEO, 12 * 1024, 0x27),
        },
        Case {
            name: "keyframe_150KB",
            msg: message(6, type_id::VIDEO, 150 * 1024, 0x17),
        },
    ]
}

fn flatten(bufs: &[Bytes]) -> Vec<u8> {
    bufs.iter().flat_map(|b| b.iter().copied()).collect()
}

/// The byte stream for the decoder benches: a prefix that sets the chunk
/// size and establishes the header state, then `run`, the steady-state
/// bytes of `count` further messages that can be fed again and again (each
/// repetition continues the timeline by the same delta).
struct Stream {
    prefix: Vec<u8>,
    run: Vec<u8>,
    count: usize,
}

fn stream(msg: &RawMessage, chunk_size: u32) -> Stream {
    let mut enc = ChunkEncoder::new();
    let mut bufs = Vec::new();
    enc.set_chunk_size(chunk_size, &mut bufs);
    let mut msg = msg.clone();
    // Type 0, then type 2 (the delta is new), then type 3 from here on.
    for _ in 0..2 {
        enc.write(&msg, &mut bufs);
        msg.timestamp = msg.timestamp.wrapping_add(FRAME_MS);
    }
    let prefix = flatten(&bufs);
    let count = MIN_RUN.div_ceil(msg.payload.len());
    bufs.clear();
    for _ in 0..count {
        enc.write(&msg, &mut bufs);
        msg.timestamp = msg.timestamp.wrapping_add(FRAME_MS);
    }
    let run = flatten(&bufs);
    // fmt 3 in the first byte's top bits: the run is position-independent.
    assert_eq!(run[0] >> 6, 3, "steady state is not type 3");
    Stream { prefix, run, count }
}

/// A decoder that has consumed `stream`'s prefix.
fn primed_decoder(stream: &Stream) -> ChunkDecoder {
    let mut dec = ChunkDecoder::new(DecoderLimits::default());
    dec.handle_input(&stream.prefix).expect("prefix decodes");
    let mut n = 0;
    while dec.poll_message().expect("prefix decodes").is_some() {
        n += 1;
    }
    assert_eq!(n, 3, "set chunk size and two messages");
    dec
}

/// Decodes everything buffered; returns how many messages came out.
fn drain(dec: &mut ChunkDecoder) -> usize {
    let mut n = 0;
    while let Some(m) = dec.poll_message().expect("run decodes") {
        black_box(&m);
        n += 1;
    }
    n
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_encode");
    for case in cases() {
        group.throughput(Throughput::Bytes(case.msg.payload.len() as u64));
        for size in CHUNK_SIZES {
            let mut enc = ChunkEncoder::new();
            let mut out = Vec::new();
            enc.set_chunk_size(size, &mut out);
            let mut msg = case.msg.clone();
            group.bench_function(BenchmarkId::new(case.name, size), |b| {
                b.iter(|| {
                    out.clear();
                    enc.write(&msg, &mut out);
                    msg.timestamp = msg.timestamp.wrapping_add(FRAME_MS);
                    black_box(&out);
                });
            });
        }
    }
    group.finish();
}

fn decode_whole(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_decode_whole");
    for case in cases() {
        for size in CHUNK_SIZES {
            let stream = stream(&case.msg, size);
            group.throughput(Throughput::Bytes(
                (stream.count * case.msg.payload.len()) as u64,
            ));
            let mut dec = primed_decoder(&stream);
            group.bench_function(BenchmarkId::new(case.name, size), |b| {
                b.iter(|| {
                    dec.handle_input(&stream.run).expect("run decodes");
                    assert_eq!(drain(&mut dec), stream.count);
                });
            });
        }
    }
    group.finish();
}

fn decode_segments(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_decode_tcp1460");
    for case in cases() {
        for size in CHUNK_SIZES {
            let stream = stream(&case.msg, size);
            group.throughput(Throughput::Bytes(
                (stream.count * case.msg.payload.len()) as u64,
            ));
            let mut dec = primed_decoder(&stream);
            group.bench_function(BenchmarkId::new(case.name, size), |b| {
                b.iter(|| {
                    let mut n = 0;
                    for piece in stream.run.chunks(SEGMENT) {
                        dec.handle_input(piece).expect("run decodes");
                        n += drain(&mut dec);
                    }
                    assert_eq!(n, stream.count);
                });
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = encode, decode_whole, decode_segments
}
criterion_main!(benches);
