//! The TC command-line surface of the real `tincan` binary: the token
//! calculator, the documented `serve` flags, and token authentication
//! with a real FFmpeg (`-rtmp_conn S:<token>`) against `serve -k KEY`.

use std::process::{Command, Output as ProcessOutput};
use std::time::Duration;

use tincan_tests::require_tool;
use tincan_tests::server::{
    play_args, publish_args, tincan_binary, x264, Client, Output, TestServer,
};

const TIMEOUT: Duration = Duration::from_secs(30);
const APP_TOKEN: &str = "df41d9cbe74f325250d6e0346dcd9e95fb837892f4a927c27cecf2664d639786";

fn tincan(args: &[&str]) -> ProcessOutput {
    Command::new(tincan_binary())
        .args(args)
        .output()
        .expect("run tincan")
}

#[test]
fn token_prints_the_readme_calculator_lines() {
    let out = tincan(&[
        "token",
        "-k",
        "supersecret",
        "live/12345",
        "mike@live/12345",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        ",auth,df41d9cbe74f325250d6e0346dcd9e95fb837892f4a927c27cecf2664d639786,live/12345\n\
         ,auth,8bddf00ca7e31862fe17872c463df61eafde6518f565cb3def0e82a3b2d639d7,mike@live/12345\n"
    );
}

#[test]
fn token_with_a_hex_key_prints_the_readme_nonce_line() {
    let out = tincan(&[
        "token",
        "-K",
        "cbc290212a52dad978da93870e6929a5050d838a18723620b92df9a530535442",
        APP_TOKEN,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            ",auth,bc4e260a541aa5c6cd498f414afd7f05c76bd6d731f726df268d0b1e8bf5a58c,{APP_TOKEN}\n"
        )
    );
}

#[test]
fn token_without_a_key_fails() {
    let out = tincan(&["token", "live/12345"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_hex_key_is_refused_by_serve() {
    let out = tincan(&["serve", "-K", "not-hex"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("hex"));
}

#[test]
fn serve_help_documents_every_tc_flag() {
    let out = tincan(&["serve", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "-k, --auth-key <KEY>",
        "-K, --auth-key-hex <HEX>",
        "--server-info <STRING>",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

/// FFmpeg publishing `seconds` of H.264 to `url` with `-rtmp_conn S:token`.
fn publisher(ffmpeg: &std::path::Path, url: &str, token: &str, seconds: u32) -> Client {
    let mut args = publish_args(url, 25, seconds, &[], &[]);
    let video = x264(25);
    // Encoder and connection options go just before `-f flv URL`.
    let at = args.len() - 3;
    let conn = ["-rtmp_conn".to_owned(), format!("S:{token}")];
    args.splice(at..at, video.into_iter().chain(conn));
    Client::spawn("publisher", Command::new(ffmpeg).args(args), Output::Ignore)
}

#[test]
fn ffmpeg_with_the_app_token_publishes_and_plays_on_a_keyed_server() {
    let ffmpeg = require_tool("ffmpeg");
    let server = TestServer::start_with(&["-k", "supersecret"]);
    let url = server.url("cam");
    // FFmpeg's App for rtmp://host/live/cam is "live".
    let token = tincan_core::auth::token(b"supersecret", "live");
    let _publisher = publisher(&ffmpeg, &url, &token, 15);

    let mut args = vec!["-rtmp_conn".to_owned(), format!("S:{token}")];
    args.extend(play_args(&url, &["-t", "2"]));
    let mut player = Client::spawn("player", Command::new(&ffmpeg).args(args), Output::FrameCrc);
    let status = player.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "player failed ({status:?}): {}\nserver:\n{}",
        player.describe(),
        server.logs()
    );
    assert!(player.progress().video >= 40, "{}", player.describe());
}

#[test]
fn ffmpeg_with_a_wrong_token_is_refused() {
    let ffmpeg = require_tool("ffmpeg");
    let server = TestServer::start_with(&["-k", "supersecret"]);
    let url = server.url("cam");
    let wrong = tincan_core::auth::token(b"another key", "live");
    let mut publisher = publisher(&ffmpeg, &url, &wrong, 5);
    let status = publisher.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| !s.success()),
        "FFmpeg with a wrong token did not fail ({status:?}): {}",
        publisher.describe()
    );
    let logs = server.logs();
    assert!(logs.contains("authentication"), "{logs}");
    assert!(!logs.contains(&wrong), "the token reached the log:\n{logs}");
    assert!(!logs.contains("supersecret"), "the key reached the log");
}

#[test]
fn ffmpeg_without_a_token_is_refused() {
    let ffmpeg = require_tool("ffmpeg");
    let server = TestServer::start_with(&["-k", "supersecret"]);
    let url = server.url("cam");
    let mut args = publish_args(&url, 25, 5, &[], &[]);
    let at = args.len() - 3;
    args.splice(at..at, x264(25));
    let mut publisher = Client::spawn(
        "publisher",
        Command::new(&ffmpeg).args(args),
        Output::Ignore,
    );
    let status = publisher.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| !s.success()),
        "FFmpeg without a token did not fail ({status:?}): {}",
        publisher.describe()
    );
}
