//! The binary's one consumer of the server's events. The tokio adapter has
//! one subscriber per server (`Handle::events()`), so every part of the
//! binary that follows events (the HTTP API's tracker, access control)
//! registers a sink here, and one task hands each event to every sink in
//! the core's order. Sinks must not block: a slow one would delay the
//! others and, once the adapter's channel fills, make the core deny
//! requests ("server busy"); work that waits runs in a task of its own.

use tincan_core::server::ServerEvent;
use tincan_tokio::Handle;

/// A consumer of events, called on the fan-out task.
pub type Sink = Box<dyn FnMut(&ServerEvent) + Send>;

/// The sinks, started with [`Fanout::start`].
#[derive(Default)]
pub struct Fanout {
    sinks: Vec<Sink>,
}

impl Fanout {
    /// Adds a sink; sinks are called in the order they were added.
    pub fn add(&mut self, sink: Sink) {
        self.sinks.push(sink);
    }

    /// Subscribes to `handle`'s events (call it before the server runs, to
    /// miss nothing) and feeds every sink until the server stops. Without
    /// sinks it does not subscribe at all: requests the core would ask
    /// about are then refused at once ("no decider") rather than held.
    pub fn start(mut self, handle: &Handle) {
        if self.sinks.is_empty() {
            return;
        }
        let mut events = handle.events();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                for sink in &mut self.sinks {
                    sink(&event);
                }
            }
        });
    }
}
