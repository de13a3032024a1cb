//! TC Server's graceful shutdown, with the real `tincan` binary and real
//! signals: the first SIGTERM tells every client
//! `NetConnection.Shutdown.Notify`, refuses new connections, and exits 0
//! once the clients have gone or at the shutdown deadline (`-t`); a second
//! SIGTERM (or a SIGINT) exits at once.

use std::process::{Command, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tincan_tests::server::TestServer;
use tincan_tests::tc_client::{status_code, TcClient};

const TIMEOUT: Duration = Duration::from_secs(10);

fn signal(server: &mut TestServer, sig: &str) {
    let pid = server.child().id().to_string();
    let ok = Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill {sig} {pid} failed");
}

/// A client connected to App "live", its connect answered.
fn connected(server: &TestServer) -> TcClient {
    let mut c = TcClient::connect(server.port(), TIMEOUT).expect("client connects");
    c.connect_app("live");
    assert!(
        c.wait_for(TIMEOUT, |m| status_code(m)
            == Some("NetConnection.Connect.Success")),
        "{:?}",
        c.received()
    );
    c
}

fn is_shutdown_notify(m: &tincan_core::message::Message) -> bool {
    status_code(m) == Some("NetConnection.Shutdown.Notify")
}

/// Waits up to `timeout` for the server to exit.
fn wait_exit(server: &mut TestServer, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = server.child().try_wait().expect("poll the server") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_tells_a_connected_client_shutdown_notify() {
    let mut server = TestServer::start();
    let mut client = connected(&server);
    signal(&mut server, "-TERM");
    assert!(
        client.wait_for(TIMEOUT, is_shutdown_notify),
        "no Shutdown.Notify; got {:?}\n{}",
        client.received(),
        server.logs()
    );
    // Graceful: the client is told, not cut off.
    assert!(!client.saw_eof());
    assert!(server.is_running());
}

#[test]
fn after_sigterm_a_new_connection_is_refused() {
    let mut server = TestServer::start();
    let mut client = connected(&server);
    signal(&mut server, "-TERM");
    assert!(client.wait_for(TIMEOUT, is_shutdown_notify));
    let late = TcClient::connect(server.port(), Duration::from_secs(3));
    assert!(
        late.is_err(),
        "a connection after SIGTERM completed its handshake\n{}",
        server.logs()
    );
    assert!(server.is_running(), "the first client is still served");
}

#[test]
fn after_sigterm_the_server_exits_0_when_the_last_client_leaves() {
    let mut server = TestServer::start();
    let mut client = connected(&server);
    signal(&mut server, "-TERM");
    assert!(client.wait_for(TIMEOUT, is_shutdown_notify));
    sleep(Duration::from_millis(300));
    assert!(server.is_running(), "exited while a client was connected");
    client.close();
    let status = wait_exit(&mut server, TIMEOUT).unwrap_or_else(|| {
        panic!(
            "server still running after its client left:\n{}",
            server.logs()
        )
    });
    assert!(status.success(), "{status:?}\n{}", server.logs());
}

#[test]
fn with_a_one_second_deadline_a_client_that_stays_is_closed_and_the_server_exits_0() {
    let mut server = TestServer::start_with(&["-t", "1"]);
    let mut client = connected(&server);
    signal(&mut server, "-TERM");
    let started = Instant::now();
    assert!(client.wait_for(TIMEOUT, is_shutdown_notify));
    assert!(
        client.wait_eof(TIMEOUT),
        "the server never closed the client\n{}",
        server.logs()
    );
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before the deadline"
    );
    let status = wait_exit(&mut server, TIMEOUT)
        .unwrap_or_else(|| panic!("server still running:\n{}", server.logs()));
    assert!(status.success(), "{status:?}\n{}", server.logs());
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let mut server = TestServer::start();
    let mut client = connected(&server);
    signal(&mut server, "-TERM");
    assert!(client.wait_for(TIMEOUT, is_shutdown_notify));
    // The default deadline is five minutes; the client stays.
    signal(&mut server, "-TERM");
    let status = wait_exit(&mut server, Duration::from_secs(3)).unwrap_or_else(|| {
        panic!(
            "server still running 3 s after a second SIGTERM:\n{}",
            server.logs()
        )
    });
    assert!(status.success(), "{status:?}\n{}", server.logs());
    assert!(client.wait_eof(Duration::from_secs(3)));
}

#[test]
fn sigint_during_a_graceful_shutdown_exits_at_once() {
    let mut server = TestServer::start();
    let mut client = connected(&server);
    signal(&mut server, "-TERM");
    assert!(client.wait_for(TIMEOUT, is_shutdown_notify));
    signal(&mut server, "-INT");
    let status = wait_exit(&mut server, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("server still running after SIGINT:\n{}", server.logs()));
    assert!(status.success(), "{status:?}\n{}", server.logs());
}
