//! `tincan-bench idle`: what an idle connection costs the server.
//!
//! Opens N connections (a bounded number at a time, so the server's accept
//! backlog is not what is measured), takes each to the chosen stage (TCP,
//! handshake, or handshake + `connect`), holds them all open, and compares
//! the server's resident memory before and after.

use std::time::{Duration, Instant};

use tincan_core::client::{ClientConfig, ClientEvent, ClientSession, Role};
use tincan_core::entropy::SeededEntropy;
use tincan_core::handshake::{ClientHandshake, HandshakeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::{parse_url, proc, IdleArgs, Json, RtmpUrl, Stage};

/// Connections being opened at once.
const IN_FLIGHT: usize = 64;

/// How long one connection may take to reach its stage.
const STAGE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn run(args: &IdleArgs) -> Result<(), String> {
    let url = parse_url(&args.url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let pids = args.server_pid.map(proc::tree);
    let before = pids.as_deref().map(proc::rss_kb);
    let started = Instant::now();
    let (open, failures) = runtime.block_on(open_all(&url, args));
    let opened_in = started.elapsed();
    std::thread::sleep(Duration::from_secs_f64(args.settle.max(0.0)));
    let after = pids.as_deref().map(proc::rss_kb);
    let per_conn = before
        .zip(after)
        .filter(|_| !open.is_empty())
        .map(|(b, a)| (a as f64 - b as f64) * 1024.0 / open.len() as f64);
    let stage = match args.stage {
        Stage::Tcp => "tcp",
        Stage::Handshake => "handshake",
        Stage::Connect => "connect",
    };
    eprintln!(
        "bench idle: {} of {} connections open at stage {stage} in {:.1} s ({} failed)",
        open.len(),
        args.connections,
        opened_in.as_secs_f64(),
        failures.len()
    );
    if let Some(f) = failures.first() {
        eprintln!("  first failure: {f}");
    }
    let kb = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
    eprintln!(
        "  server rss before {} KiB, after {} KiB, {} bytes per connection",
        kb(before),
        kb(after),
        per_conn.map_or("-".into(), |v| format!("{v:.0}"))
    );
    if args.json {
        let mut j = Json::default();
        j.int("connections", open.len() as u64)
            .int("connections_requested", args.connections as u64)
            .int("connections_failed", failures.len() as u64)
            .str("stage", stage)
            .num("server_rss_before_kb", before.map(|v| v as f64))
            .num("server_rss_after_kb", after.map(|v| v as f64))
            .num("bytes_per_connection", per_conn);
        println!("{}", j.finish());
    }
    drop(open);
    Ok(())
}

/// Opens the connections; returns those that reached the stage and why
/// the others did not.
async fn open_all(url: &RtmpUrl, args: &IdleArgs) -> (Vec<TcpStream>, Vec<String>) {
    let mut open = Vec::with_capacity(args.connections);
    let mut failures = Vec::new();
    let mut set = JoinSet::new();
    let mut next = 0;
    loop {
        while next < args.connections && set.len() < IN_FLIGHT {
            let url = url.clone();
            let stage = args.stage;
            let seed = next as u64 + 1;
            set.spawn(async move {
                tokio::time::timeout(STAGE_TIMEOUT, reach(url, stage, seed))
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()))
            });
            next += 1;
        }
        match set.join_next().await {
            Some(Ok(Ok(stream))) => open.push(stream),
            Some(Ok(Err(e))) => failures.push(e),
            Some(Err(e)) => failures.push(e.to_string()),
            None => break,
        }
    }
    (open, failures)
}

/// One connection taken to `stage`.
async fn reach(url: RtmpUrl, stage: Stage, seed: u64) -> Result<TcpStream, String> {
    let mut stream = super::connect(url.addr, seed as usize)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut buf = [0u8; 4096];
    match stage {
        Stage::Tcp => {}
        Stage::Handshake => {
            let mut hs = ClientHandshake::new(
                Instant::now(),
                HandshakeConfig::default(),
                &mut SeededEntropy::new(seed),
            );
            while !hs.is_complete() {
                while let Some(b) = hs.poll_transmit() {
                    stream.write_all(&b).await.map_err(|e| e.to_string())?;
                }
                let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("closed during the handshake".into());
                }
                hs.handle_input(&buf[..n]).map_err(|e| e.to_string())?;
            }
            while let Some(b) = hs.poll_transmit() {
                stream.write_all(&b).await.map_err(|e| e.to_string())?;
            }
        }
        Stage::Connect => {
            let config = ClientConfig::new(&url.tc_url, &url.app, "", Role::Connect);
            let mut client =
                ClientSession::new(Instant::now(), config, &mut SeededEntropy::new(seed));
            loop {
                while let Some(t) = client.poll_transmit() {
                    for b in t.bufs {
                        stream.write_all(&b).await.map_err(|e| e.to_string())?;
                    }
                }
                if client.is_active() {
                    break;
                }
                let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("closed before connect was answered".into());
                }
                client
                    .handle_input(Instant::now(), &buf[..n])
                    .map_err(|e| e.to_string())?;
                while let Some(event) = client.poll_event() {
                    if let ClientEvent::Closed(reason) = event {
                        return Err(reason);
                    }
                }
            }
        }
    }
    Ok(stream)
}
