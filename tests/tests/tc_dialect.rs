//! TC's simplified RTMP dialect (`tincan serve --simplified-rtmp`), for
//! clients that mishandle header compression or chunk-size changes. The
//! player here reads the server's bytes with a deliberately naive chunk
//! reader that only understands what such a client understands: every
//! message starts with a full type-0 header, continuation chunks are type
//! 3 on the same chunk stream, and chunks are always 128 bytes. Without
//! the flag the same reader fails, so the check can tell the two apart.

use std::time::Duration;

use bytes::Bytes;
use tincan_core::message::Message;
use tincan_tests::server::TestServer;
use tincan_tests::sim::media::{avc_inter, avc_keyframe, avc_sequence_header, tagged};
use tincan_tests::tc_client::{status_code, TcClient};

const TIMEOUT: Duration = Duration::from_secs(10);

/// What the naive reader made of the server's bytes.
#[derive(Debug, Default)]
struct Wire {
    /// (type id, length) of every message, in order.
    messages: Vec<(u8, usize)>,
}

/// Reads `bytes` as a client that knows only type-0 message starts, type-3
/// continuations and 128-byte chunks; the first thing it cannot handle is
/// the error. A message cut off by the end of the capture is ignored.
fn naive_read(bytes: &[u8]) -> Result<Wire, String> {
    struct Partial {
        type_id: u8,
        len: usize,
        left: usize,
        extended: bool,
    }
    let mut partial: std::collections::HashMap<u32, Partial> = Default::default();
    let mut wire = Wire::default();
    let mut at = 0;
    let need = |at: usize, n: usize| at + n <= bytes.len();
    while need(at, 1) {
        let start = at;
        let fmt = bytes[at] >> 6;
        let mut csid = u32::from(bytes[at] & 0x3F);
        at += 1;
        match csid {
            0 if need(at, 1) => {
                csid = 64 + u32::from(bytes[at]);
                at += 1;
            }
            1 if need(at, 2) => {
                csid = 64 + u32::from(bytes[at]) + 256 * u32::from(bytes[at + 1]);
                at += 2;
            }
            0 | 1 => break,
            _ => {}
        }
        let left = match fmt {
            0 => {
                if partial.contains_key(&csid) {
                    return Err(format!(
                        "type 0 header at byte {start} in the middle of a message on chunk stream {csid}"
                    ));
                }
                if !need(at, 11) {
                    break;
                }
                let h = &bytes[at..at + 11];
                let ts = u32::from_be_bytes([0, h[0], h[1], h[2]]);
                let len = u32::from_be_bytes([0, h[3], h[4], h[5]]) as usize;
                let type_id = h[6];
                at += 11;
                let extended = ts == 0x00FF_FFFF;
                if extended {
                    if !need(at, 4) {
                        break;
                    }
                    at += 4;
                }
                partial.insert(
                    csid,
                    Partial {
                        type_id,
                        len,
                        left: len,
                        extended,
                    },
                );
                len
            }
            3 => {
                let Some(p) = partial.get(&csid) else {
                    return Err(format!(
                        "type 3 header at byte {start} starts a message on chunk stream {csid}"
                    ));
                };
                if p.extended {
                    if !need(at, 4) {
                        break;
                    }
                    at += 4;
                }
                p.left
            }
            _ => {
                return Err(format!(
                    "compressed type {fmt} header at byte {start} on chunk stream {csid}"
                ))
            }
        };
        let take = left.min(128);
        if !need(at, take) {
            break;
        }
        at += take;
        let p = partial.get_mut(&csid).expect("inserted above");
        p.left -= take;
        if p.left == 0 {
            let p = partial.remove(&csid).expect("present");
            wire.messages.push((p.type_id, p.len));
        }
    }
    Ok(wire)
}

/// A publisher sends a configuration, a 10 kB keyframe and inter frames;
/// a player reads until the keyframe arrived. Returns the player's bytes.
fn player_bytes(args: &[&str]) -> Vec<u8> {
    let server = TestServer::start_with(args);
    let mut publisher = TcClient::connect(server.port(), TIMEOUT).expect("publisher connects");
    let ps = publisher.connect_and_create_stream("live", TIMEOUT);
    publisher.publish(ps, "cam");
    assert!(publisher.wait_for(TIMEOUT, |m| status_code(m)
        == Some("NetStream.Publish.Start")));

    let mut player = TcClient::connect(server.port(), TIMEOUT).expect("player connects");
    let s = player.connect_and_create_stream("live", TIMEOUT);
    player.play(s, "cam");
    assert!(player.wait_for(TIMEOUT, |m| status_code(m) == Some("NetStream.Play.Start")));

    let key: Bytes = avc_keyframe(&tagged(b'V', 0, 10_000));
    publisher.send_video(ps, 0, avc_sequence_header(b"config"));
    publisher.send_video(ps, 0, key.clone());
    for n in 1..5 {
        publisher.send_video(ps, n * 40, avc_inter(&tagged(b'V', n, 300)));
    }
    let last = avc_inter(&tagged(b'V', 4, 300));
    assert!(
        player.wait_for(TIMEOUT, |m| matches!(m, Message::Video(p) if *p == last)),
        "the player did not get the stream\n{}",
        server.logs()
    );
    assert!(player
        .received()
        .iter()
        .any(|m| matches!(m, Message::Video(p) if *p == key)));
    player.raw().to_vec()
}

#[test]
fn simplified_dialect_starts_every_message_with_a_full_header_in_128_byte_chunks() {
    let bytes = player_bytes(&["--simplified-rtmp"]);
    let wire = naive_read(&bytes).unwrap_or_else(|e| panic!("naive client failed: {e}"));
    // The 10 kB keyframe (plus its 5-byte AVC header) crossed in 128-byte
    // chunks and was reassembled.
    assert!(
        wire.messages
            .iter()
            .any(|&(t, len)| t == 9 && len == 10_005),
        "{:?}",
        wire.messages
    );
}

#[test]
fn simplified_dialect_sends_no_set_chunk_size_or_set_peer_bandwidth() {
    let bytes = player_bytes(&["--simplified-rtmp"]);
    let wire = naive_read(&bytes).unwrap_or_else(|e| panic!("naive client failed: {e}"));
    let types: Vec<u8> = wire.messages.iter().map(|m| m.0).collect();
    assert!(!types.contains(&1), "Set Chunk Size sent: {types:?}");
    assert!(!types.contains(&6), "Set Peer Bandwidth sent: {types:?}");
    // Window Acknowledgement Size stays: the client must know when to ack.
    assert!(types.contains(&5), "{types:?}");
}

#[test]
fn default_dialect_is_beyond_the_naive_client() {
    let bytes = player_bytes(&[]);
    let err = naive_read(&bytes).expect_err("the default dialect compresses headers");
    assert!(
        err.contains("compressed") || err.contains("type 3 header"),
        "{err}"
    );
}
