//! Replays every committed fuzz corpus file and regression input through
//! its target (the same functions `cargo fuzz` runs, from fuzz/src/), so a
//! plain `cargo test` checks them without a fuzzer or a nightly toolchain.
//! A target panics on a broken invariant; the failing file is named.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files under `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target`'s body on each of its corpus and regression files;
/// returns how many ran. Fails naming every file that panicked.
fn replay(target: &str) -> usize {
    let (_, run) = tincan_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .flat_map(|kind| inputs(kind, target))
        .collect();
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = fs::read(path).expect("reading a corpus file");
            panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} failed on: {failed:#?}");
    files.len()
}

macro_rules! replays {
    ($($test:ident => $target:literal,)*) => {$(
        #[test]
        fn $test() {
            let n = replay($target);
            assert!(n > 0, "no committed inputs for {}", $target);
        }
    )*};
}

replays! {
    amf0_corpus_and_regressions_replay_cleanly => "amf0",
    amf3_corpus_and_regressions_replay_cleanly => "amf3",
    broker_corpus_replays_cleanly => "broker",
    chunk_decoder_corpus_and_regressions_replay_cleanly => "chunk_decoder",
    chunk_roundtrip_corpus_replays_cleanly => "chunk_roundtrip",
    client_corpus_replays_cleanly => "client",
    handshake_corpus_replays_cleanly => "handshake",
    media_tag_corpus_replays_cleanly => "media_tag",
    message_corpus_and_regressions_replay_cleanly => "message",
    rtws_corpus_replays_cleanly => "rtws",
    server_corpus_replays_cleanly => "server",
    session_corpus_and_regressions_replay_cleanly => "session",
    tc_rtws_corpus_replays_cleanly => "tc_rtws",
}

#[test]
fn every_target_has_a_replay_test_and_every_input_directory_a_target() {
    let replayed = [
        "amf0",
        "amf3",
        "broker",
        "chunk_decoder",
        "chunk_roundtrip",
        "client",
        "handshake",
        "media_tag",
        "message",
        "rtws",
        "server",
        "session",
        "tc_rtws",
    ];
    let names: Vec<&str> = tincan_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, replayed, "a target without a replay test above");
    for kind in ["corpus", "regressions"] {
        for entry in fs::read_dir(fuzz_dir().join(kind)).expect("fuzz input directory") {
            let name = entry.expect("directory entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                names.contains(&name.as_ref()),
                "fuzz/{kind}/{name} names no target, so nothing replays it"
            );
        }
    }
}

/// The client seeds start the fuzzer where the interesting bytes are: past
/// the handshake, with a player receiving media and a publisher confirmed.
/// A seed that stopped at the handshake would leave the client target
/// fuzzing nothing but S0-S2.
#[test]
fn client_seeds_reach_the_stream() {
    use std::time::Instant;
    use tincan_core::client::{ClientEvent, ClientSession, Role};
    use tincan_core::entropy::SeededEntropy;

    for (name, input) in tincan_fuzz::seed::client_seeds() {
        let role = match input[0] & 3 {
            0 => Role::Play,
            1 => Role::Publish,
            _ => Role::Connect,
        };
        let now = Instant::now();
        let config = tincan_fuzz::client::config(role);
        let seed = tincan_fuzz::client::CLIENT_SEED;
        let mut client = ClientSession::new(now, config, &mut SeededEntropy::new(seed));
        client
            .handle_input(now, &input[1..])
            .expect("the server's bytes are valid");
        let mut events = Vec::new();
        while let Some(e) = client.poll_event() {
            events.push(e);
        }
        let reached = match role {
            Role::Play => events
                .iter()
                .any(|e| matches!(e, ClientEvent::Media { .. })),
            Role::Publish => events.contains(&ClientEvent::Publishing),
            Role::Connect => events.contains(&ClientEvent::Connected),
        };
        assert!(reached, "seed {name} does not reach the stream: {events:?}");
    }
}

/// The server's decision seeds reach what the decision operations check:
/// tickets of every kind, answers taken, answers refused as stale, and
/// tickets expired by the decision deadline. A seed that stopped at a
/// refused connect would fuzz none of it.
#[test]
fn server_decision_seeds_reach_the_tickets() {
    let mut total = tincan_fuzz::ServerRun::default();
    for (name, input) in tincan_fuzz::seed::server_decision_seeds() {
        let run = tincan_fuzz::server_run(&input);
        eprintln!("{name}: {run:?}");
        assert!(run.answered > 0, "seed {name} answers nothing: {run:?}");
        total.connect_tickets += run.connect_tickets;
        total.publish_tickets += run.publish_tickets;
        total.play_tickets += run.play_tickets;
        total.answered += run.answered;
        total.stale += run.stale;
        total.expired += run.expired;
    }
    assert!(
        total.connect_tickets > 0
            && total.publish_tickets > 0
            && total.play_tickets > 0
            && total.stale > 0
            && total.expired > 0,
        "the decision seeds miss a path: {total:?}"
    );
}
