//! The core [`Server`] behind one short lock, and the bells that wake the
//! tasks it names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tincan_core::event::SessionId;
use tincan_core::server::{Server, ServerConfig};
use tokio::sync::Notify;

#[derive(Debug)]
struct State {
    server: Server,
    /// Each connection task's bell, rung when the core names it ready.
    bells: HashMap<SessionId, Arc<Notify>>,
    /// The deadline the timer task sleeps toward.
    timer_armed: Option<Instant>,
}

/// Shared by the accept loop, the timer task and every connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    timer: Notify,
}

/// The core takes `std` instants; reading tokio's clock keeps a paused test
/// clock meaningful.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Shared {
    pub(crate) fn new(config: ServerConfig) -> Self {
        Shared {
            state: Mutex::new(State {
                server: Server::new(config),
                bells: HashMap::new(),
                timer_armed: None,
            }),
            timer: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in one task must not take every connection down with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the core under the lock, then, with the lock released,
    /// rings every connection the core named ready and the timer task if
    /// the core's deadline moved earlier. Every core call goes through
    /// here, so no wake-up is ever missed.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Server, Instant) -> R) -> R {
        let mut rung = Vec::new();
        let (result, retime) = {
            let mut state = self.lock();
            let State {
                server,
                bells,
                timer_armed,
            } = &mut *state;
            let result = f(server, now());
            while let Some(id) = server.poll_ready() {
                if let Some(bell) = bells.get(&id) {
                    rung.push(bell.clone());
                }
            }
            let deadline = server.poll_timeout();
            let retime = match (deadline, *timer_armed) {
                (Some(d), Some(armed)) => d < armed,
                (Some(_), None) => true,
                (None, _) => false,
            };
            (result, retime)
        };
        for bell in rung {
            bell.notify_one();
        }
        if retime {
            self.timer.notify_one();
        }
        result
    }

    /// Gives connection `id` its bell.
    pub(crate) fn register(&self, id: SessionId) -> Arc<Notify> {
        let bell = Arc::new(Notify::new());
        self.lock().bells.insert(id, bell.clone());
        bell
    }

    /// Forgets connection `id`'s bell once its task is ending.
    pub(crate) fn unregister(&self, id: SessionId) {
        self.lock().bells.remove(&id);
    }

    /// Drives the core's deadlines (session timers, republish grace,
    /// shutdown deadline) until the task is aborted.
    pub(crate) async fn run_timer(self: Arc<Self>) {
        loop {
            let deadline = {
                let mut state = self.lock();
                let d = state.server.poll_timeout();
                state.timer_armed = d;
                d
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => self.with(|s, now| s.handle_timeout(now)),
                () = self.timer.notified() => {}
            }
        }
    }
}
