//! RTWebSocket: prioritised, flow-controlled message flows over one
//! WebSocket, sans-IO.
//!
//! See docs/rtwebsocket.md.

pub mod message;
pub mod vlu;
