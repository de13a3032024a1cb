//! The state every connection task shares: the broker, the sessions by id,
//! and the dispatch of broker output to sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tincan_core::broker::Broker;
use tincan_core::event::{SessionEvent, SessionId};
use tincan_core::session::{Session, SessionConfig};
use tokio::sync::{watch, Notify};

use crate::ServerConfig;

/// One connection as other tasks reach it: its session and the bell that
/// wakes its task when someone else changed the session.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) session: Mutex<Session>,
    pub(crate) wake: Notify,
}

#[derive(Debug)]
struct Hub {
    broker: Broker,
    slots: HashMap<SessionId, Arc<Slot>>,
    /// The deadline the broker timer task last saw, so it is woken only
    /// when the broker's deadline actually moved.
    timer_armed: Option<Instant>,
}

/// Server-wide state behind one short lock.
#[derive(Debug)]
pub(crate) struct Shared {
    hub: Mutex<Hub>,
    timer_wake: Notify,
    session_config: SessionConfig,
}

/// Sessions that were handed broker events and whose tasks must be woken
/// once the broker lock is released.
pub(crate) type Deliveries = Vec<Arc<Slot>>;

/// Locks `m` even if a panicking holder poisoned it: a bug that killed one
/// connection's task must not take every other connection down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The core takes `std` instants; reading tokio's clock keeps a paused test
/// clock meaningful.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Shared {
    pub(crate) fn new(config: ServerConfig) -> Self {
        Shared {
            hub: Mutex::new(Hub {
                broker: Broker::new(config.broker),
                slots: HashMap::new(),
                timer_armed: None,
            }),
            timer_wake: Notify::new(),
            session_config: config.session,
        }
    }

    /// Registers a new connection with the broker and gives it a session.
    pub(crate) fn open_session(&self) -> (SessionId, Arc<Slot>) {
        let mut entropy = |buf: &mut [u8]| {
            // The OS generator only fails on a broken system (no
            // getrandom(2) and no /dev/urandom); no peer can cause it, and
            // serving with predictable handshakes would be worse than
            // stopping this connection.
            getrandom::fill(buf).expect("the OS random generator is unavailable");
        };
        let session = Session::new(now(), self.session_config.clone(), &mut entropy);
        let slot = Arc::new(Slot {
            session: Mutex::new(session),
            wake: Notify::new(),
        });
        let mut hub = lock(&self.hub);
        let id = hub.broker.open_session();
        hub.slots.insert(id, slot.clone());
        (id, slot)
    }

    /// Forgets a connection whose task is ending.
    pub(crate) fn remove_session(&self, id: SessionId) {
        lock(&self.hub).slots.remove(&id);
    }

    /// Hands `events` from session `id` to the broker, in order, and
    /// collects what the broker has for sessions into `out`.
    pub(crate) fn handle_events(
        &self,
        now: Instant,
        id: SessionId,
        events: impl IntoIterator<Item = SessionEvent>,
        out: &mut Deliveries,
    ) {
        let mut hub = lock(&self.hub);
        for event in events {
            hub.broker.handle_event(now, id, event);
        }
        self.collect(&mut hub, now, out);
    }

    /// Hands every broker output to its session while the broker lock is
    /// still held, so each session sees events in exactly the broker's order
    /// even when two tasks (say the grace timer and a new publisher) produce
    /// them at once: a late `UnpublishNotify` overtaking a `PublishNotify`
    /// would end FFmpeg's playback. The lock order is always hub, then
    /// session; a connection task never holds its session while it takes
    /// the hub.
    fn collect(&self, hub: &mut Hub, now: Instant, out: &mut Deliveries) {
        while let Some((target, event)) = hub.broker.poll_output() {
            // A target without a slot has just closed; its events are moot.
            if let Some(slot) = hub.slots.get(&target) {
                lock(&slot.session).handle_broker_event(now, event);
                // Fan-out often sends a run of events to one session: wake
                // it once.
                if !out.last().is_some_and(|last| Arc::ptr_eq(last, slot)) {
                    out.push(slot.clone());
                }
            }
        }
        let deadline = hub.broker.poll_timeout();
        if deadline != hub.timer_armed {
            hub.timer_armed = deadline;
            self.timer_wake.notify_one();
        }
    }
}

/// Wakes the task of every session that was handed broker events. Called
/// after the broker lock is released, so the woken tasks can take it.
pub(crate) fn wake(deliveries: &mut Deliveries) {
    for slot in deliveries.drain(..) {
        slot.wake.notify_one();
    }
}

/// Drives the broker's republish-grace deadline until the server stops.
pub(crate) async fn run_broker_timer(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut out = Deliveries::new();
    loop {
        let deadline = {
            let mut hub = lock(&shared.hub);
            let d = hub.broker.poll_timeout();
            hub.timer_armed = d;
            d
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {
                let now = now();
                {
                    let mut hub = lock(&shared.hub);
                    hub.broker.handle_timeout(now);
                    shared.collect(&mut hub, now, &mut out);
                }
                wake(&mut out);
            }
            () = shared.timer_wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
