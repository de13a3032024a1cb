//! The TC stream commands a player or publisher sends on its NetStream:
//! `pause`, `receiveAudio`, `receiveVideo`, `closeStream`, and
//! `deleteStream` on the control stream, each checked by what the client
//! then receives.

use std::time::Duration;

use bytes::Bytes;
use tincan_core::event::FrameKind;
use tincan_core::message::Command;
use tincan_tests::sim::media::{
    aac_config, aac_raw, avc_inter, avc_keyframe, avc_sequence_header, tagged,
};
use tincan_tests::sim::{ClientId, Sim};

struct Live {
    sim: Sim,
    publisher: (ClientId, u32),
    player: (ClientId, u32),
    /// Video frames sent so far, for numbering.
    n: u32,
}

impl Live {
    /// A publisher of live/cam with its configuration sent, and a player.
    fn new() -> Self {
        let mut sim = Sim::new();
        let publisher = sim.start_publisher("live", "cam");
        sim.client_mut(publisher.0)
            .send_video(publisher.1, 0, avc_sequence_header(b"v"));
        sim.client_mut(publisher.0)
            .send_audio(publisher.1, 0, aac_config(b"\x12\x10"));
        let player = sim.start_player("live", "cam");
        sim.run();
        Live {
            sim,
            publisher,
            player,
            n: 0,
        }
    }

    /// The publisher sends one video frame (a keyframe if `key`) and one
    /// audio frame; returns both payloads.
    fn tick(&mut self, key: bool) -> (Bytes, Bytes) {
        self.n += 1;
        let n = self.n;
        let video = if key {
            avc_keyframe(&tagged(b'V', n, 500))
        } else {
            avc_inter(&tagged(b'V', n, 200))
        };
        let audio = aac_raw(&tagged(b'A', n, 50));
        let (p, ps) = self.publisher;
        let ts = n * 40;
        self.sim.client_mut(p).send_video(ps, ts, video.clone());
        self.sim
            .client_mut(p)
            .send_audio(ps, ts + 20, audio.clone());
        self.sim.advance(Duration::from_millis(40));
        (video, audio)
    }

    fn player_command(&mut self, command: Command) {
        let (id, stream) = self.player;
        self.sim.client_mut(id).command(stream, command);
        self.sim.run();
    }

    fn player_payloads(&self, kind: FrameKind) -> Vec<Bytes> {
        let (id, stream) = self.player;
        self.sim
            .client(id)
            .media(stream)
            .into_iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.payload)
            .collect()
    }

    fn player_statuses(&self) -> Vec<String> {
        self.sim.client(self.player.0).statuses(self.player.1)
    }
}

fn pause(on: bool) -> Command {
    Command::Pause {
        transaction_id: 0.0,
        pause: on,
        millis: 0.0,
    }
}

#[test]
fn pause_sends_pause_notify_and_stops_media() {
    let mut live = Live::new();
    let (v1, a1) = live.tick(true);
    live.player_command(pause(true));
    assert_eq!(
        live.player_statuses().last().map(String::as_str),
        Some("NetStream.Pause.Notify")
    );
    let (v2, a2) = live.tick(false);
    let video = live.player_payloads(FrameKind::Video);
    let audio = live.player_payloads(FrameKind::Audio);
    assert!(video.contains(&v1) && audio.contains(&a1));
    assert!(!video.contains(&v2), "video delivered while paused");
    assert!(!audio.contains(&a2), "audio delivered while paused");
}

#[test]
fn unpause_sends_unpause_notify_and_resumes_video_at_a_keyframe() {
    let mut live = Live::new();
    live.tick(true);
    live.player_command(pause(true));
    live.tick(false);
    live.player_command(pause(false));
    assert_eq!(
        live.player_statuses().last().map(String::as_str),
        Some("NetStream.Unpause.Notify")
    );
    let (inter, audio) = live.tick(false);
    let (key, _) = live.tick(true);
    let (after, _) = live.tick(false);
    let video = live.player_payloads(FrameKind::Video);
    assert!(
        !video.contains(&inter),
        "an undecodable inter frame after resuming"
    );
    assert!(video.contains(&key) && video.contains(&after));
    assert!(live.player_payloads(FrameKind::Audio).contains(&audio));
}

#[test]
fn receive_audio_false_stops_audio_but_not_video_and_true_resumes_it() {
    let mut live = Live::new();
    live.tick(true);
    live.player_command(Command::ReceiveAudio(false));
    let (video, muted) = live.tick(false);
    live.player_command(Command::ReceiveAudio(true));
    let (_, back) = live.tick(false);
    let audio = live.player_payloads(FrameKind::Audio);
    assert!(!audio.contains(&muted));
    assert!(audio.contains(&back));
    assert!(live.player_payloads(FrameKind::Video).contains(&video));
}

#[test]
fn receive_video_false_stops_video_but_not_audio_and_true_resumes_at_a_keyframe() {
    let mut live = Live::new();
    live.tick(true);
    live.player_command(Command::ReceiveVideo(false));
    let (hidden, audio) = live.tick(false);
    live.player_command(Command::ReceiveVideo(true));
    let (inter, _) = live.tick(false);
    let (key, _) = live.tick(true);
    let video = live.player_payloads(FrameKind::Video);
    assert!(!video.contains(&hidden));
    assert!(
        !video.contains(&inter),
        "an undecodable inter frame after resuming"
    );
    assert!(video.contains(&key));
    assert!(live.player_payloads(FrameKind::Audio).contains(&audio));
}

#[test]
fn close_stream_stops_playback_and_the_stream_can_play_again() {
    let mut live = Live::new();
    live.tick(true);
    live.player_command(Command::CloseStream {
        transaction_id: 0.0,
    });
    let (v, a) = live.tick(true);
    assert!(!live.player_payloads(FrameKind::Video).contains(&v));
    assert!(!live.player_payloads(FrameKind::Audio).contains(&a));
    let (id, stream) = live.player;
    live.sim.client_mut(id).play(stream, "cam", -2.0);
    live.sim.run();
    let (v, _) = live.tick(true);
    assert!(live.player_payloads(FrameKind::Video).contains(&v));
    assert!(live.sim.client(id).errors().is_empty());
    assert!(!live.sim.is_closed(id));
}

#[test]
fn close_stream_by_the_publisher_unpublishes_for_its_players() {
    let mut live = Live::new();
    live.tick(true);
    let (p, ps) = live.publisher;
    live.sim.client_mut(p).close_stream(ps);
    // After the republish grace the player is told.
    live.sim.advance(Duration::from_secs(6));
    assert!(live
        .player_statuses()
        .iter()
        .any(|s| s == "NetStream.Play.UnpublishNotify"));
    // The name is free: another client publishes it.
    live.sim.start_publisher("live", "cam");
}

#[test]
fn delete_stream_stops_playback() {
    let mut live = Live::new();
    live.tick(true);
    let (id, stream) = live.player;
    live.sim.client_mut(id).delete_stream(stream);
    live.sim.run();
    let (v, a) = live.tick(true);
    assert!(!live.player_payloads(FrameKind::Video).contains(&v));
    assert!(!live.player_payloads(FrameKind::Audio).contains(&a));
    assert!(!live.sim.is_closed(id));
}

#[test]
fn delete_stream_by_the_publisher_frees_the_name() {
    let mut live = Live::new();
    live.tick(true);
    let (p, ps) = live.publisher;
    live.sim.client_mut(p).delete_stream(ps);
    live.sim.run();
    // start_publisher asserts NetStream.Publish.Start.
    live.sim.start_publisher("live", "cam");
}
