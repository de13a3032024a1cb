//! The smol server end to end over loopback: a real RTMP client connects,
//! the server is shut down or stopped, and `run` returns.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use common::{flood, on_thread, Client, PATIENCE};
use tincan_smol::{Handle, Server, ServerConfig};

fn start() -> (SocketAddr, Handle, mpsc::Receiver<std::io::Result<()>>) {
    start_with(ServerConfig::default())
}

fn start_with(config: ServerConfig) -> (SocketAddr, Handle, mpsc::Receiver<std::io::Result<()>>) {
    let server =
        Server::bind(&["127.0.0.1:0".parse().unwrap()], config).expect("bind a loopback port");
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    (
        addr,
        handle,
        on_thread(move || smol::block_on(server.run())),
    )
}

#[test]
fn a_client_told_to_leave_on_shutdown_lets_run_return_once_it_has() {
    let (addr, handle, done) = start();
    let mut client = Client::connected(addr);
    handle.shutdown();
    client.expect_code("NetConnection.Shutdown.Notify");
    assert!(
        done.try_recv().is_err(),
        "run returned while a client was still connected"
    );
    drop(client);
    done.recv_timeout(PATIENCE)
        .expect("run returns once the client left")
        .expect("run succeeds");
}

#[test]
fn shutdown_refuses_new_connections() {
    let (addr, handle, _done) = start();
    let mut client = Client::connected(addr);
    handle.shutdown();
    client.expect_code("NetConnection.Shutdown.Notify");
    let refused = Client::handshake(addr);
    assert!(
        refused.is_err(),
        "a new connection was served after shutdown"
    );
}

#[test]
fn stop_closes_connected_clients_and_returns() {
    let (addr, handle, done) = start();
    let mut client = Client::connected(addr);
    handle.stop();
    client.expect_code("NetConnection.Connect.Closed");
    assert!(client.wait_closed(), "the server did not close the socket");
    done.recv_timeout(PATIENCE)
        .expect("run returns after stop")
        .expect("run succeeds");
}

#[test]
fn an_idle_server_stops_at_once() {
    let (_addr, handle, done) = start();
    handle.shutdown();
    done.recv_timeout(PATIENCE)
        .expect("run returns with nobody connected")
        .expect("run succeeds");
}

/// A publisher, a player whose socket is full because it stopped reading,
/// and a player that reads; the publisher floods from another thread.
struct Stalled {
    stalled: Client,
    live: Client,
    flood: std::thread::JoinHandle<(Client, u32)>,
    handle: Handle,
    done: mpsc::Receiver<std::io::Result<()>>,
}

fn stalled_player() -> Stalled {
    stalled_player_with(ServerConfig::default())
}

fn stalled_player_with(config: ServerConfig) -> Stalled {
    let (addr, handle, done) = start_with(config);
    let (mut publisher, stream) = Client::publisher(addr, "s");
    let mut stalled = Client::handshake_small_window(addr).expect("connect");
    stalled.send_connect("live");
    stalled.expect_code("NetConnection.Connect.Success");
    stalled.play("s");
    let mut live = Client::connected(addr);
    live.play("s");
    let flood = std::thread::spawn(move || {
        let last = flood(&mut publisher, stream);
        (publisher, last)
    });
    Stalled {
        stalled,
        live,
        flood,
        handle,
        done,
    }
}

#[test]
fn a_stalled_player_does_not_hold_up_another_player() {
    let Stalled {
        mut live, flood, ..
    } = stalled_player();
    let (_publisher, last) = flood.join().expect("the publisher is never held up");
    assert!(
        live.wait_video(last),
        "the reading player missed the last frame"
    );
}

#[test]
fn a_stalled_player_gets_the_newest_keyframe_once_it_reads_again() {
    let Stalled {
        mut stalled, flood, ..
    } = stalled_player();
    let (_publisher, last) = flood.join().expect("the publisher is never held up");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        stalled.wait_video(last),
        "the stalled player never got the last keyframe"
    );
}

#[test]
fn a_stalled_player_cannot_hold_shutdown_past_its_deadline() {
    let deadline = Duration::from_secs(1);
    let Stalled {
        stalled,
        live,
        flood,
        handle,
        done,
    } = stalled_player_with(ServerConfig {
        shutdown_deadline: deadline,
        ..ServerConfig::default()
    });
    let (publisher, _) = flood.join().expect("the publisher is never held up");
    handle.shutdown();
    // The deadline, the core's 5 s limit on flushing a goodbye, and the
    // final linger: about 6.5 s, well inside PATIENCE.
    done.recv_timeout(PATIENCE)
        .expect("run returns although no client reads again")
        .expect("run succeeds");
    drop((stalled, live, publisher));
}
