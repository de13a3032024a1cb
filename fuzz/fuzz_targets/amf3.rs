//! AMF3: decoding arbitrary bytes never panics or over-reads, and whatever
//! decodes re-encodes stably.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tincan_core::amf::amf3;

fuzz_target!(|data: &[u8]| {
    let Ok((value, used)) = amf3::decode(data) else {
        return;
    };
    assert!(used <= data.len());
    let mut out = bytes::BytesMut::new();
    if amf3::encode(&value, &mut out).is_ok() {
        if let Ok((again, _)) = amf3::decode(&out) {
            let mut out2 = bytes::BytesMut::new();
            amf3::encode(&again, &mut out2).expect("re-encoding decoded value");
            assert_eq!(out, out2);
        }
    }
});
