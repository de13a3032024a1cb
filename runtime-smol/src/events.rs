//! The bounded channel that carries the core's events to the embedder.

use std::pin::Pin;
use std::task::{Context, Poll};

use smol::channel::{self, Receiver, Sender, TrySendError};
use smol::stream::Stream;
use tincan_core::server::ServerEvent;
use tincan_net::{EventSink, SinkError};

/// The server's events, in the order they happened, from
/// [`Handle::events`](crate::Handle::events): a [`Stream`], or
/// [`Events::next`]. The stream ends (`None`) once
/// [`Server::run`](crate::Server::run) has returned and every event before
/// that was read, or when a newer subscription replaced it.
#[derive(Debug)]
pub struct Events {
    /// Boxed: the receiver keeps a pinned listener while it waits, and a
    /// boxed one lets `Events` be `Unpin` and polled through `&mut`.
    rx: Pin<Box<Receiver<ServerEvent>>>,
}

impl Events {
    /// The next event, waiting for it if none is queued.
    pub async fn next(&mut self) -> Option<ServerEvent> {
        self.rx.recv().await.ok()
    }

    /// The next event if one is queued, without waiting: for a loop that
    /// drains what is there between other work.
    pub fn try_next(&mut self) -> Option<ServerEvent> {
        self.rx.try_recv().ok()
    }
}

impl Stream for Events {
    type Item = ServerEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ServerEvent>> {
        self.rx.as_mut().poll_next(cx)
    }
}

/// The adapter's side: `try_send` never waits, so it can run under the
/// core's lock.
#[derive(Debug)]
pub(crate) struct Sink(Sender<ServerEvent>);

impl EventSink for Sink {
    fn try_send(&self, event: ServerEvent) -> Result<(), SinkError> {
        self.0.try_send(event).map_err(|e| match e {
            TrySendError::Full(_) => SinkError::Full,
            TrySendError::Closed(_) => SinkError::Closed,
        })
    }
}

/// A subscription of `capacity` events (at least one; smol's zero-capacity
/// channel would panic).
pub(crate) fn channel(capacity: usize) -> (Events, Sink) {
    let (tx, rx) = channel::bounded(capacity.max(1));
    (Events { rx: Box::pin(rx) }, Sink(tx))
}
