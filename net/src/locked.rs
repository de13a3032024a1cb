//! The core [`Server`] behind one short lock, for adapters that run a task
//! per connection (tokio, smol): every core call runs under the lock, and
//! the connections it names ready are woken once the lock is released.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tincan_core::event::SessionId;
use tincan_core::server::{Server, ServerConfig};

/// How an executor wakes a waiting task. A ring sent before the task waits
/// must not be lost (tokio's `Notify` keeps a permit; a one-slot channel
/// keeps a message).
pub trait Bell: Clone {
    /// Wakes the task, now or at its next wait.
    fn ring(&self);
}

#[derive(Debug)]
struct State<B> {
    server: Server,
    /// Each connection task's bell, rung when the core names it ready.
    bells: HashMap<SessionId, B>,
    /// The deadline the timer task sleeps toward.
    timer_armed: Option<Instant>,
}

/// The core shared by the accept loop, the timer task and every connection
/// task.
#[derive(Debug)]
pub struct LockedServer<B> {
    state: Mutex<State<B>>,
    timer: B,
    clock: fn() -> Instant,
}

impl<B: Bell> LockedServer<B> {
    /// A server whose timer task is woken by `timer` and whose time comes
    /// from `clock` (tokio's clock, so a paused test clock stays
    /// meaningful; `Instant::now` elsewhere).
    pub fn new(config: ServerConfig, timer: B, clock: fn() -> Instant) -> Self {
        LockedServer {
            state: Mutex::new(State {
                server: Server::new(config),
                bells: HashMap::new(),
                timer_armed: None,
            }),
            timer,
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<B>> {
        // A panic in one task must not take every connection down with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the core under the lock, then, with the lock released,
    /// rings every connection the core named ready and the timer task if
    /// the core's deadline moved earlier. Every core call goes through
    /// here, so no wake-up is ever missed, and no lock is held across a
    /// write.
    pub fn with<R>(&self, f: impl FnOnce(&mut Server, Instant) -> R) -> R {
        let mut rung = Vec::new();
        let (result, retime) = {
            let mut state = self.lock();
            let State {
                server,
                bells,
                timer_armed,
            } = &mut *state;
            let result = f(server, (self.clock)());
            // Nothing in these adapters takes the core's reports or
            // requests yet: drained here, so the core's queue never holds
            // them, and a request (only asked for when the configuration
            // gives decisions to an embedder) is denied at its deadline.
            while server.poll_event().is_some() {}
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

    /// Gives connection `id` the bell its task waits on.
    pub fn register(&self, id: SessionId, bell: B) {
        self.lock().bells.insert(id, bell);
    }

    /// Forgets connection `id`'s bell once its task is ending.
    pub fn unregister(&self, id: SessionId) {
        self.lock().bells.remove(&id);
    }

    /// The deadline the timer task should sleep until (remembered, so the
    /// task is rung only when a call moves it earlier).
    pub fn arm_timer(&self) -> Option<Instant> {
        let mut state = self.lock();
        let deadline = state.server.poll_timeout();
        state.timer_armed = deadline;
        deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[derive(Clone, Default)]
    struct Count(Rc<Cell<u32>>);

    impl Bell for Count {
        fn ring(&self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn a_connection_the_core_names_ready_is_rung_and_the_timer_when_its_deadline_appears() {
        let timer = Count::default();
        let shared = LockedServer::new(ServerConfig::default(), timer.clone(), Instant::now);
        let conn = Count::default();
        let id = shared
            .with(|s, now| s.accept(now, None, &mut |b: &mut [u8]| b.fill(7)))
            .unwrap();
        shared.register(id, conn.clone());
        // The new session's handshake deadline is the first the timer sees.
        assert_eq!(timer.0.get(), 1);
        assert!(shared.arm_timer().is_some());
        shared.with(|s, now| s.handle_input(now, id, &[3])).unwrap();
        assert_eq!(conn.0.get(), 1);
        // The deadline did not move earlier: the timer is not rung again.
        assert_eq!(timer.0.get(), 1);
    }
}
