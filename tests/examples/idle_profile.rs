//! Heap bytes the core keeps per idle connection, by stage: accepted (no
//! bytes yet), mid-handshake (C0+C1 in), and connected (`connect`
//! answered, nothing since). A counting allocator measures live heap, so
//! this is exact and independent of the allocator's page reuse:
//!
//! ```text
//! cargo run --release -p tincan-tests --example idle_profile -- 1000
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tincan_core::entropy::SeededEntropy;
use tincan_core::event::SessionId;
use tincan_core::server::{Server, ServerConfig};
use tincan_tests::sim::SimClient;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let now = Instant::now();
    let mut server = Server::new(ServerConfig::default());
    // Warm the server's maps so their growth is not charged to a stage.
    let before = live();
    let ids: Vec<SessionId> = (0..n)
        .map(|i| {
            server
                .accept(now, None, &mut SeededEntropy::new(i as u64))
                .expect("accepted")
        })
        .collect();
    while server.poll_ready().is_some() {}
    let accepted = live();
    println!("accepted:  {} B/conn", (accepted - before) / n);

    let mut clients: Vec<SimClient> = (0..n).map(|i| SimClient::new(now, i as u64 + 7)).collect();
    let clients_heap = live() - accepted;
    let c0c1: Vec<_> = clients.iter_mut().map(|c| c.take_outbound()).collect();
    for (id, out) in ids.iter().zip(&c0c1) {
        for b in out {
            let _ = server.handle_input(now, *id, b);
        }
    }
    let mid = live() - clients_heap;
    println!("after C1:  {} B/conn (S0S1S2 queued)", (mid - before) / n);
    // Let every client finish its handshake and connect.
    for (id, c) in ids.iter().zip(clients.iter_mut()) {
        c.connect("live");
        loop {
            let mut moved = false;
            while let Some(t) = server.poll_transmit(now, *id) {
                for b in &t.bufs {
                    c.handle_input(std::time::Duration::ZERO, b);
                }
                moved = true;
            }
            for b in c.take_outbound() {
                let _ = server.handle_input(now, *id, &b);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }
    while server.poll_ready().is_some() {}
    drop(c0c1);
    let with_clients = live();
    drop(clients);
    let connected = live();
    println!(
        "connected: {} B/conn (clients held {} B/conn)",
        (connected - before) / n,
        (with_clients - connected) / n
    );
    let s = server.session(ids[0]).expect("session");
    println!("size_of Session {} B", std::mem::size_of_val(s));
}
