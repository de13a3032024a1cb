//! AMF0: decoding arbitrary bytes never panics, and whatever decodes
//! re-encodes and decodes to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tincan_core::amf::amf0;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let mut out = bytes::BytesMut::new();
    // References decode unresolved and may not re-encode against a fresh
    // table; everything else must.
    if amf0::encode_all(&values, &mut out).is_ok() {
        if let Ok(again) = amf0::decode_all(&out) {
            // NaN != NaN, so compare the encodings instead of the values.
            let mut out2 = bytes::BytesMut::new();
            amf0::encode_all(&again, &mut out2).expect("re-encoding decoded values");
            assert_eq!(out, out2);
        }
    }
});
