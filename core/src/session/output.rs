//! The output path: [`Session::poll_transmit`] hands out control
//! messages, then players' media under the real-time policy, large
//! messages chunk by chunk (finished, or abandoned with an RTMP Abort),
//! and holds media for adaptive write merging (until a time or a size
//! bound, whichever first; never replies or the start of a keyframe).

use std::time::Instant;

use bytes::Bytes;

use super::backlog::{self, Item};
use super::{
    frame_to_raw, Outgoing, Partial, Session, Timer, Transmit, CSID_CONTROL, MAX_TRANSMIT_BUFS,
};
use crate::chunk::RawMessage;
use crate::event::FrameKind;
use crate::message::Message;
use crate::time::MediaTime;

/// Largest chunk list kept for reuse between large messages: a 256 KiB
/// frame at the default chunk size (8 KiB of list).
const MAX_SPARE_CHUNK_BUFS: usize = 256;
/// Buffers a new [`Transmit`] is sized for: a typical player transmit (a
/// few messages, a few chunks each) fits without growing the list.
const TRANSMIT_BUFS_HINT: usize = 16;

impl Session {
    /// The next vectored write, if any; call only when the socket can take
    /// it (see module docs).
    ///
    /// Control and command messages go first, then players' media in
    /// arrival order; before each media frame the real-time policy decides
    /// whether it is still worth sending. A transmit carries up to about a
    /// quarter second of the peer's measured drain rate (16 KiB to
    /// 256 KiB), so that on a slow link little media is past the policy's
    /// judgement at any time. A message larger than one chunk is handed out
    /// chunk by chunk across transmits; if its finish-by deadline (its
    /// arrival plus lifetime plus finish-by margin) passes before its last
    /// chunk is handed out, the rest is abandoned and an RTMP Abort for its
    /// chunk stream tells the peer to drop what it has of it.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let mut t = Transmit::default();
        self.poll_transmit_into(now, &mut t).then_some(t)
    }

    /// As [`Session::poll_transmit`], into `t`, reusing its buffer list (a
    /// runtime keeps one per connection, so fan-out allocates nothing per
    /// write). `t` must be fully written (empty); it is cleared first.
    /// Returns whether anything was put in it.
    #[must_use]
    pub fn poll_transmit_into(&mut self, now: Instant, t: &mut Transmit) -> bool {
        if self.is_rtws() {
            return self.poll_rtws_transmit(now, t);
        }
        t.bufs.clear();
        // Sized once for the usual transmit, then kept by the caller.
        t.bufs.reserve(TRANSMIT_BUFS_HINT);
        let bufs = &mut t.bufs;
        let mut bytes = 0;
        if self.holds_for_merge(now) {
            return false;
        }
        // A merged batch goes in one write, however small the pacing
        // budget: fewer writes is what merging is for.
        let budget = if self.config.merge_window.is_zero() {
            self.pacing.budget()
        } else {
            self.pacing.budget().max(self.config.merge_bytes)
        };
        while bufs.len() < MAX_TRANSMIT_BUFS && bytes < budget {
            let start = bufs.len();
            if self.partial.is_some() {
                self.continue_partial(now, bufs);
            } else if let Some(out) = self.control.pop_front() {
                self.control_bytes = self.control_bytes.saturating_sub(out.len());
                match out {
                    Outgoing::Raw(b) => bufs.push(b),
                    Outgoing::Message(m) => self.write_message(&m, &[], bufs),
                    Outgoing::SetChunkSize(size) => self.encoder.set_chunk_size(size, bufs),
                    Outgoing::Abort(csid) => self.write_abort(csid, bufs),
                }
            } else if let Some(next) = self.backlog.pop(now) {
                self.start_media(now, next, bufs);
            } else {
                break;
            }
            bytes += bufs[start..].iter().map(Bytes::len).sum::<usize>();
        }
        if self.control.is_empty() {
            self.timers.set(Timer::Linger, None);
        }
        // Popping may have emptied the backlog: no expiry to wait for.
        self.timers.set(Timer::Expire, self.backlog.next_expiry());
        if bufs.is_empty() {
            return false;
        }
        let more =
            self.partial.is_some() || !self.control.is_empty() || self.backlog.queued_bytes() > 0;
        self.pacing.sent(now, bytes, more);
        true
    }

    /// Encodes one message whose payload is `head` then `msg.payload`,
    /// with a full header in the simplified dialect.
    fn write_message(&mut self, msg: &RawMessage, head: &[u8], bufs: &mut Vec<Bytes>) {
        if self.config.simplified_rtmp {
            self.encoder.reset_stream(msg.csid);
        }
        self.encoder.write_prefixed(msg, head, bufs);
    }

    /// Encodes a player's message; one that spans several chunks becomes
    /// the [`Partial`] and only its first chunk goes into `bufs`.
    fn start_media(&mut self, now: Instant, next: backlog::Next, bufs: &mut Vec<Bytes>) {
        let (raw, kind) = match next.item {
            Item::Message(m) => (m, FrameKind::Data),
            Item::Frame(f) => {
                let kind = f.kind;
                self.frames_out += 1;
                (frame_to_raw(next.stream, f), kind)
            }
        };
        let head = next.head;
        let len = head.len() + raw.payload.len();
        if len <= self.encoder.chunk_size() as usize {
            self.write_message(&raw, head.as_slice(), bufs);
            return;
        }
        // A header and a payload slice per chunk, in the list the last
        // large message used: no allocation per frame for a player.
        let chunks = len.div_ceil(self.encoder.chunk_size() as usize);
        let mut encoded = std::mem::take(&mut self.spare_chunks);
        encoded.clear();
        encoded.reserve(2 * chunks);
        self.write_message(&raw, head.as_slice(), &mut encoded);
        self.partial = Some(Partial {
            stream: next.stream,
            csid: raw.csid,
            kind,
            finish_by: next.finish_by,
            payload: raw.payload,
            bufs: encoded,
            next: 0,
        });
        // The policy just judged it: its first chunk goes now.
        self.continue_partial(now, bufs);
    }

    /// Hands out the next chunk of the [`Partial`], or abandons the rest of
    /// it with an Abort once its finish-by deadline has passed.
    fn continue_partial(&mut self, now: Instant, bufs: &mut Vec<Bytes>) {
        let Some(p) = &mut self.partial else {
            return;
        };
        if p.finish_by.is_some_and(|at| now > at) {
            let unsent: usize = p.bufs[p.next..].iter().map(Bytes::len).sum();
            tracing::debug!(
                stream = p.stream,
                csid = p.csid,
                len = p.payload.len(),
                unsent,
                "finish-by deadline passed: message abandoned part way"
            );
            self.abort_partial(bufs);
            return;
        }
        while let Some(slot) = p.bufs.get_mut(p.next) {
            let b = std::mem::take(slot);
            p.next += 1;
            let end_of_chunk = p.is_payload_slice(&b);
            bufs.push(b);
            if end_of_chunk {
                break;
            }
        }
        if p.next >= p.bufs.len() {
            if let Some(p) = self.partial.take() {
                // Kept for the next large message unless unusually large
                // (a bound on what an idle player holds).
                if p.bufs.capacity() <= MAX_SPARE_CHUNK_BUFS {
                    self.spare_chunks = p.bufs;
                }
            }
        }
    }

    /// Abandons the [`Partial`] (if any): an Abort for its chunk stream
    /// goes into `bufs` right away, before any later chunk could follow on
    /// that stream.
    fn abort_partial(&mut self, bufs: &mut Vec<Bytes>) {
        let Some(p) = self.partial.take() else {
            return;
        };
        self.write_abort(p.csid, bufs);
        self.aborted += 1;
        self.backlog
            .abandoned_partial(p.stream, p.kind, p.payload.len());
    }

    /// Encodes an Abort for `csid` and makes the encoder forget that chunk
    /// stream's header state, so its next message starts with a full
    /// header whatever the peer kept.
    fn write_abort(&mut self, csid: u32, bufs: &mut Vec<Bytes>) {
        let abort = Message::Abort { csid };
        match abort.to_raw(CSID_CONTROL, MediaTime::ZERO, 0) {
            Ok(raw) => self.write_message(&raw, &[], bufs),
            Err(e) => tracing::warn!(%e, "could not encode an Abort"),
        }
        self.encoder.reset_stream(csid);
    }

    /// `stream` stopped playing: a message of it still partly unsent is
    /// aborted (not counted as dropped: nobody wants it any more). The
    /// Abort goes ahead of every queued reply, so it reaches the peer
    /// before anything else can be sent on that chunk stream.
    pub(super) fn stop_partial(&mut self, stream: u32) {
        if let Some(flows) = &mut self.flows {
            flows.abandon_media(Some(stream));
            return;
        }
        if let Some(p) = self.partial.take_if(|p| p.stream == stream) {
            let out = Outgoing::Abort(p.csid);
            self.control_bytes += out.len();
            self.control.push_front(out);
        }
    }

    /// Whether media is being held for adaptive write merging: only media
    /// is queued, its oldest message is younger than the merge window, it
    /// is less than the size bound, and no keyframe waits. Arms the
    /// [`Timer::Merge`] deadline for when it must go.
    fn holds_for_merge(&mut self, now: Instant) -> bool {
        let hold = self.merge_hold(now);
        self.timers.set(Timer::Merge, hold);
        hold.is_some()
    }

    /// Whether another `poll_transmit_into` now could hand out anything:
    /// false once the last one took everything queued. A runtime that
    /// writes for others (one publisher's read, many players) skips the
    /// call that would only say so. RTWebSocket sessions always answer
    /// true, as their flows decide.
    pub(crate) fn has_output(&self) -> bool {
        self.is_rtws()
            || self.partial.is_some()
            || !self.control.is_empty()
            || self.backlog.queued_bytes() > 0
    }

    /// Whether the write-merging window holds back everything this session
    /// has to send now; its merge timer is set for when it is due. The
    /// server then leaves it out of the ready queue: polling it would only
    /// find nothing to write, once per frame.
    pub(crate) fn holds_output(&mut self, now: Instant) -> bool {
        !self.is_rtws() && self.holds_for_merge(now)
    }

    /// When held media is due, if the window holds this session's output
    /// now; `None` when it may be written.
    fn merge_hold(&self, now: Instant) -> Option<Instant> {
        let window = self.config.merge_window;
        if window.is_zero()
            || self.partial.is_some()
            || !self.control.is_empty()
            || self.backlog.queued_bytes() >= self.config.merge_bytes
            || self.backlog.has_queued_keyframe()
        {
            return None;
        }
        let due = self.backlog.oldest_arrival()?.checked_add(window)?;
        (now < due).then_some(due)
    }
}
