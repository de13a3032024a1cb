//! Chunk encode -> decode: any sequence of messages, written with any chunk
//! sizes (changed mid-sequence) and read back in any splits, decodes to the
//! same messages.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tincan_core::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits, RawMessage};
use tincan_core::time::MediaTime;

#[derive(Arbitrary, Debug)]
enum Op {
    Send {
        csid: u16,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        len: u16,
    },
    ChunkSize(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    ops: Vec<Op>,
    splits: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut enc = ChunkEncoder::new();
    let mut wire: Vec<Bytes> = Vec::new();
    let mut sent = Vec::new();
    for op in input.ops {
        match op {
            Op::Send {
                csid,
                timestamp,
                type_id,
                stream_id,
                len,
            } => {
                // Types 1, 2 and 5 change how the decoder reads; they are
                // exercised through ChunkSize below and by the decoder target.
                let type_id = if matches!(type_id, 1 | 2 | 5) {
                    8
                } else {
                    type_id
                };
                let msg = RawMessage {
                    csid: u32::from(csid).clamp(3, 65599),
                    timestamp: MediaTime::from_millis(timestamp),
                    type_id,
                    stream_id,
                    payload: Bytes::from(vec![type_id; usize::from(len)]),
                };
                enc.write(&msg, &mut wire);
                sent.push(msg);
            }
            Op::ChunkSize(size) => enc.set_chunk_size(u32::from(size).max(1), &mut wire),
        }
    }
    let bytes: Vec<u8> = wire.iter().flat_map(|b| b.iter().copied()).collect();
    let mut d = ChunkDecoder::new(DecoderLimits {
        max_chunk_streams: 65600,
        max_partial_streams: 65600,
        ..DecoderLimits::default()
    });
    let mut got = Vec::new();
    let mut rest = &bytes[..];
    let mut splits = input.splits.iter().cycle();
    while !rest.is_empty() {
        let n = usize::from(*splits.next().unwrap_or(&255)).clamp(1, rest.len());
        d.handle_input(&rest[..n])
            .expect("own encoding is within limits");
        rest = &rest[n..];
        while let Some(m) = d.poll_message().expect("own encoding decodes") {
            if m.type_id != 1 {
                got.push(m);
            }
        }
    }
    assert_eq!(got.len(), sent.len());
    for (a, b) in got.iter().zip(&sent) {
        assert_eq!(
            (a.csid, a.type_id, a.stream_id),
            (b.csid, b.type_id, b.stream_id)
        );
        assert_eq!(a.payload, b.payload);
        // The encoder may carry time as deltas; the absolute value must match.
        assert_eq!(a.timestamp, b.timestamp);
    }
});
