//! The real-time and dialect flags of `tincan serve`, as TC Server names
//! them: `-A`, `-V`, `-F` (audio and video lifetimes, finish-by margin),
//! `-t` (shutdown deadline) and `--simplified-rtmp`. What each changes is
//! proven in the simulation and wire tests; here, that the binary takes
//! them and refuses nonsense.

use std::process::{Command, Output};
use std::time::Duration;

use tincan_tests::server::{tincan_binary, TestServer};
use tincan_tests::tc_client::{status_code, TcClient};

fn tincan(args: &[&str]) -> Output {
    Command::new(tincan_binary())
        .args(args)
        .output()
        .expect("run tincan")
}

#[test]
fn serve_help_documents_the_real_time_and_shutdown_flags() {
    let out = tincan(&["serve", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "-A, --audio-lifetime <SECS>",
        "-V, --video-lifetime <SECS>",
        "-F, --finish-by-margin <SECS>",
        "-t, --shutdown-deadline <SECS>",
        "--expire-previous-gop",
        "--simplified-rtmp",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn serve_refuses_a_finish_by_margin_that_is_not_seconds() {
    for bad in ["--finish-by-margin=soon", "--finish-by-margin=-1"] {
        let out = tincan(&["serve", "--listen", "127.0.0.1:0", bad]);
        assert!(!out.status.success(), "-F {bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("finish-by-margin"), "{err}");
    }
}

#[test]
fn serve_with_tc_real_time_flags_serves_clients() {
    let server = TestServer::start_with(&["-A", "1", "-V", "1.5", "-F", "0.1", "-t", "2"]);
    let mut client =
        TcClient::connect(server.port(), Duration::from_secs(10)).expect("client connects");
    let stream = client.connect_and_create_stream("live", Duration::from_secs(10));
    client.play(stream, "cam");
    assert!(
        client.wait_for(Duration::from_secs(10), |m| status_code(m)
            == Some("NetStream.Play.Start")),
        "{}",
        server.logs()
    );
}
