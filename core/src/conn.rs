//! What a server slot holds: an accepted connection's [`Session`] or an
//! outbound connection's client, behind the one interface the server and
//! every runtime drive (input, timers, transmits, events, close).

use std::time::Instant;

use crate::event::{BrokerEvent, SessionEvent};
use crate::outbound::Outbound;
use crate::session::{Session, SessionError, Transmit};

/// One connection of a server, of whichever kind.
// Slots are boxed already; the accepted session, by far the common kind and
// the one on the fan-out path, stays inline (no second indirection), and
// the rare outbound one is boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Conn {
    /// Accepted by a listener: the server side of RTMP.
    Server(Session),
    /// Dialed by the server: the client side of RTMP.
    Client(Box<Outbound>),
}

impl Conn {
    pub(crate) fn session(&self) -> Option<&Session> {
        match self {
            Conn::Server(s) => Some(s),
            Conn::Client(_) => None,
        }
    }

    pub(crate) fn session_mut(&mut self) -> Option<&mut Session> {
        match self {
            Conn::Server(s) => Some(s),
            Conn::Client(_) => None,
        }
    }

    pub(crate) fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionError> {
        match self {
            Conn::Server(s) => s.handle_input(now, data),
            Conn::Client(c) => c.handle_input(now, data),
        }
    }

    pub(crate) fn handle_input_bytes(
        &mut self,
        now: Instant,
        data: bytes::Bytes,
    ) -> Result<(), SessionError> {
        match self {
            Conn::Server(s) => s.handle_input_bytes(now, data),
            Conn::Client(c) => c.handle_input(now, &data),
        }
    }

    pub(crate) fn handle_eof(&mut self, now: Instant) {
        match self {
            Conn::Server(s) => s.handle_eof(now),
            Conn::Client(c) => c.handle_eof(now),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self {
            Conn::Server(s) => s.handle_timeout(now),
            Conn::Client(c) => c.handle_timeout(now),
        }
    }

    pub(crate) fn handle_broker_event(&mut self, now: Instant, event: BrokerEvent) {
        match self {
            Conn::Server(s) => s.handle_broker_event(now, event),
            Conn::Client(c) => c.handle_broker_event(now, event),
        }
    }

    /// See `Session::holds_output`; outbound sessions never merge writes.
    pub(crate) fn holds_output(&mut self, now: Instant) -> bool {
        match self {
            Conn::Server(s) => s.holds_output(now),
            Conn::Client(_) => false,
        }
    }

    pub(crate) fn close(&mut self, now: Instant, reason: &str) {
        match self {
            Conn::Server(s) => s.close(now, reason),
            Conn::Client(c) => c.close(now, reason),
        }
    }

    pub(crate) fn notify_shutdown(&mut self, now: Instant) {
        match self {
            Conn::Server(s) => s.notify_shutdown(now),
            // A relay has nobody to tell: it ends.
            Conn::Client(c) => c.close(now, "server shutting down"),
        }
    }

    pub(crate) fn poll_transmit_into(&mut self, now: Instant, t: &mut Transmit) -> bool {
        match self {
            Conn::Server(s) => s.poll_transmit_into(now, t),
            Conn::Client(c) => c.poll_transmit_into(now, t),
        }
    }

    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let mut t = Transmit::default();
        self.poll_transmit_into(now, &mut t).then_some(t)
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Conn::Server(s) => s.poll_timeout(),
            Conn::Client(c) => c.poll_timeout(),
        }
    }

    pub(crate) fn has_events(&self) -> bool {
        match self {
            Conn::Server(s) => s.has_events(),
            Conn::Client(c) => c.has_events(),
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<SessionEvent> {
        match self {
            Conn::Server(s) => s.poll_event(),
            Conn::Client(c) => c.poll_event(),
        }
    }

    /// See `Session::has_output`; outbound sessions always say true.
    pub(crate) fn has_output(&self) -> bool {
        match self {
            Conn::Server(s) => s.has_output(),
            Conn::Client(_) => true,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Conn::Server(s) => s.is_closed(),
            Conn::Client(c) => c.is_closed(),
        }
    }

    pub(crate) fn has_pending_input(&self) -> bool {
        match self {
            Conn::Server(s) => s.has_pending_input(),
            Conn::Client(_) => false,
        }
    }

    pub(crate) fn error(&self) -> Option<SessionError> {
        match self {
            Conn::Server(s) => s.error().cloned(),
            Conn::Client(c) => c.error(),
        }
    }

    pub(crate) fn aborted(&self) -> u64 {
        match self {
            Conn::Server(s) => s.aborted_messages(),
            Conn::Client(_) => 0,
        }
    }

    pub(crate) fn dropped(&self) -> (u64, u64) {
        match self {
            Conn::Server(s) => (s.dropped_frames(), s.dropped_bytes()),
            Conn::Client(c) => c.dropped(),
        }
    }
}
