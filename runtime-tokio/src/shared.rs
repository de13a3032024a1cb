//! The core behind one lock ([`LockedServer`]) with tokio's bells, and the
//! task that drives its deadlines.

use std::sync::Arc;
use std::time::Instant;

use tincan_core::server::ServerConfig;
use tincan_net::{Bell, LockedServer};
use tokio::sync::Notify;

/// A connection task's (or the timer task's) bell: a `Notify` keeps a
/// permit rung before its task waits, so no wake-up is lost.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokioBell(pub(crate) Arc<Notify>);

impl Bell for TokioBell {
    fn ring(&self) {
        self.0.notify_one();
    }
}

/// Shared by the accept loop, the timer task and every connection task.
pub(crate) type Shared = LockedServer<TokioBell>;

/// The core takes `std` instants; reading tokio's clock keeps a paused test
/// clock meaningful.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The shared core, the bell of the task [`run_timer`] runs, and the bell
/// that tells the serving loop there is an outbound connection to dial.
pub(crate) fn new(config: ServerConfig) -> (Arc<Shared>, TokioBell, TokioBell) {
    let timer = TokioBell::default();
    let dialer = TokioBell::default();
    (
        Arc::new(LockedServer::new(
            config,
            timer.clone(),
            dialer.clone(),
            now,
        )),
        timer,
        dialer,
    )
}

/// Drives the core's deadlines (session timers, republish grace, shutdown
/// deadline) until the task is aborted.
pub(crate) async fn run_timer(shared: Arc<Shared>, bell: TokioBell) {
    loop {
        let deadline = shared.arm_timer();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => shared.with(|s, now| s.handle_timeout(now)),
            () = bell.0.notified() => {}
        }
    }
}
