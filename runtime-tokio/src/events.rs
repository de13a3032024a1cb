//! The bounded channel that carries the core's events to the embedder.

use std::task::{Context, Poll};

use tincan_core::server::ServerEvent;
use tincan_net::{EventSink, SinkError};
use tokio::sync::mpsc;

/// The server's events, in the order they happened, from
/// [`Handle::events`](crate::Handle::events). The stream ends (`None`)
/// once [`Server::run`](crate::Server::run) has returned and every event
/// before that was read, or when a newer subscription replaced it.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<ServerEvent>,
}

impl Events {
    /// The next event, waiting for it if none is queued.
    pub async fn next(&mut self) -> Option<ServerEvent> {
        self.rx.recv().await
    }

    /// The next event if one is queued, without waiting: for a loop that
    /// drains what is there between other work.
    pub fn try_next(&mut self) -> Option<ServerEvent> {
        self.rx.try_recv().ok()
    }

    /// The poll form of [`Events::next`], so the events can be wrapped as
    /// a `futures::Stream` (or `tokio_stream`'s) without this crate
    /// depending on either.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<ServerEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The adapter's side: `try_send` never waits, so it can run under the
/// core's lock.
#[derive(Debug)]
pub(crate) struct Sink(mpsc::Sender<ServerEvent>);

impl EventSink for Sink {
    fn try_send(&self, event: ServerEvent) -> Result<(), SinkError> {
        self.0.try_send(event).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SinkError::Full,
            mpsc::error::TrySendError::Closed(_) => SinkError::Closed,
        })
    }
}

/// A subscription of `capacity` events (tokio's channel needs at least one).
pub(crate) fn channel(capacity: usize) -> (Events, Sink) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Events { rx }, Sink(tx))
}
