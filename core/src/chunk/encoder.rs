//! Owned by the chunk-layer implementation (stub types so the crate builds).
#![allow(missing_docs, unreachable_pub, dead_code)]
pub struct ChunkEncoder;
