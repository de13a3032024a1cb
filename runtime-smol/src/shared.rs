//! The core [`Server`] behind one short lock, and the bells that wake the
//! tasks it names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::Timer;
use tincan_core::event::SessionId;
use tincan_core::server::{Server, ServerConfig};

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

impl Bell {
    pub(crate) fn ring(&self) {
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

#[derive(Debug)]
struct State {
    server: Server,
    /// Each connection task's bell, rung when the core names it ready.
    bells: HashMap<SessionId, Bell>,
    /// The deadline the timer task sleeps toward.
    timer_armed: Option<Instant>,
}

/// Shared by the accept loop, the timer task and every connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    timer: Bell,
    timer_waiter: Waiter,
}

impl Shared {
    pub(crate) fn new(config: ServerConfig) -> Self {
        let (timer, timer_waiter) = bell();
        Shared {
            state: Mutex::new(State {
                server: Server::new(config),
                bells: HashMap::new(),
                timer_armed: None,
            }),
            timer,
            timer_waiter,
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
            let result = f(server, Instant::now());
            while let Some(id) = server.poll_ready() {
                if let Some(bell) = bells.get(&id) {
                    rung.push(bell.clone());
                }
            }
            let retime = match (server.poll_timeout(), *timer_armed) {
                (Some(d), Some(armed)) => d < armed,
                (Some(_), None) => true,
                (None, _) => false,
            };
            (result, retime)
        };
        for bell in rung {
            bell.ring();
        }
        if retime {
            self.timer.ring();
        }
        result
    }

    /// Gives connection `id` its bell.
    pub(crate) fn register(&self, id: SessionId) -> Waiter {
        let (bell, waiter) = bell();
        self.lock().bells.insert(id, bell);
        waiter
    }

    /// Forgets connection `id`'s bell once its task is ending.
    pub(crate) fn unregister(&self, id: SessionId) {
        self.lock().bells.remove(&id);
    }

    /// Drives the core's deadlines (session timers, republish grace,
    /// shutdown deadline) until the task is dropped.
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
                    Some(d) => Timer::at(d).await,
                    None => Timer::never().await,
                };
                true
            };
            if sleep
                .or(async {
                    self.timer_waiter.wait().await;
                    false
                })
                .await
            {
                self.with(|s, now| s.handle_timeout(now));
            }
        }
    }
}
