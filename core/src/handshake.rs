//! The RTMP handshake (owned by the handshake implementation).
