//! The conformance cases, each generic over the [`Runtime`] under test and
//! each checking one behaviour a user would see: frames a real client
//! decoded, statuses a client received, a server that keeps serving.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::event::FrameKind;
use tincan_core::message::Message;

use super::media::{
    ffmpeg_play, gstreamer_play, publish, reports_h264_of_size, rtmpdump, FPS, SMALL,
};
use super::rtmp::{is_keyframe, is_video_config, RtmpClient};
use super::{Running, Runtime, ServerConfig};
use crate::server::Client;
use crate::sim::SimClient;

pub use super::embedder::{
    embedder_approves_a_publish_from_another_thread,
    embedder_denied_connect_is_rejected_with_the_description,
    embedder_denied_play_gets_stream_not_found_and_connection_stays_usable,
    events_report_a_connection_from_open_to_close,
    handle_statistics_show_a_published_stream_and_its_players,
};
pub use super::outbound::{
    graceful_shutdown_ends_an_outbound_connection,
    outbound_dial_to_a_closed_port_closes_with_the_reason,
    outbound_pull_from_itself_republishes_the_remote_stream,
    outbound_push_to_itself_relays_the_publishers_frames,
};

/// Longest any single step may take; the happy path takes a few seconds.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Frames a two-second play must decode at least (of 50 published); the
/// slack absorbs a slow start on a loaded machine.
const TWO_SECONDS: usize = 40;

fn start<R: Runtime>() -> Running {
    R::start(ServerConfig::default())
}

/// Waits for `player` (started with `-t 2`) to finish cleanly.
fn finish(player: &mut Client, server: &Running) {
    let status = player.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "[{}] player did not finish cleanly ({status:?}): {}",
        server.name(),
        player.describe()
    );
}

/// Starts a publisher of `name` and a raw player of it that has received
/// media: the bystander whose service must survive whatever the test does
/// to other connections.
fn bystander(server: &Running, name: &str) -> (Client, RtmpClient) {
    let publisher = publish(&server.url(name), SMALL, 30, FPS);
    let mut player = RtmpClient::play(server.addr(), name);
    assert!(
        player.wait_for_more_video(10, TIMEOUT),
        "[{}] bystander got no media: {}; {}",
        server.name(),
        player.describe(),
        publisher.describe()
    );
    (publisher, player)
}

/// Asserts that the bystander keeps receiving video and that a brand-new
/// connection can still play `name`.
fn assert_still_serving(server: &Running, player: &mut RtmpClient, name: &str) {
    assert!(
        player.wait_for_more_video(FPS as usize, TIMEOUT),
        "[{}] the bystander stopped receiving: {}",
        server.name(),
        player.describe()
    );
    let mut fresh = RtmpClient::play(server.addr(), name);
    assert!(
        fresh.wait_for_more_video(5, TIMEOUT),
        "[{}] a new player got no media: {}",
        server.name(),
        fresh.describe()
    );
}

/// FFmpeg publishes H.264+AAC and another FFmpeg plays it back, decoding
/// two seconds of both.
pub fn ffmpeg_publish_ffmpeg_play_decodes<R: Runtime>() {
    let server = start::<R>();
    let url = server.url("ffmpeg");
    let _publisher = publish(&url, SMALL, 15, FPS);
    let mut player = ffmpeg_play(&url, &["-t", "2"]);
    finish(&mut player, &server);
    let p = player.progress();
    let err = player.stderr();
    assert!(p.video >= TWO_SECONDS, "{}", player.describe());
    assert!(p.audio >= TWO_SECONDS, "{}", player.describe());
    assert!(err.contains("Video: h264"), "{err}");
    assert!(err.contains("Audio: aac"), "{err}");
}

/// rtmpdump (librtmp) records a live stream until its publisher stops,
/// and what it wrote decodes.
pub fn rtmpdump_play_decodes<R: Runtime>() {
    let server = start::<R>();
    let url = server.url("dump");
    // rtmpdump's stop offset travels as the play duration, which a live
    // server ignores: it records until the stream ends.
    let _publisher = publish(&url, SMALL, 4, FPS);
    let dir = tempfile::tempdir().expect("temp dir");
    let flv = dir.path().join("dump.flv");
    let mut dump = rtmpdump(&url, &flv);
    assert!(
        dump.wait_exit(TIMEOUT).is_some(),
        "[{}] rtmpdump did not stop when the stream ended: {}",
        server.name(),
        dump.describe()
    );
    let flv = flv.to_str().expect("UTF-8 temp path");
    let mut decoder = ffmpeg_play(flv, &[]);
    assert!(
        decoder.wait_exit(TIMEOUT).is_some(),
        "{}",
        decoder.describe()
    );
    let p = decoder.progress();
    assert!(
        p.video >= 2 * FPS as usize,
        "{}\nrtmpdump: {}",
        decoder.describe(),
        dump.describe()
    );
    assert!(p.audio >= 2 * FPS as usize, "{}", decoder.describe());
    assert!(decoder.stderr().contains("Video: h264"));
}

/// GStreamer's `rtmp2src` plays a stream and decodes two seconds of its
/// video to raw frames.
pub fn gstreamer_play_decodes<R: Runtime>() {
    let server = start::<R>();
    let url = server.url("gst");
    let _publisher = publish(&url, SMALL, 15, FPS);
    let player = gstreamer_play(&url, SMALL);
    let p = player.wait_for(TIMEOUT, |p| p.video >= 2 * FPS as usize);
    assert!(
        p.video >= 2 * FPS as usize,
        "[{}] {}",
        server.name(),
        player.describe()
    );
}

/// Three publishers, each with three players: every player decodes its
/// own stream (told apart by picture size) and nothing else.
pub fn concurrent_publishers_and_players<R: Runtime>() {
    let server = start::<R>();
    let sizes = [(160, 120), (192, 144), (224, 168)];
    let _publishers: Vec<Client> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| publish(&server.url(&format!("multi{i}")), size, 15, FPS))
        .collect();
    let mut players: Vec<((u32, u32), Client)> = sizes
        .iter()
        .enumerate()
        .flat_map(|(i, &size)| {
            let url = server.url(&format!("multi{i}"));
            (0..3).map(move |_| (size, ffmpeg_play(&url, &["-t", "2"])))
        })
        .collect();
    for (size, player) in &mut players {
        finish(player, &server);
        let p = player.progress();
        assert!(p.video >= TWO_SECONDS, "{}", player.describe());
        assert!(
            reports_h264_of_size(&player.stderr(), *size),
            "[{}] expected {size:?}: {}",
            server.name(),
            player.describe()
        );
    }
}

/// A player that asks for a stream nobody publishes yet waits, and
/// decodes media once a publisher starts.
pub fn play_before_publish_starts_when_publish_begins<R: Runtime>() {
    let server = start::<R>();
    let url = server.url("early");
    let mut player = ffmpeg_play(&url, &["-t", "2"]);
    sleep(Duration::from_millis(1500));
    assert!(
        player.is_running(),
        "[{}] the early player gave up: {}",
        server.name(),
        player.describe()
    );
    assert_eq!(player.progress().video, 0, "{}", player.describe());
    let _publisher = publish(&url, SMALL, 15, FPS);
    finish(&mut player, &server);
    assert!(
        player.progress().video >= TWO_SECONDS,
        "{}",
        player.describe()
    );
}

/// A publisher dies and another takes its place: the player that was
/// watching keeps playing and decodes the new publisher's video.
pub fn republish_keeps_player_playing<R: Runtime>() {
    let server = start::<R>();
    let url = server.url("again");
    let mut first = publish(&url, SMALL, 30, FPS);
    let mut player = ffmpeg_play(&url, &[]);
    let p = player.wait_for(TIMEOUT, |p| p.video >= FPS as usize);
    assert!(p.video >= FPS as usize, "{}", player.describe());
    first.kill();
    // Whatever the first publisher sent has reached the player by now.
    sleep(Duration::from_millis(700));
    let before = player.progress().video;
    let _second = publish(&url, SMALL, 30, FPS);
    let target = before + 2 * FPS as usize;
    let p = player.wait_for(TIMEOUT, |p| p.video >= target);
    assert!(
        p.video >= target,
        "[{}] player stopped at {} frames ({before} before the republish): {}",
        server.name(),
        p.video,
        player.describe()
    );
    assert!(player.is_running(), "{}", player.describe());
}

/// A player joining a stream whose next keyframe is seconds away gets the
/// decoder configuration and the current GOP's keyframe at once, before
/// any other video.
pub fn fast_start_late_joiner_gets_keyframe_first<R: Runtime>() {
    let server = start::<R>();
    // One keyframe every 10 s: the next is ~7 s away when the player joins.
    let _publisher = publish(&server.url("late"), SMALL, 15, 10 * FPS);
    let mut warm = RtmpClient::play(server.addr(), "late");
    assert!(warm.wait_for_more_video(1, TIMEOUT), "{}", warm.describe());
    sleep(Duration::from_millis(2500));

    let mut player = RtmpClient::play(server.addr(), "late");
    let asked = Instant::now();
    let got = player.pump_until(TIMEOUT, |s| {
        s.received()
            .iter()
            .filter(|r| matches!(r.message, tincan_core::message::Message::Video(_)))
            .count()
            >= 2
    });
    assert!(got, "[{}] no video: {}", server.name(), player.describe());
    let videos = player.videos();
    assert!(
        is_video_config(&videos[0].payload),
        "[{}] first video is not the sequence header: {:02x?}",
        server.name(),
        &videos[0].payload[..videos[0].payload.len().min(8)]
    );
    assert!(
        is_keyframe(&videos[1].payload),
        "[{}] second video is not a keyframe: {:02x?}",
        server.name(),
        &videos[1].payload[..videos[1].payload.len().min(8)]
    );
    let waited = (player.started() + videos[1].at).saturating_duration_since(asked);
    assert!(
        waited < Duration::from_secs(2),
        "[{}] keyframe after {waited:?}: it cannot have come from the cache",
        server.name()
    );
}

/// A player that stops reading for five seconds (longer than the video
/// lifetime) neither stalls the server nor another player of the same
/// stream; when it reads again it is either closed or back to live media.
pub fn slow_reader_that_stops_reading_is_dropped_or_resumes_per_policy<R: Runtime>() {
    let server = start::<R>();
    let _publisher = publish(&server.url("slow"), (320, 240), 30, FPS);
    let mut healthy = RtmpClient::play(server.addr(), "slow");
    let mut slow = RtmpClient::connect_with_receive_buffer(server.addr(), 4096);
    slow.play_on_this("slow");
    let live_for = Duration::from_millis(1500);
    let t0 = Instant::now();
    while t0.elapsed() < live_for {
        healthy.poll();
        slow.poll();
        sleep(Duration::from_millis(5));
    }
    let lag_before = lag(&slow).unwrap_or_else(|| panic!("no video: {}", slow.describe()));

    // Stall: only the healthy player reads.
    let stall = Duration::from_secs(5);
    let from = healthy.video_count();
    let stall_started = healthy.started().elapsed();
    healthy.pump_for(stall);
    let arrivals: Vec<Duration> = healthy.videos().iter().skip(from).map(|m| m.at).collect();
    let worst_gap = arrivals
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain(arrivals.first().map(|a| a.saturating_sub(stall_started)))
        .max()
        .unwrap_or(stall);
    assert!(
        arrivals.len() >= 4 * FPS as usize && worst_gap < Duration::from_secs(1),
        "[{}] the healthy player starved while another stalled: {} frames, gap {worst_gap:?}: {}",
        server.name(),
        arrivals.len(),
        healthy.describe()
    );

    // Resume: the slow player reads again and must be closed or live.
    let resumed = Instant::now();
    let recovered = loop {
        slow.poll();
        healthy.poll();
        if slow.saw_eof() {
            break true;
        }
        if resumed.elapsed() > Duration::from_secs(1)
            && lag(&slow).is_some_and(|l| l < lag_before + Duration::from_millis(1000))
        {
            break true;
        }
        if resumed.elapsed() > Duration::from_secs(8) {
            break false;
        }
        sleep(Duration::from_millis(5));
    };
    // What the policy abandoned shows as a hole in the timestamps; the
    // player must be able to decode from right after it.
    let videos = slow.videos();
    let hole = videos
        .windows(2)
        .map(|w| {
            let gap = w[1]
                .timestamp
                .as_millis()
                .wrapping_sub(w[0].timestamp.as_millis());
            (gap, &w[1])
        })
        .max_by_key(|(gap, _)| *gap);
    eprintln!(
        "[{}] slow reader: lag {lag_before:?} before the stall, {:?} after {:?} of reading again; \
         eof {}; widest timestamp hole {:?} ms; {} bytes",
        server.name(),
        lag(&slow),
        resumed.elapsed(),
        slow.saw_eof(),
        hole.map(|(gap, _)| gap),
        slow.sim().bytes_received(),
    );
    assert!(
        recovered,
        "[{}] the slow player neither closed nor got back to live: lag {:?} (was {lag_before:?}): {}",
        server.name(),
        lag(&slow),
        slow.describe()
    );
    if !slow.saw_eof() {
        let (gap, after) = hole.expect("video before and after the stall");
        assert!(
            gap >= 1000,
            "[{}] nothing of a 5 s stall was abandoned (widest hole {gap} ms): the media \
             waited in buffers the real-time policy cannot see",
            server.name()
        );
        assert!(
            is_keyframe(&after.payload) || is_video_config(&after.payload),
            "[{}] after the abandoned media the player resumed on a frame it cannot decode",
            server.name()
        );
    }
    assert!(
        healthy.wait_for_more_video(FPS as usize, TIMEOUT),
        "{}",
        healthy.describe()
    );
}

/// How far behind live the client's latest video frame arrived: its
/// arrival time minus its media timestamp (a constant for a live player,
/// growing while it falls behind).
fn lag(client: &RtmpClient) -> Option<Duration> {
    let last = client.media_of(FrameKind::Video).pop()?;
    let ts = Duration::from_millis(u64::from(last.timestamp.as_millis()));
    Some(last.at.saturating_sub(ts))
}

/// Clients that close during the handshake (before C0, after part of C1,
/// before C2) leave the other sessions and new connections unaffected.
pub fn disconnect_mid_handshake<R: Runtime>() {
    let server = start::<R>();
    let (_publisher, mut player) = bystander(&server, "hs");

    // Connects and closes without a byte.
    drop(RtmpClient::connect(server.addr()));
    // C0 and half of C1.
    let mut c = RtmpClient::connect(server.addr());
    let hello = c.take_queued();
    let _ = c.write_raw(&hello[..1 + 768]);
    drop(c);
    // C0 and C1, reads S0 S1 S2, leaves without C2.
    let mut c = RtmpClient::connect(server.addr());
    let hello = c.take_queued();
    let _ = c.write_raw(&hello[..1 + 1536]);
    c.pump_until(Duration::from_secs(5), |s| s.bytes_received() > 2 * 1536);
    assert!(
        c.sim().bytes_received() > 2 * 1536,
        "[{}] no S0 S1 S2: {}",
        server.name(),
        c.describe()
    );
    drop(c);

    assert_still_serving(&server, &mut player, "hs");
}

/// Clients that close in the middle of a message (a torn `connect`, a
/// torn video frame while publishing) leave the other sessions and new
/// connections unaffected.
pub fn disconnect_mid_message<R: Runtime>() {
    let server = start::<R>();
    let (_publisher, mut player) = bystander(&server, "torn");

    // Handshake done, then half of the `connect` command.
    let mut c = RtmpClient::connect(server.addr());
    c.pump_until(Duration::from_secs(5), |s| s.handshake_complete());
    c.poll();
    c.sim_mut().connect("live");
    let connect = c.take_queued();
    let _ = c.write_raw(&connect[..connect.len() / 2]);
    c.pump_for(Duration::from_millis(100));
    drop(c);

    // Publishing, then half of a 20 kB video frame.
    let mut c = RtmpClient::connect(server.addr());
    c.connect_app();
    let stream = c.create_stream();
    c.sim_mut().publish(stream, "torn2");
    c.pump_until(Duration::from_secs(5), |s| !s.statuses(stream).is_empty());
    let mut frame = vec![0x17, 0x01, 0, 0, 0];
    frame.resize(20_000, 0xab);
    c.sim_mut().send_video(stream, 0, frame.into());
    let torn = c.take_queued();
    let _ = c.write_raw(&torn[..torn.len() / 2]);
    c.pump_for(Duration::from_millis(100));
    drop(c);

    assert_still_serving(&server, &mut player, "torn");
}

/// A publisher killed mid-stream leaves other streams playing, and its
/// stream name can be published and played again.
pub fn disconnect_during_publish<R: Runtime>() {
    let server = start::<R>();
    let (_publisher, mut player) = bystander(&server, "stays");
    let mut doomed = publish(&server.url("doomed"), SMALL, 30, FPS);
    let mut watcher = RtmpClient::play(server.addr(), "doomed");
    assert!(
        watcher.wait_for_more_video(10, TIMEOUT),
        "{}",
        watcher.describe()
    );
    doomed.kill();
    watcher.pump_for(Duration::from_millis(300));

    assert!(
        player.wait_for_more_video(FPS as usize, TIMEOUT),
        "[{}] the other stream stopped: {}",
        server.name(),
        player.describe()
    );
    let _again = publish(&server.url("doomed"), SMALL, 30, FPS);
    let mut fresh = RtmpClient::play(server.addr(), "doomed");
    assert!(
        fresh.wait_for_more_video(5, TIMEOUT),
        "[{}] the name could not be published again: {}",
        server.name(),
        fresh.describe()
    );
}

/// On graceful shutdown a connected client is told
/// `NetConnection.Shutdown.Notify` and kept; once it leaves, the server
/// returns, long before its deadline.
pub fn graceful_shutdown_notifies_then_exits<R: Runtime>() {
    let mut server = R::start(ServerConfig {
        shutdown_deadline: Duration::from_secs(60),
        ..ServerConfig::default()
    });
    let mut client = RtmpClient::connect(server.addr());
    client.connect_app();
    server.shutdown();
    let notified = client.pump_until(TIMEOUT, |s| {
        s.statuses(0)
            .iter()
            .any(|c| c == "NetConnection.Shutdown.Notify")
    });
    assert!(
        notified,
        "[{}] no Shutdown.Notify: {}",
        server.name(),
        client.describe()
    );
    // Still served: the client leaves on its own terms.
    client.pump_for(Duration::from_millis(300));
    assert!(!client.saw_eof(), "{}", client.describe());
    assert!(
        !server.has_returned(),
        "[{}] the server returned with a client still connected",
        server.name()
    );

    let left = Instant::now();
    drop(client);
    let joined = server.join(Duration::from_secs(10));
    assert!(
        joined.is_ok(),
        "[{}] the server did not return after its last client left: {joined:?}",
        server.name()
    );
    assert!(
        left.elapsed() < Duration::from_secs(5),
        "{:?}",
        left.elapsed()
    );
}

/// A client that ignores `NetConnection.Shutdown.Notify` is closed at the
/// shutdown deadline, and the server then returns.
pub fn graceful_shutdown_closes_stragglers_at_deadline<R: Runtime>() {
    let deadline = Duration::from_secs(1);
    let mut server = R::start(ServerConfig {
        shutdown_deadline: deadline,
        ..ServerConfig::default()
    });
    let mut client = RtmpClient::connect(server.addr());
    client.connect_app();
    let asked = Instant::now();
    server.shutdown();
    // The straggler keeps reading (and answering pings) but never leaves.
    client.pump_until(TIMEOUT, |_| false);
    let closed = client.saw_eof();
    let closed_after = asked.elapsed();
    assert!(
        closed,
        "[{}] the straggler was never closed: {}",
        server.name(),
        client.describe()
    );
    assert!(
        client
            .statuses()
            .iter()
            .any(|c| c == "NetConnection.Shutdown.Notify"),
        "{}",
        client.describe()
    );
    assert!(
        closed_after >= deadline - Duration::from_millis(100),
        "[{}] closed after {closed_after:?}, before the {deadline:?} deadline",
        server.name()
    );
    let joined = server.join(Duration::from_secs(10));
    assert!(
        joined.is_ok(),
        "[{}] the server did not return: {joined:?}",
        server.name()
    );
}

/// Once a graceful shutdown has started, a new connection is refused: it
/// never gets a handshake reply.
pub fn graceful_shutdown_refuses_new_connections<R: Runtime>() {
    let server = R::start(ServerConfig::default());
    // A client that stays keeps the server in its shutdown phase.
    let mut client = RtmpClient::connect(server.addr());
    client.connect_app();
    server.shutdown();
    assert!(
        client.pump_until(TIMEOUT, |s| s
            .statuses(0)
            .iter()
            .any(|c| c == "NetConnection.Shutdown.Notify")),
        "[{}] no Shutdown.Notify: {}",
        server.name(),
        client.describe()
    );

    let Ok(mut late) = TcpStream::connect(server.addr()) else {
        return; // the listener is closed: refused outright
    };
    late.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let c0c1 = SimClient::new(Instant::now(), 1).take_outbound().concat();
    // Writing may fail if the server already closed the socket.
    let _ = late.write_all(&c0c1[..1 + 1536]);
    let mut reply = [0u8; 1];
    let got = late.read(&mut reply);
    assert!(
        !matches!(got, Ok(n) if n > 0),
        "[{}] a connection made during shutdown was served: {got:?}",
        server.name()
    );
    assert!(
        !matches!(&got, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "[{}] a connection made during shutdown was left open: {got:?}",
        server.name()
    );
}

/// `stop` closes every connection at once, telling connected clients
/// `NetConnection.Connect.Closed`, and the server returns.
pub fn stop_closes_every_connection_and_returns<R: Runtime>() {
    let mut server = start::<R>();
    let (_publisher, mut player) = bystander(&server, "stop");
    let asked = Instant::now();
    server.stop();
    player.pump_until(Duration::from_secs(10), |_| false);
    assert!(
        player.saw_eof(),
        "[{}] the player was not closed: {}",
        server.name(),
        player.describe()
    );
    assert!(
        player
            .statuses()
            .iter()
            .any(|c| c == "NetConnection.Connect.Closed"),
        "[{}] no goodbye status: {}",
        server.name(),
        player.describe()
    );
    let joined = server.join(Duration::from_secs(10));
    assert!(
        joined.is_ok(),
        "[{}] the server did not return: {joined:?}",
        server.name()
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "[{}] stop took {:?}",
        server.name(),
        asked.elapsed()
    );
}

/// Video frames a flood sends: at [`FLOOD_FRAME_BYTES`] each, megabytes
/// more than any socket buffer holds.
const FLOOD_FRAMES: u32 = 200;
const FLOOD_FRAME_BYTES: usize = 32 * 1024;
/// The timestamp of the flood's last frame, a keyframe (so no real-time
/// policy may skip it).
const FLOOD_LAST: u32 = (FLOOD_FRAMES - 1) * 33;

/// A legacy AVC video tag: keyframe (`0x17`) or inter frame (`0x27`), NALU
/// packet, composition time 0, then filler up to [`FLOOD_FRAME_BYTES`].
fn avc_frame(key: bool) -> Bytes {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
    v.resize(FLOOD_FRAME_BYTES, 0xab);
    v.into()
}

/// Whether the client has received the flood's last frame.
fn got_last_flood_frame(client: &SimClient) -> bool {
    client
        .received()
        .iter()
        .any(|r| matches!(r.message, Message::Video(_)) && r.timestamp.as_millis() == FLOOD_LAST)
}

/// Sends a sequence header and [`FLOOD_FRAMES`] video frames on `stream`
/// as fast as the server takes them, a keyframe every tenth and the last.
fn flood(publisher: &mut RtmpClient, stream: u32) -> io::Result<()> {
    let header = Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f]);
    publisher.sim_mut().send_video(stream, 0, header);
    for i in 0..FLOOD_FRAMES {
        let key = i % 10 == 0 || i + 1 == FLOOD_FRAMES;
        publisher
            .sim_mut()
            .send_video(stream, i * 33, avc_frame(key));
        let bytes = publisher.take_queued();
        publisher.write_raw(&bytes)?;
    }
    Ok(())
}

/// Connects and plays `name`, returning once `NetStream.Play.Start`
/// arrived.
fn playing(server: &Running, mut client: RtmpClient, name: &str) -> RtmpClient {
    let stream = client.play_on_this(name);
    let started = client.pump_until(TIMEOUT, |s| {
        s.statuses(stream)
            .iter()
            .any(|c| c == "NetStream.Play.Start")
    });
    assert!(
        started,
        "[{}] play did not start: {}",
        server.name(),
        client.describe()
    );
    client
}

/// A raw publisher that flooded a stream as fast as the server took it,
/// a player that read throughout, and a player with a 4 KiB receive buffer
/// that stopped reading once play started.
struct Stalled {
    stalled: RtmpClient,
    live: RtmpClient,
    /// The publisher once it wrote every frame, or why it could not within
    /// [`TIMEOUT`].
    flood: Result<RtmpClient, String>,
}

impl Stalled {
    /// Sets the three up and floods; returns once the flood is over (or
    /// failed) and the live player got its last frame (or [`TIMEOUT`]).
    fn flood(server: &Running) -> Stalled {
        let mut publisher = RtmpClient::connect(server.addr());
        publisher.connect_app();
        let stream = publisher.create_stream();
        publisher.sim_mut().publish(stream, "flood");
        let published = publisher.pump_until(TIMEOUT, |s| {
            s.statuses(stream)
                .iter()
                .any(|c| c == "NetStream.Publish.Start")
        });
        assert!(published, "[{}] {}", server.name(), publisher.describe());
        let stalled = playing(
            server,
            RtmpClient::connect_with_receive_buffer(server.addr(), 4096),
            "flood",
        );
        let mut live = playing(server, RtmpClient::connect(server.addr()), "flood");

        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(flood(&mut publisher, stream).map(|()| publisher));
        });
        live.pump_until(TIMEOUT, got_last_flood_frame);
        let flood = match rx.recv_timeout(TIMEOUT) {
            Ok(Ok(publisher)) => Ok(publisher),
            Ok(Err(e)) => Err(format!("a write failed: {e}")),
            Err(_) => Err(format!("still writing after {TIMEOUT:?}")),
        };
        Stalled {
            stalled,
            live,
            flood,
        }
    }
}

/// While a player with a full receive buffer stops reading, a publisher
/// flooding its stream is never held up, and a player that reads gets
/// every keyframe up to the last.
pub fn stalled_player_holds_up_neither_publisher_nor_other_player<R: Runtime>() {
    let server = start::<R>();
    let Stalled { live, flood, .. } = Stalled::flood(&server);
    if let Err(why) = &flood {
        panic!("[{}] the publisher was held up: {why}", server.name());
    }
    assert!(
        got_last_flood_frame(live.sim()),
        "[{}] the reading player missed the last frame: {}",
        server.name(),
        live.describe()
    );
}

/// A player that stopped reading during a flood gets the newest keyframe
/// once it reads again: the server neither drops it nor loses its way in
/// what it skipped.
pub fn stalled_player_gets_newest_keyframe_when_it_reads_again<R: Runtime>() {
    let server = start::<R>();
    let Stalled {
        mut stalled, flood, ..
    } = Stalled::flood(&server);
    let _publisher =
        flood.unwrap_or_else(|why| panic!("[{}] the publisher was held up: {why}", server.name()));
    sleep(Duration::from_millis(300));
    assert!(
        stalled.pump_until(TIMEOUT, got_last_flood_frame),
        "[{}] the stalled player never got the last keyframe: {}",
        server.name(),
        stalled.describe()
    );
}

/// A player that never reads again cannot keep a shutting-down server
/// running past its deadline plus the bounded time to flush a goodbye:
/// `run` returns although neither player nor publisher ever reads again.
pub fn stalled_player_cannot_hold_shutdown_past_deadline<R: Runtime>() {
    let deadline = Duration::from_secs(1);
    let mut server = R::start(ServerConfig {
        shutdown_deadline: deadline,
        ..ServerConfig::default()
    });
    let Stalled {
        stalled,
        live,
        flood,
    } = Stalled::flood(&server);
    let publisher =
        flood.unwrap_or_else(|why| panic!("[{}] the publisher was held up: {why}", server.name()));
    let asked = Instant::now();
    server.shutdown();
    // The deadline, the core's 5 s limit on flushing a goodbye and a final
    // linger: about 6.5 s.
    let joined = server.join(Duration::from_secs(10));
    eprintln!(
        "[{}] stalled shutdown returned after {:?}",
        server.name(),
        asked.elapsed()
    );
    assert!(
        joined.is_ok(),
        "[{}] the server did not return although its deadline passed: {joined:?}",
        server.name()
    );
    drop((stalled, live, publisher));
}

/// A graceful shutdown with nobody connected returns at once, not at its
/// deadline.
pub fn graceful_shutdown_of_idle_server_returns_at_once<R: Runtime>() {
    let mut server = R::start(ServerConfig {
        shutdown_deadline: Duration::from_secs(60),
        ..ServerConfig::default()
    });
    let asked = Instant::now();
    server.shutdown();
    let joined = server.join(Duration::from_secs(10));
    assert!(
        joined.is_ok(),
        "[{}] an idle server did not return: {joined:?}",
        server.name()
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "[{}] an idle server took {:?} to shut down",
        server.name(),
        asked.elapsed()
    );
}

/// Frames [`merged_writes_deliver_every_frame_in_order`] publishes, each
/// video frame followed by an audio frame.
const MERGED_FRAMES: u32 = 90;

/// With adaptive write merging on (the throughput mode, a 40 ms bound), a
/// player still gets every audio and video frame, each exactly once and
/// in the order published, with the keyframes among them.
pub fn merged_writes_deliver_every_frame_in_order<R: Runtime>() {
    let mut config = ServerConfig::default();
    config.session.merge_window = Duration::from_millis(40);
    let server = R::start(config);
    let mut publisher = RtmpClient::connect(server.addr());
    publisher.connect_app();
    let stream = publisher.create_stream();
    publisher.sim_mut().publish(stream, "merged");
    let published = publisher.pump_until(TIMEOUT, |s| {
        s.statuses(stream)
            .iter()
            .any(|c| c == "NetStream.Publish.Start")
    });
    assert!(published, "[{}] {}", server.name(), publisher.describe());
    let mut player = playing(&server, RtmpClient::connect(server.addr()), "merged");

    let header = Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f]);
    publisher.sim_mut().send_video(stream, 0, header);
    let aac_header = Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]);
    publisher.sim_mut().send_audio(stream, 0, aac_header);
    for i in 0..MERGED_FRAMES {
        let mut video = vec![if i % 30 == 0 { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
        video.resize(1500, (i % 251) as u8);
        publisher.sim_mut().send_video(stream, i * 33, video.into());
        let audio = Bytes::from(vec![0xaf, 0x01, (i % 251) as u8, 0x21]);
        publisher.sim_mut().send_audio(stream, i * 33 + 10, audio);
        publisher.poll();
        // Paced, so that merging has something to merge and the bound,
        // not the end of the input, releases most writes.
        sleep(Duration::from_millis(8));
        player.poll();
    }
    let last = (MERGED_FRAMES - 1) * 33 + 10;
    let done = player.pump_until(TIMEOUT, |s| {
        s.received()
            .iter()
            .any(|r| matches!(r.message, Message::Audio(_)) && r.timestamp.as_millis() == last)
    });
    assert!(
        done,
        "[{}] the last frame never arrived: {}",
        server.name(),
        player.describe()
    );
    let videos: Vec<_> = player
        .videos()
        .into_iter()
        .filter(|m| !is_video_config(&m.payload))
        .collect();
    let got: Vec<(u32, u8)> = videos
        .iter()
        .map(|m| (m.timestamp.as_millis(), m.payload[5]))
        .collect();
    let sent: Vec<(u32, u8)> = (0..MERGED_FRAMES)
        .map(|i| (i * 33, (i % 251) as u8))
        .collect();
    assert_eq!(got, sent, "[{}] video out of order or lost", server.name());
    assert_eq!(
        videos.iter().filter(|m| is_keyframe(&m.payload)).count(),
        3,
        "[{}] keyframes",
        server.name()
    );
    let audio: Vec<(u32, u8)> = player
        .media_of(FrameKind::Audio)
        .iter()
        .filter(|m| m.payload.get(1) == Some(&0x01))
        .map(|m| (m.timestamp.as_millis(), m.payload[2]))
        .collect();
    let sent: Vec<(u32, u8)> = (0..MERGED_FRAMES)
        .map(|i| (i * 33 + 10, (i % 251) as u8))
        .collect();
    assert_eq!(
        audio,
        sent,
        "[{}] audio out of order or lost",
        server.name()
    );
}
