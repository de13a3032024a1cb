//! Typed messages: any type id with any payload decodes or fails cleanly,
//! and a decoded message re-encodes to a payload that decodes the same way.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tincan_core::chunk::RawMessage;
use tincan_core::message::{split_aggregate, Message};
use tincan_core::time::MediaTime;

#[derive(Arbitrary, Debug)]
struct Input {
    type_id: u8,
    timestamp: u32,
    payload: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let raw = RawMessage {
        csid: 3,
        timestamp: MediaTime::from_millis(input.timestamp),
        type_id: input.type_id,
        stream_id: 1,
        payload: Bytes::from(input.payload),
    };
    if let Ok(Message::Aggregate(_)) = Message::decode(&raw) {
        for sub in split_aggregate(&raw) {
            let Ok(sub) = sub else { break };
            assert!(sub.payload.len() <= raw.payload.len());
            let _ = Message::decode(&sub);
        }
    }
    let Ok(msg) = Message::decode(&raw) else {
        return;
    };
    if let Ok(again) = msg.to_raw(3, raw.timestamp, 1) {
        let decoded = Message::decode(&again).expect("a re-encoded message decodes");
        assert_eq!(decoded.type_id(), msg.type_id());
    }
});
