//! Typed RTMP messages.

/// RTMP message type ids.
pub mod type_id {
    /// Protocol control: Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Protocol control: Abort Message.
    pub const ABORT: u8 = 2;
    /// Protocol control: Acknowledgement.
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Protocol control: Window Acknowledgement Size.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Protocol control: Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data (FLV audio tag body).
    pub const AUDIO: u8 = 8;
    /// Video data (FLV video tag body).
    pub const VIDEO: u8 = 9;
    /// Data message, AMF3 flavour (a format byte, then AMF0 values).
    pub const DATA_AMF3: u8 = 15;
    /// Shared object message, AMF3 flavour.
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command message, AMF3 flavour (a format byte, then AMF0 values).
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message (`@setDataFrame`, `onMetaData`, ...), AMF0.
    pub const DATA_AMF0: u8 = 18;
    /// Shared object message, AMF0.
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command message (`connect`, `play`, ...), AMF0.
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message: FLV tags back to back.
    pub const AGGREGATE: u8 = 22;
}
