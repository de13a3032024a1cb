//! Commands (types 20 and 17): the typed known commands (`connect`,
//! `publish`, `play`, TC's `relay`/`broadcast`/`watch`, ...) and their
//! decoding from, and encoding to, AMF command bodies. Unknown commands are
//! kept whole as [`Command::Other`].

use super::{MessageError, Value};
use crate::amf::amf0;

/// How a publisher asked its stream to be treated. tincan serves everything
/// live, but keeps the client's word for logs and hooks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublishKind {
    /// `"live"`, or no type given.
    Live,
    /// `"record"`.
    Record,
    /// `"append"`.
    Append,
    /// Anything else a client sent (e.g. `"appendWithGap"`).
    Other(String),
}

impl PublishKind {
    fn parse(s: Option<&str>) -> Self {
        match s {
            None | Some("live") => PublishKind::Live,
            Some("record") => PublishKind::Record,
            Some("append") => PublishKind::Append,
            Some(other) => PublishKind::Other(other.to_owned()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            PublishKind::Live => "live",
            PublishKind::Record => "record",
            PublishKind::Append => "append",
            PublishKind::Other(s) => s,
        }
    }
}

/// The `connect` command: the first thing every client says.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    /// Transaction id the `_result` must echo (1 for every known client).
    pub transaction_id: f64,
    /// The command object as sent (app, tcUrl, flashVer, objectEncoding...).
    pub properties: Value,
    /// Extra arguments after the command object: TC-style auth tokens (one
    /// App-wide token, or a user name and a user token) or FFmpeg's
    /// `-rtmp_conn` values.
    pub args: Vec<Value>,
}

impl Connect {
    /// The `app` member, if the client sent one.
    pub fn app(&self) -> Option<&str> {
        self.properties.get("app").and_then(Value::as_str)
    }

    /// The `tcUrl` member, if the client sent one.
    pub fn tc_url(&self) -> Option<&str> {
        self.properties.get("tcUrl").and_then(Value::as_str)
    }

    /// The AMF encoding the client asked for (0 when absent, as Flash does).
    pub fn object_encoding(&self) -> f64 {
        self.properties
            .get("objectEncoding")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    }

    /// The App this connection belongs to: the `app` member, else the path of
    /// `tcUrl` without its leading slash (the TC convention). `None` when
    /// neither is present: such a connect must be rejected.
    pub fn resolved_app(&self) -> Option<String> {
        if let Some(app) = self.app() {
            return Some(app.to_owned());
        }
        let url = self.tc_url()?;
        // scheme://authority/path?query -> path
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = after_scheme.split_once('/').map_or("", |(_, path)| path);
        let path = path.split(['?', '#']).next().unwrap_or("");
        Some(path.trim_start_matches('/').to_owned())
    }
}

/// The `play` command.
#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    /// Transaction id (0 from most clients; they expect no `_result`).
    pub transaction_id: f64,
    /// The stream name, possibly prefixed (`asis:`, `sha256:`).
    pub name: String,
    /// Start position: -2 (the default) and any negative value mean live;
    /// FFmpeg sends -2000, rtmpdump -1000, GStreamer -2.
    pub start: f64,
    /// Duration: -1 (the default) means until the end.
    pub duration: f64,
    /// Whether to flush previous playlists (`reset`), default true.
    pub reset: bool,
    /// A TC-style object after the name that overrides real-time treatment
    /// (`audioLifetime`, `videoLifetime`, `finishByMargin`,
    /// `expirePreviousGop`).
    pub options: Option<Value>,
}

/// A command message with its arguments typed by name.
///
/// Commands this server acts on have their own variants; everything else
/// (including replies a client-side session receives) is kept whole in
/// [`Command::Other`], so nothing a peer sends is lost.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// `connect`.
    Connect(Connect),
    /// `createStream`.
    CreateStream {
        /// Transaction id the `_result` must echo.
        transaction_id: f64,
    },
    /// `deleteStream`: the message stream id to delete.
    DeleteStream {
        /// Transaction id (0 from every known client).
        transaction_id: f64,
        /// The stream being deleted.
        stream_id: f64,
    },
    /// `closeStream`, sent on the stream it closes.
    CloseStream {
        /// Transaction id.
        transaction_id: f64,
    },
    /// `releaseStream`: FFmpeg and OBS send it before publishing; TC uses it
    /// to evict a stuck publisher of that name.
    ReleaseStream {
        /// Transaction id.
        transaction_id: f64,
        /// The plain stream name.
        name: String,
    },
    /// `FCPublish` (Flash Media Live Encoder convention; answered with
    /// `onFCPublish`).
    FcPublish {
        /// Transaction id.
        transaction_id: f64,
        /// The stream name.
        name: String,
    },
    /// `FCUnpublish`.
    FcUnpublish {
        /// Transaction id.
        transaction_id: f64,
        /// The stream name.
        name: String,
    },
    /// `publish`, sent on the stream to publish on. A `false`/`null` name is
    /// Flash's way of stopping a publish, hence `Option`.
    Publish {
        /// Transaction id.
        transaction_id: f64,
        /// The stream name, or `None` to unpublish.
        name: Option<String>,
        /// The publishing type.
        kind: PublishKind,
    },
    /// `play`.
    Play(Play),
    /// `pause`.
    Pause {
        /// Transaction id.
        transaction_id: f64,
        /// True to pause, false to resume.
        pause: bool,
        /// The stream time at which the client paused, in milliseconds.
        millis: f64,
    },
    /// `seek` (meaningless for live streams; kept so it can be refused).
    Seek {
        /// Transaction id.
        transaction_id: f64,
        /// Target position in milliseconds.
        millis: f64,
    },
    /// `receiveAudio`: whether to send this stream's audio.
    ReceiveAudio(bool),
    /// `receiveVideo`: whether to send this stream's video.
    ReceiveVideo(bool),
    /// `setPeerInfo`: the client's addresses, for P2P introduction.
    SetPeerInfo {
        /// Address strings as sent.
        addresses: Vec<String>,
    },
    /// TC `relay`: deliver `args` to another connection as `onRelay`.
    Relay {
        /// The recipient's connection ID.
        target: String,
        /// Arguments to forward as given.
        args: Vec<Value>,
    },
    /// TC `broadcast`: deliver `args` to every client of the sender's App.
    Broadcast {
        /// Arguments to forward as given.
        args: Vec<Value>,
    },
    /// TC `watch`: be told with `onDisconnected` when `target` disconnects.
    Watch {
        /// The connection ID to watch.
        target: String,
    },
    /// `_checkbw` (FMLE and some players; answered with a result).
    CheckBw {
        /// Transaction id.
        transaction_id: f64,
    },
    /// `getStreamLength` (sent by some players before `play`).
    GetStreamLength {
        /// Transaction id.
        transaction_id: f64,
        /// The stream name.
        name: String,
    },
    /// `_result`: a successful reply.
    Result {
        /// The transaction being answered.
        transaction_id: f64,
        /// The command object (properties for `connect`, else null).
        command_object: Value,
        /// The reply values (info object, new stream id...).
        args: Vec<Value>,
    },
    /// `_error`: a failed reply.
    Error {
        /// The transaction being answered.
        transaction_id: f64,
        /// Usually null.
        command_object: Value,
        /// Usually one info object with `level`, `code`, `description`.
        args: Vec<Value>,
    },
    /// `onStatus`: a NetStream / NetConnection status event.
    OnStatus {
        /// The info object (`level`, `code`, `description`, ...).
        info: Value,
    },
    /// Any other command, kept whole.
    Other(GenericCommand),
}

/// A command in its wire shape: name, transaction id, command object and
/// arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct GenericCommand {
    /// The command name.
    pub name: String,
    /// The transaction id; 0 means the sender expects no reply.
    pub transaction_id: f64,
    /// The command object (null for most commands).
    pub command_object: Value,
    /// The remaining arguments.
    pub args: Vec<Value>,
}

/// The AMF values of a command body, in wire order.
struct CommandParts {
    name: String,
    transaction_id: f64,
    command_object: Value,
    args: Vec<Value>,
}

impl CommandParts {
    fn arg(&self, i: usize) -> Option<&Value> {
        self.args.get(i)
    }

    fn string_arg(&self, i: usize, name: &'static str) -> Result<String, MessageError> {
        self.arg(i)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(MessageError::BadCommand {
                name,
                reason: "expected a string stream name",
            })
    }

    fn number_arg(&self, i: usize) -> Option<f64> {
        self.arg(i).and_then(Value::as_f64)
    }

    /// Flash sends booleans; some tools send 0/1 numbers.
    fn flag_arg(&self, i: usize) -> Option<bool> {
        let v = self.arg(i)?;
        v.as_bool().or_else(|| v.as_f64().map(|n| n != 0.0))
    }
}

pub(super) fn decode_command(p: &[u8], max_depth: usize) -> Result<Command, MessageError> {
    let amf = |source| MessageError::Amf {
        context: "command",
        source,
    };
    let mut d = amf0::Decoder::with_max_depth(p, max_depth);
    let name = d
        .decode()
        .map_err(amf)?
        .as_str()
        .map(str::to_owned)
        .ok_or(MessageError::MissingName("command"))?;
    // Some encoders stop after the name (or after the transaction id) for
    // argument-less commands; missing values read as 0 and null.
    let transaction_id = if d.is_empty() {
        0.0
    } else {
        d.decode().map_err(amf)?.as_f64().unwrap_or(0.0)
    };
    let command_object = if d.is_empty() {
        Value::Null
    } else {
        d.decode().map_err(amf)?
    };
    let mut args = Vec::new();
    while !d.is_empty() {
        args.push(d.decode().map_err(amf)?);
    }
    CommandParts {
        name,
        transaction_id,
        command_object,
        args,
    }
    .into_command()
}

impl CommandParts {
    fn into_command(self) -> Result<Command, MessageError> {
        let tid = self.transaction_id;
        Ok(match self.name.as_str() {
            "connect" => {
                if !self.command_object.is_object() {
                    return Err(MessageError::BadCommand {
                        name: "connect",
                        reason: "the command object must be an object",
                    });
                }
                Command::Connect(Connect {
                    transaction_id: tid,
                    properties: self.command_object,
                    args: self.args,
                })
            }
            "createStream" => Command::CreateStream {
                transaction_id: tid,
            },
            "deleteStream" => match self.number_arg(0) {
                Some(stream_id) => Command::DeleteStream {
                    transaction_id: tid,
                    stream_id,
                },
                // GStreamer's rtmp2sink names the stream (a string) instead
                // of giving its id, right after its FCUnpublish. Kept as a
                // generic command so it cannot fail the connection at the
                // end of every GStreamer publish.
                None => self.generic(),
            },
            "closeStream" => Command::CloseStream {
                transaction_id: tid,
            },
            "releaseStream" => Command::ReleaseStream {
                transaction_id: tid,
                name: self.string_arg(0, "releaseStream")?,
            },
            "FCPublish" => Command::FcPublish {
                transaction_id: tid,
                name: self.string_arg(0, "FCPublish")?,
            },
            "FCUnpublish" => Command::FcUnpublish {
                transaction_id: tid,
                name: self.string_arg(0, "FCUnpublish")?,
            },
            "publish" => {
                let name = match self.arg(0) {
                    Some(v) if v.as_str().is_some() => v.as_str().map(str::to_owned),
                    Some(v) if v.is_null() || v.as_bool() == Some(false) => None,
                    _ => {
                        return Err(MessageError::BadCommand {
                            name: "publish",
                            reason: "expected a string stream name or false",
                        })
                    }
                };
                Command::Publish {
                    transaction_id: tid,
                    name,
                    kind: PublishKind::parse(self.arg(1).and_then(Value::as_str)),
                }
            }
            "play" => {
                let name = self.string_arg(0, "play")?;
                // TC: an object right after the name carries real-time
                // options; otherwise the classic start/duration/reset.
                let (options, rest) = match self.arg(1) {
                    Some(v) if v.is_object() => (Some(v.clone()), 2),
                    _ => (None, 1),
                };
                Command::Play(Play {
                    transaction_id: tid,
                    name,
                    start: self.number_arg(rest).unwrap_or(-2.0),
                    duration: self.number_arg(rest + 1).unwrap_or(-1.0),
                    reset: self.flag_arg(rest + 2).unwrap_or(true),
                    options,
                })
            }
            "pause" | "pauseRaw" => Command::Pause {
                transaction_id: tid,
                pause: self.flag_arg(0).ok_or(MessageError::BadCommand {
                    name: "pause",
                    reason: "expected a boolean pause flag",
                })?,
                millis: self.number_arg(1).unwrap_or(0.0),
            },
            "seek" => Command::Seek {
                transaction_id: tid,
                millis: self.number_arg(0).unwrap_or(0.0),
            },
            "receiveAudio" => Command::ReceiveAudio(self.flag_arg(0).unwrap_or(true)),
            "receiveVideo" => Command::ReceiveVideo(self.flag_arg(0).unwrap_or(true)),
            "setPeerInfo" => Command::SetPeerInfo {
                addresses: self
                    .args
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            },
            "relay" => {
                let mut args = self.args;
                let target = match args.first().and_then(Value::as_str) {
                    Some(t) => t.to_owned(),
                    None => {
                        return Err(MessageError::BadCommand {
                            name: "relay",
                            reason: "expected the recipient's connection ID",
                        })
                    }
                };
                args.remove(0);
                Command::Relay { target, args }
            }
            "broadcast" => Command::Broadcast { args: self.args },
            "watch" => Command::Watch {
                target: self.string_arg(0, "watch")?,
            },
            "_checkbw" => Command::CheckBw {
                transaction_id: tid,
            },
            "getStreamLength" => Command::GetStreamLength {
                transaction_id: tid,
                name: self.string_arg(0, "getStreamLength")?,
            },
            "_result" => Command::Result {
                transaction_id: tid,
                command_object: self.command_object,
                args: self.args,
            },
            "_error" => Command::Error {
                transaction_id: tid,
                command_object: self.command_object,
                args: self.args,
            },
            "onStatus" => match self.args.into_iter().next() {
                Some(info) => Command::OnStatus { info },
                None => {
                    return Err(MessageError::BadCommand {
                        name: "onStatus",
                        reason: "expected an info object",
                    })
                }
            },
            _ => self.generic(),
        })
    }

    fn generic(self) -> Command {
        Command::Other(GenericCommand {
            name: self.name,
            transaction_id: self.transaction_id,
            command_object: self.command_object,
            args: self.args,
        })
    }
}

impl Command {
    /// The command name as it goes on the wire.
    pub fn name(&self) -> &str {
        match self {
            Command::Connect(_) => "connect",
            Command::CreateStream { .. } => "createStream",
            Command::DeleteStream { .. } => "deleteStream",
            Command::CloseStream { .. } => "closeStream",
            Command::ReleaseStream { .. } => "releaseStream",
            Command::FcPublish { .. } => "FCPublish",
            Command::FcUnpublish { .. } => "FCUnpublish",
            Command::Publish { .. } => "publish",
            Command::Play(_) => "play",
            Command::Pause { .. } => "pause",
            Command::Seek { .. } => "seek",
            Command::ReceiveAudio(_) => "receiveAudio",
            Command::ReceiveVideo(_) => "receiveVideo",
            Command::SetPeerInfo { .. } => "setPeerInfo",
            Command::Relay { .. } => "relay",
            Command::Broadcast { .. } => "broadcast",
            Command::Watch { .. } => "watch",
            Command::CheckBw { .. } => "_checkbw",
            Command::GetStreamLength { .. } => "getStreamLength",
            Command::Result { .. } => "_result",
            Command::Error { .. } => "_error",
            Command::OnStatus { .. } => "onStatus",
            Command::Other(g) => &g.name,
        }
    }

    /// The transaction id a reply must echo; 0 for commands that expect none.
    pub fn transaction_id(&self) -> f64 {
        match self {
            Command::Connect(c) => c.transaction_id,
            Command::Play(p) => p.transaction_id,
            Command::CreateStream { transaction_id }
            | Command::DeleteStream { transaction_id, .. }
            | Command::CloseStream { transaction_id }
            | Command::ReleaseStream { transaction_id, .. }
            | Command::FcPublish { transaction_id, .. }
            | Command::FcUnpublish { transaction_id, .. }
            | Command::Publish { transaction_id, .. }
            | Command::Pause { transaction_id, .. }
            | Command::Seek { transaction_id, .. }
            | Command::CheckBw { transaction_id }
            | Command::GetStreamLength { transaction_id, .. }
            | Command::Result { transaction_id, .. }
            | Command::Error { transaction_id, .. } => *transaction_id,
            Command::Other(g) => g.transaction_id,
            Command::ReceiveAudio(_)
            | Command::ReceiveVideo(_)
            | Command::SetPeerInfo { .. }
            | Command::Relay { .. }
            | Command::Broadcast { .. }
            | Command::Watch { .. }
            | Command::OnStatus { .. } => 0.0,
        }
    }

    /// The command in its wire shape (name, transaction id, command object,
    /// arguments), for encoding.
    pub(super) fn wire_parts(&self) -> (std::borrow::Cow<'_, str>, f64, Value, Vec<Value>) {
        use std::borrow::Cow;
        let tid = self.transaction_id();
        let name = Cow::Borrowed(self.name());
        let s = |v: &str| Value::String(v.to_owned());
        let (object, args) = match self {
            Command::Connect(c) => (c.properties.clone(), c.args.clone()),
            Command::CreateStream { .. }
            | Command::CloseStream { .. }
            | Command::CheckBw { .. } => (Value::Null, vec![]),
            Command::DeleteStream { stream_id, .. } => {
                (Value::Null, vec![Value::Number(*stream_id)])
            }
            Command::ReleaseStream { name, .. }
            | Command::FcPublish { name, .. }
            | Command::FcUnpublish { name, .. }
            | Command::GetStreamLength { name, .. } => (Value::Null, vec![s(name)]),
            Command::Publish { name, kind, .. } => (
                Value::Null,
                vec![
                    name.as_deref().map_or(Value::Boolean(false), s),
                    s(kind.as_str()),
                ],
            ),
            Command::Play(p) => {
                let mut args = vec![s(&p.name)];
                if let Some(o) = &p.options {
                    args.push(o.clone());
                }
                args.extend([
                    Value::Number(p.start),
                    Value::Number(p.duration),
                    Value::Boolean(p.reset),
                ]);
                (Value::Null, args)
            }
            Command::Pause { pause, millis, .. } => (
                Value::Null,
                vec![Value::Boolean(*pause), Value::Number(*millis)],
            ),
            Command::Seek { millis, .. } => (Value::Null, vec![Value::Number(*millis)]),
            Command::ReceiveAudio(b) | Command::ReceiveVideo(b) => {
                (Value::Null, vec![Value::Boolean(*b)])
            }
            Command::SetPeerInfo { addresses } => {
                (Value::Null, addresses.iter().map(|a| s(a)).collect())
            }
            Command::Relay { target, args } => {
                let mut all = Vec::with_capacity(args.len() + 1);
                all.push(s(target));
                all.extend(args.iter().cloned());
                (Value::Null, all)
            }
            Command::Broadcast { args } => (Value::Null, args.clone()),
            Command::Watch { target } => (Value::Null, vec![s(target)]),
            Command::Result {
                command_object,
                args,
                ..
            }
            | Command::Error {
                command_object,
                args,
                ..
            } => (command_object.clone(), args.clone()),
            Command::OnStatus { info } => (Value::Null, vec![info.clone()]),
            Command::Other(g) => (g.command_object.clone(), g.args.clone()),
        };
        (name, tid, object, args)
    }
}
