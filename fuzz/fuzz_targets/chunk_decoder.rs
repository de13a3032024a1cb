//! Chunk decoder: arbitrary bytes in arbitrary splits, under small limits,
//! never panic, never hold more than the buffered-bytes bound, never yield a
//! message over the length bound, and stay failed once failed.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tincan_core::chunk::{ChunkDecoder, DecoderLimits};

#[derive(Arbitrary, Debug)]
struct Input {
    max_message_len: u16,
    max_partial_streams: u8,
    max_chunk_streams: u8,
    window_ack: Option<u16>,
    reads: Vec<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let max_message_len = usize::from(input.max_message_len) + 1;
    let limits = DecoderLimits {
        max_message_len,
        max_partial_streams: usize::from(input.max_partial_streams) + 1,
        max_chunk_streams: usize::from(input.max_chunk_streams) + 1,
        max_buffered_bytes: 2 * max_message_len + 64,
        ..DecoderLimits::default()
    };
    let mut d = ChunkDecoder::new(limits);
    if let Some(w) = input.window_ack {
        d.set_window_ack_size(u32::from(w) + 1);
    }
    for read in input.reads {
        if let Err(e) = d.handle_input(&read) {
            assert_eq!(d.poll_message(), Err(e), "errors are sticky");
            return;
        }
        loop {
            assert!(d.buffered_bytes() <= limits.max_buffered_bytes);
            match d.poll_message() {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= max_message_len);
                    assert!((2..=65599).contains(&m.csid));
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(d.poll_message(), Err(e), "errors are sticky");
                    return;
                }
            }
        }
        while d.poll_acknowledgement().is_some() {}
    }
});
