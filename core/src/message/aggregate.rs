//! Aggregate messages (type 22): the FLV tags inside, split without
//! copying their payloads.

use bytes::Bytes;

use super::{type_id, MessageError};
use crate::chunk::RawMessage;
use crate::time::MediaTime;

/// Splits an aggregate message (type 22) into the messages it carries.
///
/// Each embedded FLV tag becomes a [`RawMessage`] on the aggregate's chunk
/// stream and message stream, its payload sliced from the aggregate's
/// without a copy. Timestamps keep their spacing but are moved so that the
/// first sub-message has the aggregate's own timestamp (which is what the
/// chunk layer rebased). Iteration stops at the first malformed tag.
pub fn split_aggregate(aggregate: &RawMessage) -> AggregateIter {
    AggregateIter {
        payload: aggregate.payload.clone(),
        offset: 0,
        csid: aggregate.csid,
        stream_id: aggregate.stream_id,
        base: aggregate.timestamp,
        first_tag_time: None,
        failed: false,
    }
}

/// The messages inside an aggregate; see [`split_aggregate`].
#[derive(Debug, Clone)]
pub struct AggregateIter {
    payload: Bytes,
    offset: usize,
    csid: u32,
    stream_id: u32,
    base: MediaTime,
    first_tag_time: Option<MediaTime>,
    failed: bool,
}

/// FLV tag header: type(1) size(3) timestamp(3) timestamp-ext(1) stream(3).
const TAG_HEADER_LEN: usize = 11;
/// The back pointer (previous tag size) after each tag body.
const BACK_POINTER_LEN: usize = 4;

impl Iterator for AggregateIter {
    type Item = Result<RawMessage, MessageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.payload.len() {
            return None;
        }
        let start = self.offset;
        let rest = &self.payload[start..];
        let Some(h) = rest.get(..TAG_HEADER_LEN) else {
            self.failed = true;
            return Some(Err(MessageError::AggregateTruncated { offset: start }));
        };
        let type_id = h[0];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let tag_time = MediaTime::from_millis(u32::from_be_bytes([h[7], h[4], h[5], h[6]]));
        if !matches!(
            type_id,
            type_id::AUDIO | type_id::VIDEO | type_id::DATA_AMF0 | type_id::DATA_AMF3
        ) {
            self.failed = true;
            return Some(Err(MessageError::AggregateType(type_id)));
        }
        let body_start = start + TAG_HEADER_LEN;
        let body_end = body_start + size;
        if body_end > self.payload.len() {
            self.failed = true;
            return Some(Err(MessageError::AggregateTruncated { offset: start }));
        }
        // Some muxers leave out the last back pointer; that loses nothing.
        self.offset = (body_end + BACK_POINTER_LEN).min(self.payload.len());
        let first = *self.first_tag_time.get_or_insert(tag_time);
        let timestamp = self
            .base
            .wrapping_add(tag_time.as_millis().wrapping_sub(first.as_millis()));
        Some(Ok(RawMessage {
            csid: self.csid,
            timestamp,
            type_id,
            stream_id: self.stream_id,
            payload: self.payload.slice(body_start..body_end),
        }))
    }
}
