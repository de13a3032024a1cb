//! The client session against an arbitrary server: whatever bytes come
//! back, `ClientSession` reports an error or a status and closes, never
//! panics, and keeps its own contract.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::client::{ClientConfig, ClientEvent, ClientSession, MediaKind, Role};
use tincan_core::entropy::SeededEntropy;
use tincan_core::handshake::ServerCheck;
use tincan_core::time::MediaTime;

/// The entropy seed of the fuzzed client. Seeds are recorded against a
/// client with the same seed, so the server's S2 in them echoes this
/// client's C1 and the fuzzer starts past the handshake.
pub const CLIENT_SEED: u64 = 1;

/// The first input byte: the low two bits pick the role, the rest how the
/// server's bytes are cut into reads (1 to 4,033 bytes each).
pub fn head(role: Role, piece_steps: u8) -> u8 {
    let r = match role {
        Role::Play => 0,
        Role::Publish => 1,
        Role::Connect => 2,
    };
    r | (piece_steps.min(63) << 2)
}

/// The config the fuzzed client and the seed recorder both use.
pub fn config(role: Role) -> ClientConfig {
    let mut config = ClientConfig::new("rtmp://fuzz.invalid/live", "live", "s", role);
    // Lenient: a server's handshake never stops the fuzzer from reaching the
    // chunk stream behind it.
    config.handshake.server_check = ServerCheck::Lenient;
    config
}

/// A one-frame H.264 body a publisher sends once the server lets it.
const FRAME: &[u8] = b"\x17\x01\x00\x00\x00\x00\x00\x00\x01\x65";

/// See the module docs. Input: [`head`], then the server's bytes.
pub fn client(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let role = match first & 3 {
        0 => Role::Play,
        1 => Role::Publish,
        _ => Role::Connect,
    };
    let piece = 1 + usize::from(first >> 2) * 64;
    let start = Instant::now();
    let mut now = start;
    let mut client = ClientSession::new(now, config(role), &mut SeededEntropy::new(CLIENT_SEED));
    let mut closed = false;
    let mut sent = 0u32;
    for read in rest.chunks(piece) {
        now += Duration::from_millis(10);
        let result = client.handle_input(now, read);
        if result.is_err() {
            assert!(client.is_closed(), "an input error leaves the session open");
            assert!(client.handle_input(now, read).is_err(), "errors are sticky");
        }
        if role == Role::Publish && client.is_active() && sent < 4 {
            let ts = MediaTime::from_millis(sent * 33);
            if client
                .send_media(MediaKind::Video, ts, Bytes::from_static(FRAME))
                .is_ok()
            {
                sent += 1;
            }
        }
        client.handle_timeout(now);
        drain(&mut client, &mut closed);
    }
    // A server that says nothing more: the start deadline closes a client
    // still waiting, and the end of the connection closes the rest.
    client.handle_timeout(start + Duration::from_secs(3600));
    client.handle_eof(now);
    drain(&mut client, &mut closed);
    assert!(client.is_closed(), "EOF leaves the session open");
    assert!(closed, "the session closed without reporting Closed");
}

/// Drains what the session has to say, checking that `Closed` comes once
/// and last.
fn drain(client: &mut ClientSession, closed: &mut bool) {
    while let Some(t) = client.poll_transmit() {
        assert!(!t.bufs.is_empty(), "an empty transmit");
    }
    while let Some(event) = client.poll_event() {
        assert!(!*closed, "an event after Closed: {event:?}");
        if matches!(event, ClientEvent::Closed(_)) {
            *closed = true;
        }
    }
}
