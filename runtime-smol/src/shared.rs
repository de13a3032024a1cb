//! The core behind one lock ([`LockedServer`]) with smol's bells, and the
//! task that drives its deadlines.

use std::sync::Arc;
use std::time::Instant;

use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::Timer;
use tincan_core::server::ServerConfig;
use tincan_net::LockedServer;

/// A wake-up that is never lost: a ring before anyone waits stays in the
/// one-slot channel, and rings while one is pending merge into it.
#[derive(Debug, Clone)]
pub(crate) struct Bell(Sender<()>);

/// The waiting side of a [`Bell`].
#[derive(Debug)]
pub(crate) struct Waiter(Receiver<()>);

pub(crate) fn bell() -> (Bell, Waiter) {
    let (tx, rx) = channel::bounded(1);
    (Bell(tx), Waiter(rx))
}

impl tincan_net::Bell for Bell {
    fn ring(&self) {
        let _ = self.0.try_send(()); // full: already rung, nothing to add
    }
}

impl Waiter {
    /// Returns once rung (at once if rung since the last wait).
    pub(crate) async fn wait(&self) {
        // The sender lives as long as the waiter's owner needs it; once
        // every bell is gone nothing will ring, so waiting forever is right.
        if self.0.recv().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Shared by the accept loop, the timer task and every connection task.
pub(crate) type Shared = LockedServer<Bell>;

/// The shared core and the waiting side of its timer task's bell;
/// `dialer` wakes the serving loop when there is an outbound connection to
/// dial.
pub(crate) fn new(config: ServerConfig, dialer: Bell) -> (Arc<Shared>, Waiter) {
    let (timer, waiter) = bell();
    (
        Arc::new(LockedServer::new(config, timer, dialer, Instant::now)),
        waiter,
    )
}

/// Drives the core's deadlines (session timers, republish grace, shutdown
/// deadline) until the task is dropped.
pub(crate) async fn run_timer(shared: Arc<Shared>, waiter: Waiter) {
    loop {
        let deadline = shared.arm_timer();
        let sleep = async {
            match deadline {
                Some(d) => Timer::at(d).await,
                None => Timer::never().await,
            };
            true
        };
        if sleep
            .or(async {
                waiter.wait().await;
                false
            })
            .await
        {
            shared.with(|s, now| s.handle_timeout(now));
        }
    }
}
