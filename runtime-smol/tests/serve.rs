//! The smol server end to end over loopback: a real RTMP client connects,
//! the server is shut down or stopped, and `run` returns.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;

use common::{on_thread, Client, PATIENCE};
use tincan_smol::{Handle, Server, ServerConfig};

fn start() -> (SocketAddr, Handle, mpsc::Receiver<std::io::Result<()>>) {
    let server = Server::bind(&["127.0.0.1:0".parse().unwrap()], ServerConfig::default())
        .expect("bind a loopback port");
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
