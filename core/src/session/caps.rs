//! Enhanced RTMP v2 capability negotiation: what a client announces in
//! `connect` (`fourCcList`, `videoFourCcInfoMap`, `audioFourCcInfoMap`,
//! `capsEx`) and what the server answers in its `_result`.
//!
//! The announcement is parsed leniently, as the specification asks ("fail
//! gracefully"): a member of the wrong type is ignored, never an error, and
//! what is kept is bounded (a client cannot make the session hold more than
//! [`MAX_FOURCC_ENTRIES`] codes per list).

use crate::message::Value;

/// `CapsExMask.Reconnect`: the peer handles
/// `NetConnection.Connect.ReconnectRequest`.
pub const CAPS_EX_RECONNECT: u32 = 0x01;
/// `CapsExMask.Multitrack`: the peer handles multitrack audio and video
/// (a player announcing it must be able to play such streams).
pub const CAPS_EX_MULTITRACK: u32 = 0x02;
/// `CapsExMask.ModEx`: the peer can parse the ModEx signal.
pub const CAPS_EX_MOD_EX: u32 = 0x04;
/// `CapsExMask.TimestampNanoOffset`: the peer handles the nanosecond
/// timestamp offset (a ModEx).
pub const CAPS_EX_TIMESTAMP_NANO_OFFSET: u32 = 0x08;

/// `FourCcInfoMask.CanDecode`.
pub const FOURCC_CAN_DECODE: u32 = 0x01;
/// `FourCcInfoMask.CanEncode`.
pub const FOURCC_CAN_ENCODE: u32 = 0x02;
/// `FourCcInfoMask.CanForward`.
pub const FOURCC_CAN_FORWARD: u32 = 0x04;

/// Most entries kept from each of `fourCcList` and the two info maps: the
/// specification defines a dozen codecs, and a client listing thousands is
/// only costing the server memory.
pub const MAX_FOURCC_ENTRIES: usize = 64;
/// Longest FourCC key kept (a FourCC is 4 bytes, the wildcard 1; some
/// clients send a few more by mistake).
const MAX_FOURCC_LEN: usize = 16;

/// Every FourCC the server's media parser knows, in the order the
/// specification lists them: the server's `fourCcList`. The server
/// forwards media whatever its codec, so these are the codecs it can also
/// describe and convert between multitrack and single-track packets.
pub const SERVER_FOURCC_LIST: [&str; 12] = [
    "av01", "vp09", "vp08", "hvc1", "avc1", "vvc1", "ac-3", "ec-3", "Opus", ".mp3", "fLaC", "mp4a",
];

/// The `capsEx` the server answers: it sends reconnect requests to clients
/// that announced them, accepts and delivers multitrack media, and parses
/// ModEx (the nanosecond offset is forwarded to players that get packets
/// as sent).
pub const SERVER_CAPS_EX: u32 =
    CAPS_EX_RECONNECT | CAPS_EX_MULTITRACK | CAPS_EX_MOD_EX | CAPS_EX_TIMESTAMP_NANO_OFFSET;

/// What a peer announced about Enhanced RTMP in `connect` (or, for a
/// client, what the server answered in `_result`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnhancedCaps {
    /// `fourCcList`: codecs the peer supports (`"*"` for any), in its order.
    pub fourcc_list: Vec<String>,
    /// `videoFourCcInfoMap`: per video FourCC (or `"*"`), `FOURCC_CAN_*`
    /// flags.
    pub video_fourcc_info: Vec<(String, u32)>,
    /// `audioFourCcInfoMap`: as [`EnhancedCaps::video_fourcc_info`], audio.
    pub audio_fourcc_info: Vec<(String, u32)>,
    /// `capsEx`: `CAPS_EX_*` flags; `None` when absent.
    pub caps_ex: Option<u32>,
}

impl EnhancedCaps {
    /// Reads the Enhanced RTMP members of a `connect` command object (or of
    /// a `_result` properties object). Members of an unexpected type are
    /// ignored; lists are cut at [`MAX_FOURCC_ENTRIES`].
    pub fn from_object(object: &Value) -> Self {
        let fourcc_list = match object.get("fourCcList") {
            Some(Value::StrictArray(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| s.len() <= MAX_FOURCC_LEN)
                .take(MAX_FOURCC_ENTRIES)
                .map(str::to_owned)
                .collect(),
            // The specification says Strict Array; be lenient about
            // writers that used an ECMA array or object of index keys.
            Some(Value::EcmaArray(members) | Value::Object(members)) => members
                .iter()
                .filter_map(|(_, v)| v.as_str())
                .filter(|s| s.len() <= MAX_FOURCC_LEN)
                .take(MAX_FOURCC_ENTRIES)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let caps_ex = object
            .get("capsEx")
            .and_then(Value::as_f64)
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| n.min(f64::from(u32::MAX)) as u32);
        EnhancedCaps {
            fourcc_list,
            video_fourcc_info: info_map(object.get("videoFourCcInfoMap")),
            audio_fourcc_info: info_map(object.get("audioFourCcInfoMap")),
            caps_ex,
        }
    }

    /// Whether the peer announced anything about Enhanced RTMP.
    pub fn is_enhanced(&self) -> bool {
        !self.fourcc_list.is_empty()
            || !self.video_fourcc_info.is_empty()
            || !self.audio_fourcc_info.is_empty()
            || self.caps_ex.is_some()
    }

    /// Whether `capsEx` has all of `flags`.
    pub fn has_caps_ex(&self, flags: u32) -> bool {
        self.caps_ex.is_some_and(|c| c & flags == flags)
    }

    /// Whether the peer announced multitrack support (`capsEx` Multitrack).
    pub fn supports_multitrack(&self) -> bool {
        self.has_caps_ex(CAPS_EX_MULTITRACK)
    }

    /// Whether the peer announced it handles reconnect requests (`capsEx`
    /// Reconnect).
    pub fn supports_reconnect(&self) -> bool {
        self.has_caps_ex(CAPS_EX_RECONNECT)
    }

    /// Whether the peer announced support for `fourcc` (an exact entry or
    /// the `"*"` wildcard) in `fourCcList` or in either info map (any flag).
    pub fn supports_fourcc(&self, fourcc: &str) -> bool {
        let hit = |s: &str| s == fourcc || s == "*";
        self.fourcc_list.iter().any(|s| hit(s))
            || self
                .video_fourcc_info
                .iter()
                .chain(&self.audio_fourcc_info)
                .any(|(s, flags)| hit(s) && *flags != 0)
    }

    /// The members to put in a command object, in the specification's
    /// order; absent ones are left out.
    pub fn to_members(&self) -> Vec<(&'static str, Value)> {
        let mut members = Vec::new();
        if !self.fourcc_list.is_empty() {
            let list = self
                .fourcc_list
                .iter()
                .map(|s| Value::from(s.as_str()))
                .collect();
            members.push(("fourCcList", Value::StrictArray(list)));
        }
        let map = |m: &[(String, u32)]| {
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::Number(f64::from(*v))))
                    .collect(),
            )
        };
        if !self.video_fourcc_info.is_empty() {
            members.push(("videoFourCcInfoMap", map(&self.video_fourcc_info)));
        }
        if !self.audio_fourcc_info.is_empty() {
            members.push(("audioFourCcInfoMap", map(&self.audio_fourcc_info)));
        }
        if let Some(caps) = self.caps_ex {
            members.push(("capsEx", Value::Number(f64::from(caps))));
        }
        members
    }

    /// What the server answers in its `connect` `_result`: every FourCC
    /// it knows in `fourCcList`, `"*": CanForward` in both info maps (it
    /// forwards any codec without decoding it), and [`SERVER_CAPS_EX`].
    pub fn server() -> Self {
        EnhancedCaps {
            fourcc_list: SERVER_FOURCC_LIST.iter().map(|s| (*s).to_owned()).collect(),
            video_fourcc_info: vec![("*".to_owned(), FOURCC_CAN_FORWARD)],
            audio_fourcc_info: vec![("*".to_owned(), FOURCC_CAN_FORWARD)],
            caps_ex: Some(SERVER_CAPS_EX),
        }
    }
}

/// An info map's `(FourCC, flags)` pairs; anything but an object (or ECMA
/// array) of numbers is ignored.
fn info_map(value: Option<&Value>) -> Vec<(String, u32)> {
    match value {
        Some(Value::Object(members) | Value::EcmaArray(members)) => members
            .iter()
            .filter(|(k, _)| k.len() <= MAX_FOURCC_LEN)
            .filter_map(|(k, v)| {
                let n = v.as_f64().filter(|n| n.is_finite() && *n >= 0.0)?;
                Some((k.clone(), n.min(f64::from(u32::MAX)) as u32))
            })
            .take(MAX_FOURCC_ENTRIES)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_member_and_ignores_wrong_types() {
        let object = Value::object([
            ("app", Value::from("live")),
            (
                "fourCcList",
                Value::StrictArray(vec![Value::from("hvc1"), Value::Number(3.0)]),
            ),
            (
                "videoFourCcInfoMap",
                Value::object([("*", Value::Number(4.0)), ("vp09", Value::from("x"))]),
            ),
            (
                "audioFourCcInfoMap",
                Value::object([("Opus", Value::Number(3.0))]),
            ),
            ("capsEx", Value::Number(3.0)),
        ]);
        let caps = EnhancedCaps::from_object(&object);
        assert_eq!(caps.fourcc_list, vec!["hvc1".to_owned()]);
        assert_eq!(caps.video_fourcc_info, vec![("*".to_owned(), 4)]);
        assert_eq!(caps.audio_fourcc_info, vec![("Opus".to_owned(), 3)]);
        assert!(caps.supports_multitrack() && caps.supports_reconnect());
        assert!(caps.supports_fourcc("av01"), "the wildcard covers it");

        let legacy = EnhancedCaps::from_object(&Value::object([("app", Value::from("live"))]));
        assert!(!legacy.is_enhanced());
        let odd = EnhancedCaps::from_object(&Value::object([
            ("capsEx", Value::from("abc")),
            ("fourCcList", Value::Number(1.0)),
        ]));
        assert_eq!(odd, EnhancedCaps::default());
    }

    #[test]
    fn lists_are_bounded() {
        let many = Value::StrictArray(vec![Value::from("avc1"); 10_000]);
        let caps = EnhancedCaps::from_object(&Value::object([("fourCcList", many)]));
        assert_eq!(caps.fourcc_list.len(), MAX_FOURCC_ENTRIES);
    }

    #[test]
    fn the_server_answer_round_trips() {
        let server = EnhancedCaps::server();
        let object = Value::object(server.to_members());
        assert_eq!(EnhancedCaps::from_object(&object), server);
        assert!(server.supports_multitrack() && server.supports_reconnect());
    }
}
