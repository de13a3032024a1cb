//! FLV audio/video tag headers (owned by the media implementation).
