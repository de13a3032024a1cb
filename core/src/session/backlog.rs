//! The per-connection media backlog: what players on this connection are
//! owed, kept real-time rather than complete.
//!
//! Frames wait here, in arrival order and stamped with their arrival time,
//! until the runtime can write. A frame that waited longer than its
//! lifetime is abandoned when its turn comes (video together with the rest
//! of its GOP, since later frames cannot be decoded without it), and the
//! droppable bytes held never exceed the budget: past it the oldest
//! droppable frame goes. Configuration and data frames are never dropped;
//! they have their own hard bound, past which the peer is declared too
//! slow. So memory stays bounded however slowly the runtime polls.

use std::collections::VecDeque;
use std::time::Instant;

use crate::chunk::RawMessage;
use crate::event::{Frame, FrameKind};
use crate::media::TagHead;

use super::stream_map::StreamMap;
use super::RealTimeConfig;

/// Most entries held at once, whatever their size: bounds the bookkeeping
/// of a flood of tiny frames. Far above what any lifetime lets accumulate
/// at real frame rates.
const MAX_ENTRIES: usize = 16 * 1024;

/// The never-dropped bytes (configs, data, in-band statuses) may use at
/// least this much, even when the droppable budget is set lower.
const MIN_FIXED_BUDGET: usize = 1024 * 1024;

/// Queue entries whose room is kept once the queue has drained.
const KEEP_CAPACITY: usize = 16;

/// What waits in the backlog.
#[derive(Debug)]
pub(crate) enum Item {
    /// A media or data frame for a player.
    Frame(Frame),
    /// A status that must stay in order with the media around it
    /// (`PublishNotify`, `UnpublishNotify`); never dropped.
    Message(RawMessage),
}

impl Item {
    fn len(&self) -> usize {
        match self {
            Item::Frame(f) => f.payload.len(),
            Item::Message(m) => m.payload.len(),
        }
    }

    fn is_droppable(&self) -> bool {
        matches!(self, Item::Frame(f) if f.is_droppable())
    }

    /// A droppable video frame of `stream`, and whether it is a keyframe.
    fn droppable_video(&self) -> Option<bool> {
        match self {
            Item::Frame(f) if f.kind == FrameKind::Video && f.is_droppable() => Some(f.keyframe),
            _ => None,
        }
    }
}

/// What [`Backlog::pop`] hands out next.
#[derive(Debug)]
pub(crate) struct Next {
    /// The player's message stream.
    pub(crate) stream: u32,
    pub(crate) item: Item,
    /// For droppable media: when its transmission must be complete (its
    /// arrival plus lifetime plus finish-by margin); a message still partly
    /// unsent then is abandoned. `None` for what is never dropped.
    pub(crate) finish_by: Option<Instant>,
    /// A tag header to write in front of the frame's payload (one track
    /// of a multitrack message rewritten as a single-track packet); empty
    /// for a frame sent as it is.
    pub(crate) head: TagHead,
}

#[derive(Debug)]
struct Entry {
    stream: u32,
    arrival: Instant,
    /// Position in the order of pushes (for the lanes' lazy drops).
    seq: u64,
    item: Item,
    /// See [`Next::head`].
    head: TagHead,
}

/// The policy state of one playing message stream.
#[derive(Debug)]
struct Lane {
    rt: RealTimeConfig,
    /// Video must resume at a keyframe: set when video was abandoned and no
    /// keyframe of this stream is queued, or when video was turned back on.
    skip_video: bool,
    /// Queued video broke: [`Backlog::pop`] abandons this stream's queued
    /// inter frames until it reaches one of its keyframes. Dropping the
    /// rest of a GOP this way costs nothing at the moment of the drop,
    /// where removing it from the queue would scan every entry.
    skip_queued: bool,
    /// Queued video of this stream older than this (by `seq`) is
    /// abandoned when popped (`expire_previous_gop`).
    video_floor: u64,
    /// Droppable keyframes of this stream in the queue.
    queued_keys: usize,
}

impl Lane {
    fn shortest_lifetime(&self) -> std::time::Duration {
        self.rt.audio_lifetime.min(self.rt.video_lifetime)
    }
}

/// The backlog was asked to hold more never-dropped data than its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Backlog {
    queue: VecDeque<Entry>,
    lanes: StreamMap<Lane>,
    budget: usize,
    droppable_bytes: usize,
    fixed_bytes: usize,
    dropped_frames: u64,
    dropped_bytes: u64,
    next_seq: u64,
    /// When [`Backlog::expire`] may next have something to abandon; may be
    /// early, never late.
    expiry: Option<Instant>,
}

impl Backlog {
    /// An empty backlog holding at most `budget` bytes of droppable media.
    pub(crate) fn new(budget: usize) -> Self {
        Backlog {
            queue: VecDeque::new(),
            lanes: StreamMap::default(),
            budget,
            droppable_bytes: 0,
            fixed_bytes: 0,
            dropped_frames: 0,
            dropped_bytes: 0,
            next_seq: 0,
            expiry: None,
        }
    }

    /// When media may next outlive its lifetime in the queue: the
    /// session's timer for [`Backlog::expire`].
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.expiry
    }

    /// Abandons queued media that outlived its lifetime, as
    /// [`Backlog::pop`] would when its turn came, for a player that is
    /// not polled at all (its socket takes nothing): so a stalled player
    /// holds at most its lifetimes' worth, not its whole byte budget.
    /// Looks only at entries old enough to have expired.
    pub(super) fn expire(&mut self, now: Instant) {
        let Some(shortest) = self.lanes.values().map(Lane::shortest_lifetime).min() else {
            self.expiry = None;
            return;
        };
        let mut kept = Vec::new();
        let mut next: Option<Instant> = None;
        while let Some(front) = self.queue.front() {
            let old_enough = front
                .arrival
                .checked_add(shortest)
                .is_some_and(|at| at <= now);
            if !old_enough {
                next = min_instant(next, front.arrival.checked_add(shortest));
                break;
            }
            let Some(entry) = self.queue.pop_front() else {
                break;
            };
            let deadline = match (&entry.item, self.lanes.get(&entry.stream)) {
                (Item::Frame(f), Some(lane)) if f.is_droppable() => match f.kind {
                    FrameKind::Audio => entry.arrival.checked_add(lane.rt.audio_lifetime),
                    FrameKind::Video => entry.arrival.checked_add(lane.rt.video_lifetime),
                    FrameKind::Data => None,
                },
                _ => None,
            };
            match deadline {
                Some(at) if at <= now => {
                    self.unaccount(&entry);
                    self.count_drop(entry.item.len());
                    if entry.item.droppable_video().is_some() {
                        self.drop_rest_of_gop(entry.stream);
                    }
                }
                _ => {
                    next = min_instant(next, deadline);
                    kept.push(entry);
                }
            }
        }
        for entry in kept.into_iter().rev() {
            self.queue.push_front(entry);
        }
        self.expiry = next;
    }

    pub(crate) fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    pub(crate) fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// When the oldest queued item arrived, if any.
    pub(super) fn oldest_arrival(&self) -> Option<Instant> {
        self.queue.front().map(|e| e.arrival)
    }

    /// Whether a keyframe waits in the queue: merged writes never hold
    /// one back.
    pub(super) fn has_queued_keyframe(&self) -> bool {
        self.lanes.values().any(|l| l.queued_keys > 0)
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.droppable_bytes + self.fixed_bytes
    }

    /// Starts accepting frames for `stream` under `rt`.
    pub(crate) fn open_lane(&mut self, stream: u32, rt: RealTimeConfig) {
        // Frames a previous play of this stream queued stay queued.
        let queued_keys = self.lanes.get(&stream).map_or(0, |l| l.queued_keys);
        self.lanes.insert(
            stream,
            Lane {
                rt,
                skip_video: false,
                skip_queued: false,
                video_floor: 0,
                queued_keys,
            },
        );
    }

    /// Stops playback on `stream`: forgets its lane and everything queued
    /// for it (not counted as dropped: nobody wants it any more).
    pub(super) fn close_lane(&mut self, stream: u32) {
        self.lanes.remove(&stream);
        self.remove_where(|e| e.stream == stream, false);
    }

    /// Forgets everything: the session is closing.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.lanes.clear();
        self.droppable_bytes = 0;
        self.fixed_bytes = 0;
        self.expiry = None;
    }

    /// The player turned `kind` (or, with `None`, all media) off: removes
    /// its queued droppable frames, not counted as dropped.
    pub(super) fn discard_droppable(&mut self, stream: u32, kind: Option<FrameKind>) {
        self.remove_where(
            |e| {
                e.stream == stream
                    && matches!(&e.item, Item::Frame(f)
                        if f.is_droppable() && kind.map_or(true, |k| k == f.kind))
            },
            false,
        );
    }

    /// Video of `stream` resumes at its next keyframe.
    pub(super) fn resume_video_at_keyframe(&mut self, stream: u32) {
        if let Some(lane) = self.lanes.get_mut(&stream) {
            lane.skip_video = true;
        }
    }

    /// Queues a status that must stay in order with `stream`'s media.
    pub(crate) fn push_message(
        &mut self,
        now: Instant,
        stream: u32,
        msg: RawMessage,
    ) -> Result<(), Overflow> {
        self.push(now, stream, Item::Message(msg), TagHead::default())
    }

    /// Queues a frame for the player on `stream`; frames for a stream
    /// without a lane (not playing) are ignored.
    pub(crate) fn push_frame(
        &mut self,
        now: Instant,
        stream: u32,
        frame: Frame,
    ) -> Result<(), Overflow> {
        self.push_frame_with_head(now, stream, frame, TagHead::default())
    }

    /// As [`Backlog::push_frame`], for a frame to be sent with `head` in
    /// front of its payload.
    pub(crate) fn push_frame_with_head(
        &mut self,
        now: Instant,
        stream: u32,
        frame: Frame,
        head: TagHead,
    ) -> Result<(), Overflow> {
        let Some(lane) = self.lanes.get_mut(&stream) else {
            return Ok(());
        };
        if frame.kind == FrameKind::Video && frame.is_droppable() {
            if frame.keyframe {
                lane.skip_video = false;
                if lane.rt.expire_previous_gop {
                    // Everything queued before it goes when popped.
                    lane.video_floor = self.next_seq;
                }
            } else if lane.skip_video {
                // No keyframe is queued since video broke: undecodable.
                self.count_drop(frame.payload.len());
                return Ok(());
            }
        }
        self.push(now, stream, Item::Frame(frame), head)
    }

    fn push(
        &mut self,
        now: Instant,
        stream: u32,
        item: Item,
        head: TagHead,
    ) -> Result<(), Overflow> {
        let len = item.len();
        let droppable = item.is_droppable();
        if !droppable && self.fixed_bytes + len > self.budget.max(MIN_FIXED_BUDGET) {
            return Err(Overflow);
        }
        if self.queue.len() >= MAX_ENTRIES && !self.drop_oldest() {
            if droppable {
                self.count_drop(len);
                return Ok(());
            }
            return Err(Overflow);
        }
        if droppable {
            self.droppable_bytes += len;
        } else {
            self.fixed_bytes += len;
        }
        if item.droppable_video() == Some(true) {
            if let Some(lane) = self.lanes.get_mut(&stream) {
                lane.queued_keys += 1;
            }
        }
        if self.expiry.is_none() {
            let shortest = self.lanes.values().map(Lane::shortest_lifetime).min();
            self.expiry = shortest.and_then(|l| now.checked_add(l));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(Entry {
            stream,
            arrival: now,
            seq,
            item,
            head,
        });
        while self.droppable_bytes > self.budget && self.drop_oldest() {}
        Ok(())
    }

    /// The next item to send, after abandoning what the real-time policy
    /// says is too late.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<Next> {
        if self.queue.is_empty() && self.queue.capacity() > KEEP_CAPACITY {
            // A join's fast-start burst (a whole GOP) is over: do not keep
            // its room for the life of the player. Steady fan-out queues a
            // few frames, so this does not reallocate per frame.
            self.queue.shrink_to(KEEP_CAPACITY);
        }
        while let Some(entry) = self.queue.pop_front() {
            self.unaccount(&entry);
            if self.queue.is_empty() {
                self.expiry = None;
            }
            let Entry {
                stream,
                arrival,
                seq,
                item,
                head,
            } = entry;
            let Item::Frame(frame) = item else {
                return Some(Next {
                    stream,
                    item,
                    finish_by: None,
                    head,
                });
            };
            let Some(lane) = self.lanes.get_mut(&stream) else {
                continue;
            };
            let mut finish_by = None;
            if frame.is_droppable() {
                let age = now.saturating_duration_since(arrival);
                let lifetime = match frame.kind {
                    FrameKind::Audio => Some(lane.rt.audio_lifetime),
                    FrameKind::Video => Some(lane.rt.video_lifetime),
                    FrameKind::Data => None,
                };
                finish_by = lifetime
                    .and_then(|l| l.checked_add(lane.rt.finish_by_margin))
                    .and_then(|d| arrival.checked_add(d));
                match frame.kind {
                    FrameKind::Audio if age > lane.rt.audio_lifetime => {
                        self.count_drop(frame.payload.len());
                        continue;
                    }
                    FrameKind::Video => {
                        if seq < lane.video_floor {
                            // An earlier GOP, expired by a newer keyframe.
                            self.count_drop(frame.payload.len());
                            continue;
                        }
                        if !frame.keyframe && (lane.skip_video || lane.skip_queued) {
                            self.count_drop(frame.payload.len());
                            continue;
                        }
                        if age > lane.rt.video_lifetime {
                            self.count_drop(frame.payload.len());
                            self.drop_rest_of_gop(stream);
                            continue;
                        }
                        if frame.keyframe {
                            lane.skip_video = false;
                            lane.skip_queued = false;
                        }
                    }
                    _ => {}
                }
            }
            return Some(Next {
                stream,
                item: Item::Frame(frame),
                finish_by,
                head,
            });
        }
        None
    }

    /// A message of `stream` was cut off part way (its finish-by deadline
    /// passed): counts it as abandoned and, for video, abandons the rest of
    /// its GOP, which cannot be decoded without it.
    pub(super) fn abandoned_partial(&mut self, stream: u32, kind: FrameKind, len: usize) {
        self.count_drop(len);
        if kind == FrameKind::Video && self.lanes.contains_key(&stream) {
            self.drop_rest_of_gop(stream);
        }
    }

    /// Abandons the oldest droppable frame (and, for video, the rest of
    /// its GOP). False if nothing is droppable.
    fn drop_oldest(&mut self) -> bool {
        let Some(i) = self.queue.iter().position(|e| e.item.is_droppable()) else {
            return false;
        };
        let Some(entry) = self.queue.remove(i) else {
            return false;
        };
        self.unaccount(&entry);
        self.count_drop(entry.item.len());
        if entry.item.droppable_video().is_some() {
            self.drop_rest_of_gop(entry.stream);
        }
        true
    }

    /// Video of `stream` broke: abandons its queued droppable video up to
    /// its next keyframe, or, if none is queued, marks the lane so that
    /// video resumes at the next keyframe to arrive.
    ///
    /// Constant time: the queued frames are abandoned as [`Backlog::pop`]
    /// reaches them (their bytes stay counted until then, so the budget
    /// still holds), rather than searched for now.
    fn drop_rest_of_gop(&mut self, stream: u32) {
        if let Some(lane) = self.lanes.get_mut(&stream) {
            lane.skip_queued = true;
            lane.skip_video = lane.queued_keys == 0;
        }
    }

    /// Removes the entries `doomed` picks, in queue order; `count` says
    /// whether they are policy drops (stats) or unwanted.
    fn remove_where(&mut self, mut doomed: impl FnMut(&Entry) -> bool, count: bool) {
        let (mut droppable, mut fixed, mut frames) = (0, 0, 0);
        let lanes = &mut self.lanes;
        self.queue.retain(|e| {
            if !doomed(e) {
                return true;
            }
            if e.item.droppable_video() == Some(true) {
                if let Some(lane) = lanes.get_mut(&e.stream) {
                    lane.queued_keys = lane.queued_keys.saturating_sub(1);
                }
            }
            if e.item.is_droppable() {
                droppable += e.item.len();
            } else {
                fixed += e.item.len();
            }
            frames += 1;
            false
        });
        self.droppable_bytes -= droppable;
        self.fixed_bytes -= fixed;
        if count {
            self.dropped_frames += frames;
            self.dropped_bytes += (droppable + fixed) as u64;
        }
    }

    fn unaccount(&mut self, entry: &Entry) {
        let item = &entry.item;
        if item.droppable_video() == Some(true) {
            if let Some(lane) = self.lanes.get_mut(&entry.stream) {
                lane.queued_keys = lane.queued_keys.saturating_sub(1);
            }
        }
        if item.is_droppable() {
            self.droppable_bytes -= item.len();
        } else {
            self.fixed_bytes -= item.len();
        }
    }

    fn count_drop(&mut self, len: usize) {
        self.dropped_frames += 1;
        self.dropped_bytes += len as u64;
    }
}

fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::testing::test_now;
    use crate::time::MediaTime;

    fn frame(kind: FrameKind, len: usize, keyframe: bool, config: bool) -> Frame {
        Frame {
            kind,
            timestamp: MediaTime::ZERO,
            payload: Bytes::from(vec![0u8; len]),
            keyframe,
            config,
        }
    }

    fn key(len: usize) -> Frame {
        frame(FrameKind::Video, len, true, false)
    }

    fn inter(len: usize) -> Frame {
        frame(FrameKind::Video, len, false, false)
    }

    fn audio(len: usize) -> Frame {
        frame(FrameKind::Audio, len, false, false)
    }

    fn backlog(budget: usize) -> Backlog {
        let mut b = Backlog::new(budget);
        b.open_lane(1, RealTimeConfig::default());
        b
    }

    fn drain(b: &mut Backlog, now: Instant) -> Vec<Frame> {
        std::iter::from_fn(|| b.pop(now))
            .filter_map(|next| match next.item {
                Item::Frame(f) => Some(f),
                Item::Message(_) => None,
            })
            .collect()
    }

    #[test]
    fn over_budget_drops_the_oldest_gop_up_to_the_next_keyframe() {
        let now = test_now();
        let mut b = backlog(1000);
        for f in [key(300), inter(300), inter(300), key(300), inter(300)] {
            b.push_frame(now, 1, f).unwrap();
        }
        assert!(b.queued_bytes() <= 1000);
        let sent = drain(&mut b, now);
        assert!(sent[0].keyframe);
        assert_eq!(sent.len(), 2);
        assert_eq!(b.dropped_frames(), 3);
    }

    #[test]
    fn stale_audio_is_abandoned() {
        let now = test_now();
        let mut b = backlog(1 << 20);
        b.push_frame(now, 1, audio(10)).unwrap();
        assert!(drain(&mut b, now + Duration::from_secs(3)).is_empty());
        assert_eq!(b.dropped_frames(), 1);
    }

    #[test]
    fn stale_video_drops_until_the_next_keyframe_even_one_not_yet_arrived() {
        let now = test_now();
        let mut b = backlog(1 << 20);
        b.push_frame(now, 1, key(10)).unwrap();
        b.push_frame(now, 1, inter(10)).unwrap();
        let later = now + Duration::from_secs(4);
        assert!(drain(&mut b, later).is_empty());
        b.push_frame(later, 1, inter(10)).unwrap();
        b.push_frame(later, 1, key(10)).unwrap();
        let sent = drain(&mut b, later);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].keyframe);
    }

    #[test]
    fn config_and_data_are_never_dropped() {
        let now = test_now();
        let mut b = backlog(100);
        b.push_frame(now, 1, frame(FrameKind::Video, 500, false, true))
            .unwrap();
        b.push_frame(now, 1, frame(FrameKind::Data, 500, false, false))
            .unwrap();
        b.push_frame(now, 1, key(500)).unwrap();
        let sent = drain(&mut b, now + Duration::from_secs(60));
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|f| !f.is_droppable()));
    }

    #[test]
    fn never_dropped_data_past_its_bound_overflows() {
        let now = test_now();
        let mut b = backlog(100);
        let big = frame(FrameKind::Data, MIN_FIXED_BUDGET + 1, false, false);
        assert_eq!(b.push_frame(now, 1, big), Err(Overflow));
    }

    #[test]
    fn expire_previous_gop_drops_unsent_video_when_a_keyframe_arrives() {
        let now = test_now();
        let mut b = Backlog::new(1 << 20);
        b.open_lane(
            1,
            RealTimeConfig {
                expire_previous_gop: true,
                ..RealTimeConfig::default()
            },
        );
        for f in [key(10), inter(10), audio(10), key(10)] {
            b.push_frame(now, 1, f).unwrap();
        }
        let sent = drain(&mut b, now);
        let kinds: Vec<_> = sent.iter().map(|f| (f.kind, f.keyframe)).collect();
        assert_eq!(kinds, [(FrameKind::Audio, false), (FrameKind::Video, true)]);
    }

    #[test]
    fn entry_count_is_bounded() {
        let now = test_now();
        let mut b = backlog(usize::MAX);
        for _ in 0..MAX_ENTRIES + 10 {
            b.push_frame(now, 1, audio(1)).unwrap();
        }
        assert_eq!(b.queue.len(), MAX_ENTRIES);
        assert_eq!(b.dropped_frames(), 10);
    }
}
