//! The TC extensions of the dialogue: token authentication at `connect`,
//! `setPeerInfo`, and the messaging commands `relay`, `broadcast` and
//! `watch`, whose routing between connections is the broker's.
//!
//! Relayed messages are encoded once, by the sender's session: the broker
//! hands the same `Bytes` to one recipient (`relay`) or to every member of
//! an App (`broadcast`), and each recipient queues it as is.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    status_info, Session, SessionError, StreamState, Timer, CSID_COMMAND, MAX_CONTROL_BYTES,
};
use crate::auth::{AuthError, UserProperties};
use crate::chunk::RawMessage;
use crate::event::SessionEvent;
use crate::message::{type_id, Command, Encoding, GenericCommand, Message, Value};
use crate::time::MediaTime;

/// Most addresses kept from `setPeerInfo` (RTMFP clients send a handful:
/// one per interface and address family).
pub(super) const MAX_PEER_ADDRESSES: usize = 16;
/// Longest address string kept from `setPeerInfo`; longer ones are skipped.
pub(super) const MAX_PEER_ADDRESS_LEN: usize = 256;
/// Relayed messages are dropped, not queued, while more than this many
/// bytes of replies wait for the peer: relays are unsolicited, and another
/// client's flood must not get a slow reader closed for
/// [`SessionError::SlowPeer`] (which guards what a client asked for).
const RELAY_QUEUE_LIMIT: usize = MAX_CONTROL_BYTES / 2;

impl Session {
    /// The addresses the client gave with its last `setPeerInfo` (at most
    /// 16, each at most 256 bytes), for P2P introduction by an embedder.
    pub fn peer_info(&self) -> &[String] {
        &self.peer_info
    }

    /// The user name of a `connect` authenticated with a user token.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Checks the `connect` token of `app` against the configured keys. On
    /// failure the client gets `_error` `NetConnection.Connect.Rejected`
    /// (the description says why, never the token) and the session closes.
    /// Returns whether the connect may go on.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        encoding: Encoding,
        transaction_id: f64,
        app: &str,
        args: &[Value],
    ) -> bool {
        match self.config.auth_keys.check(app, args) {
            Ok(user) => {
                let props = user.as_deref().map(UserProperties::parse);
                self.user = user;
                match props {
                    Some(props) => {
                        self.apply_user_properties(now, encoding, transaction_id, &props)
                    }
                    None => true,
                }
            }
            Err(e) => {
                let why = match e {
                    AuthError::MissingToken => "missing token",
                    _ => "bad token",
                };
                tracing::info!(app = %app, why, "connect refused: authentication");
                self.reject_connect(
                    now,
                    encoding,
                    transaction_id,
                    &e.to_string(),
                    format!("authentication failed ({why})"),
                );
                false
            }
        }
    }

    /// The settings of an authenticated user name (TC's user-specific
    /// properties): time bounds are checked now, the rest kept for later.
    /// Returns whether the connect may go on.
    fn apply_user_properties(
        &mut self,
        now: Instant,
        encoding: Encoding,
        transaction_id: f64,
        props: &UserProperties,
    ) -> bool {
        let unix = self.unix_now(now);
        let refuse = |s: &mut Self, description: &str| {
            tracing::info!(why = description, "connect refused: token bounds");
            s.reject_connect(
                now,
                encoding,
                transaction_id,
                description,
                description.to_owned(),
            );
            false
        };
        if props.needs_clock() && unix.is_none() {
            return refuse(
                self,
                "the token is bounded in time and the server has no clock",
            );
        }
        let unix = unix.unwrap_or(0.0);
        if props.not_before.is_some_and(|t| unix < t) {
            return refuse(self, "the token is not valid yet");
        }
        if props.use_by.is_some_and(|t| unix > t) || props.expires_at.is_some_and(|t| unix >= t) {
            return refuse(self, "the token has expired");
        }
        if let Some(max) = props.max_priority {
            self.config.max_publish_priority = max;
        }
        self.max_publishes = props.max_publishes;
        let by_exp = props
            .expires_at
            .and_then(|t| Duration::try_from_secs_f64(t - unix).ok());
        let by_exi = props
            .expires_in
            .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok());
        let expiry = [by_exp, by_exi]
            .into_iter()
            .flatten()
            .min()
            .and_then(|d| now.checked_add(d));
        self.timers.set(Timer::Login, expiry);
        true
    }

    /// Whether the token's `pub` allows one more publish on this
    /// connection (counting those waiting for their answer).
    pub(super) fn may_publish_more(&self) -> bool {
        let Some(max) = self.max_publishes else {
            return true;
        };
        let live = self
            .streams
            .values()
            .filter(|s| {
                matches!(
                    s.state,
                    StreamState::PublishPending { .. } | StreamState::Publishing { .. }
                )
            })
            .count();
        live < max as usize
    }

    /// Answers `connect` with `_error` `NetConnection.Connect.Rejected`
    /// saying `description`, then closes with `reason`.
    pub(super) fn reject_connect(
        &mut self,
        now: Instant,
        encoding: Encoding,
        transaction_id: f64,
        description: &str,
        reason: String,
    ) {
        let info = status_info(
            "error",
            "NetConnection.Connect.Rejected",
            description,
            vec![],
        );
        self.send_command(
            0,
            encoding,
            Command::Error {
                transaction_id,
                command_object: Value::Null,
                args: vec![info],
            },
        );
        self.fail(now, SessionError::ConnectRejected(reason));
    }

    /// `setPeerInfo`: replaces the stored addresses, bounded.
    pub(super) fn set_peer_info(&mut self, addresses: Vec<String>) {
        let given = addresses.len();
        self.peer_info = addresses
            .into_iter()
            .filter(|a| a.len() <= MAX_PEER_ADDRESS_LEN)
            .take(MAX_PEER_ADDRESSES)
            .collect();
        tracing::debug!(given, kept = self.peer_info.len(), "setPeerInfo");
    }

    /// `relay` (to `Some(target)`) or `broadcast` (`None`): encodes the
    /// `onRelay` command the recipients get and hands it to the broker.
    pub(super) fn relay(&mut self, target: Option<String>, args: Vec<Value>) {
        if self.error.is_some() {
            return;
        }
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Value::from(self.connection_id.as_str()));
        all.extend(args);
        let msg = Message::Command {
            encoding: Encoding::Amf0,
            command: Command::Other(GenericCommand {
                name: "onRelay".to_owned(),
                transaction_id: 0.0,
                command_object: Value::Null,
                args: all,
            }),
        };
        let body = match msg.to_raw(CSID_COMMAND, MediaTime::ZERO, 0) {
            Ok(raw) => raw.payload,
            // Only values that cannot be re-encoded (an AMF reference to
            // something the typed command dropped) get here.
            Err(e) => {
                tracing::debug!(%e, "relay arguments could not be re-encoded, dropped");
                return;
            }
        };
        // Only input brings a relay, and input sets `last_input` to now.
        let now = self.last_input;
        let (max_count, max_bytes) = (
            self.config.max_relays_per_second,
            self.config.max_relay_bytes_per_second,
        );
        if let Err(why) = self.relay_meter.take(now, body.len(), max_count, max_bytes) {
            self.fail(now, SessionError::Flood(why));
            return;
        }
        let event = match target {
            Some(target) => SessionEvent::Relay { target, body },
            None => SessionEvent::Broadcast { body },
        };
        self.events.push_back(event);
    }

    /// `watch`: the broker answers with `onDisconnected` when due.
    pub(super) fn watch(&mut self, target: String) {
        self.events.push_back(SessionEvent::Watch { target });
    }

    /// A relayed or broadcast `onRelay` for this client.
    pub(super) fn deliver_relay(&mut self, body: Bytes) {
        if self.control_bytes + body.len() > RELAY_QUEUE_LIMIT {
            tracing::debug!(
                len = body.len(),
                queued = self.control_bytes,
                "peer is not reading: relayed message dropped"
            );
            return;
        }
        self.push(super::Outgoing::Message(RawMessage {
            csid: CSID_COMMAND,
            timestamp: MediaTime::ZERO,
            type_id: type_id::COMMAND_AMF0,
            stream_id: 0,
            payload: body,
        }));
    }

    /// A watched connection is gone: `onDisconnected(0, null, id)`.
    pub(super) fn notify_disconnected(&mut self, connection_id: String) {
        self.send_command(
            0,
            self.encoding,
            Command::Other(GenericCommand {
                name: "onDisconnected".to_owned(),
                transaction_id: 0.0,
                command_object: Value::Null,
                args: vec![Value::from(connection_id)],
            }),
        );
    }
}

/// Counts a connection's `relay`/`broadcast` commands in one-second
/// windows, for [`SessionConfig::max_relays_per_second`](super::SessionConfig).
#[derive(Debug, Default)]
pub(super) struct RelayMeter {
    /// When the current window started, and what it counted so far.
    window: Option<(Instant, u32, usize)>,
}

impl RelayMeter {
    /// Counts one relay of `len` bytes at `now`, or says which bound the
    /// window would pass.
    fn take(
        &mut self,
        now: Instant,
        len: usize,
        max_count: u32,
        max_bytes: usize,
    ) -> Result<(), String> {
        let (start, count, bytes) = match self.window {
            Some((start, count, bytes))
                if now.saturating_duration_since(start) < Duration::from_secs(1) =>
            {
                (start, count, bytes)
            }
            _ => (now, 0, 0),
        };
        let (count, bytes) = (count + 1, bytes.saturating_add(len));
        if count > max_count {
            return Err(format!(
                "more than {max_count} relay/broadcast commands in one second"
            ));
        }
        if bytes > max_bytes {
            return Err(format!(
                "more than {max_bytes} bytes of relay/broadcast in one second"
            ));
        }
        self.window = Some((start, count, bytes));
        Ok(())
    }
}
