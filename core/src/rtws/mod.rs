//! RTWebSocket: prioritised, flow-controlled message flows over one
//! WebSocket, sans-IO.
//!
//! See docs/rtwebsocket.md.

mod endpoint;
pub mod message;
pub mod vlu;

pub use endpoint::{
    Priority, RecvFlowId, RtwsConfig, RtwsEndpoint, RtwsError, RtwsEvent, SendError, SendFlowId,
    ACK_DELAY, INITIAL_SEND_WINDOW, MIN_ACK_WINDOW,
};
pub use message::{DecodeError, ExceptionReason, Message};
#[cfg(test)]
mod tests;
