//! The input path: [`Session::handle_input`] feeds the handshake, then
//! the chunk decoder in bounded turns, holding what a turn leaves for the
//! next.

use std::time::Instant;

use bytes::Bytes;

use super::{
    Outgoing, Phase, Session, SessionError, Timer, MAX_MESSAGES_PER_TURN, MAX_PAYLOAD_PER_TURN,
};
use crate::message::Message;

/// What one [`Session::handle_input`] call has acted on so far.
#[derive(Debug, Default)]
struct Turn {
    messages: usize,
    payload: usize,
}

impl Turn {
    fn count(&mut self, payload: usize) {
        self.messages += 1;
        self.payload = self.payload.saturating_add(payload);
    }

    fn is_spent(&self) -> bool {
        self.messages >= MAX_MESSAGES_PER_TURN || self.payload >= MAX_PAYLOAD_PER_TURN
    }
}

/// Input is handed to the chunk decoder in pieces this large and drained
/// between them, so one large read cannot trip its buffer limit.
const INPUT_PIECE: usize = 64 * 1024;

impl Session {
    /// Bytes received from the peer. A protocol error moves the session to
    /// closing (it still flushes the error status it owes); the returned
    /// error is the same as [`Session::error`]. Errors are sticky: once the
    /// session is closing, input is ignored and the error returned again.
    ///
    /// A session opened with [`Session::new_rtws`] takes exactly one whole
    /// WebSocket binary message per call (no bytes: continue pending
    /// input).
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionError> {
        if self.is_rtws() {
            return self.handle_rtws_input(now, Bytes::copy_from_slice(data));
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if !data.is_empty() {
            self.last_input = now;
        }
        let mut data = data;
        if self.phase == Phase::Handshake {
            data = self.feed_handshake(now, data);
        }
        if matches!(
            self.phase,
            Phase::AwaitConnect | Phase::ConnectPending | Phase::Connected
        ) && (!data.is_empty() || self.input_pending)
        {
            self.feed_chunks(now, data);
        }
        self.settle(now);
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// As [`Session::handle_input`], handing over the bytes: a session
    /// opened with [`Session::new_rtws`] keeps slices of the WebSocket
    /// message without copying it; an RTMP session copies what it must
    /// hold as usual.
    pub fn handle_input_bytes(&mut self, now: Instant, data: Bytes) -> Result<(), SessionError> {
        if self.is_rtws() {
            return self.handle_rtws_input(now, data);
        }
        self.handle_input(now, &data)
    }

    /// Hands bytes to the handshake; returns what is left for the chunk
    /// layer once it completes.
    fn feed_handshake<'a>(&mut self, now: Instant, data: &'a [u8]) -> &'a [u8] {
        let Some(hs) = &mut self.handshake else {
            return data;
        };
        let result = hs.handle_input(data);
        let replies: Vec<Bytes> = std::iter::from_fn(|| hs.poll_transmit()).collect();
        let complete = hs.is_complete();
        let kind = hs.kind();
        for b in replies {
            self.push(Outgoing::Raw(b));
        }
        let used = match result {
            Ok(used) => used.min(data.len()),
            Err(e) => {
                self.fail(now, SessionError::Handshake(e));
                return &[];
            }
        };
        self.handshake_bytes += used as u64;
        if complete {
            tracing::debug!(?kind, "handshake complete");
            self.handshake = None;
            self.phase = Phase::AwaitConnect;
            // Count the handshake like librtmp and SRS: acknowledgements
            // report every byte of the connection.
            self.decoder.add_handshake_bytes(self.handshake_bytes);
            self.timers.set(Timer::Handshake, None);
            self.timers
                .set(Timer::Connect, now.checked_add(self.config.connect_timeout));
        }
        &data[used..]
    }

    /// Hands bytes to the chunk decoder in bounded pieces, acting on every
    /// message as it completes, for at most one turn (see
    /// [`MAX_MESSAGES_PER_TURN`]); what is left waits, in order, for the
    /// next call.
    fn feed_chunks(&mut self, now: Instant, data: &[u8]) {
        let mut turn = Turn::default();
        if self.input_pending {
            // What earlier turns left: messages the decoder already holds,
            // then input it was not given yet, then `data`.
            if !self.drain_decoder(now, &mut turn) {
                self.hold(now, data, true);
                return;
            }
            let held = std::mem::take(&mut self.held);
            if !self.feed_pieces(now, &held, &mut turn) {
                self.hold(now, data, true);
                return;
            }
            self.input_pending = false;
        }
        self.feed_pieces(now, data, &mut turn);
    }

    /// Gives `data` to the decoder piece by piece, acting on messages as
    /// they complete. False if the turn ended first: the rest of `data` is
    /// then held.
    fn feed_pieces(&mut self, now: Instant, data: &[u8], turn: &mut Turn) -> bool {
        let piece = INPUT_PIECE.min(self.config.decoder_limits.max_buffered_bytes.max(1));
        let mut rest = data;
        while !rest.is_empty() {
            let (part, tail) = rest.split_at(piece.min(rest.len()));
            rest = tail;
            if let Err(e) = self.decoder.handle_input(part) {
                self.fail(now, SessionError::Chunk(e));
                return false;
            }
            if !self.drain_decoder(now, turn) {
                self.hold(now, rest, false);
                return false;
            }
        }
        true
    }

    /// Acts on the decoder's complete messages until it has none (true) or
    /// the turn is spent or the session failed (false).
    fn drain_decoder(&mut self, now: Instant, turn: &mut Turn) -> bool {
        let drained = loop {
            if self.error.is_some() {
                return false;
            }
            if turn.is_spent() {
                self.input_pending = true;
                break false;
            }
            match self.decoder.poll_message() {
                Ok(Some(raw)) => {
                    turn.count(raw.payload.len());
                    self.handle_message(now, raw);
                }
                Ok(None) => break true,
                Err(e) => {
                    self.fail(now, SessionError::Chunk(e));
                    return false;
                }
            }
        };
        while let Some(sequence) = self.decoder.poll_acknowledgement() {
            self.send_control(Message::Acknowledgement { sequence });
        }
        drained
    }

    /// Keeps input for a later turn. A runtime reads no more while input
    /// is pending, so this holds at most the rest of one read; input given
    /// while some is still pending (`more`: a runtime that kept reading)
    /// is held to the decoder's buffer limit.
    fn hold(&mut self, now: Instant, data: &[u8], more: bool) {
        if data.is_empty() || self.error.is_some() {
            return;
        }
        self.input_pending = true;
        let buffered = self.held.len() + data.len() + self.decoder.buffered_bytes();
        let limit = self.config.decoder_limits.max_buffered_bytes;
        if more && buffered > limit {
            self.fail(
                now,
                SessionError::Chunk(crate::chunk::ChunkError::BufferLimit { buffered, limit }),
            );
            return;
        }
        self.held.extend_from_slice(data);
    }
}
