//! Behaviour of the TC extensions of a [`Session`]: token authentication,
//! `serverInfo`, `setPeerInfo`, and the relay / broadcast / watch commands
//! as the client and the broker see them.

use bytes::Bytes;

use super::tc::{MAX_PEER_ADDRESSES, MAX_PEER_ADDRESS_LEN};
use super::test_client::{connect_command, Pair, Received};
use super::*;
use crate::amf::amf0;
use crate::auth::AuthKeys;
use crate::message::{Connect, GenericCommand};

const APP: &str = "live/12345";
const APP_TOKEN: &str = "df41d9cbe74f325250d6e0346dcd9e95fb837892f4a927c27cecf2664d639786";
const USER_TOKEN: &str = "8bddf00ca7e31862fe17872c463df61eafde6518f565cb3def0e82a3b2d639d7";

fn with_keys() -> SessionConfig {
    SessionConfig {
        auth_keys: AuthKeys::new(["supersecret"]),
        ..SessionConfig::default()
    }
}

/// The README's `connect` to `live/12345`, with `args` after the object.
fn connect_with_args(args: Vec<Value>) -> Command {
    Command::Connect(Connect {
        transaction_id: 1.0,
        properties: Value::object([
            ("app", Value::from(APP)),
            ("objectEncoding", Value::Number(0.0)),
            ("tcUrl", Value::from("rtmp://localhost/live/12345")),
        ]),
        args,
    })
}

/// Connects with `args` and returns the reply to the connect (the last
/// message received) and everything received.
fn connect(p: &mut Pair, args: Vec<Value>) -> Received {
    p.command(0, connect_with_args(args));
    let got = p.receive();
    got.last().cloned().expect("a reply to connect")
}

fn other_args(r: &Received) -> (&str, f64, &Value, &[Value]) {
    match &r.msg {
        Message::Command {
            command: Command::Other(g),
            ..
        } => (&g.name, g.transaction_id, &g.command_object, &g.args),
        other => panic!("expected a generic command, got {other:?}"),
    }
}

fn command(name: &str, args: Vec<Value>) -> Command {
    Command::Other(GenericCommand {
        name: name.to_owned(),
        transaction_id: 0.0,
        command_object: Value::Null,
        args,
    })
}

// ---- authentication ---------------------------------------------------------

#[test]
fn connect_without_a_token_is_rejected_when_keys_are_set() {
    let mut p = Pair::handshaken_with(with_keys());
    let reply = connect(&mut p, vec![]);
    assert_eq!(reply.command(), Some("_error"));
    assert_eq!(reply.code(), Some("NetConnection.Connect.Rejected"));
    assert!(reply
        .info_str("description")
        .is_some_and(|d| d.contains("token")));
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
    assert!(p.session.is_closed());
}

#[test]
fn connect_with_the_app_wide_token_succeeds() {
    let mut p = Pair::handshaken_with(with_keys());
    let reply = connect(&mut p, vec![Value::from(APP_TOKEN)]);
    assert_eq!(reply.code(), Some("NetConnection.Connect.Success"));
    assert_eq!(p.session.app(), Some(APP));
    assert_eq!(p.session.user(), None);
}

#[test]
fn connect_with_a_user_name_and_user_token_succeeds() {
    let mut p = Pair::handshaken_with(with_keys());
    let reply = connect(&mut p, vec![Value::from("mike"), Value::from(USER_TOKEN)]);
    assert_eq!(reply.code(), Some("NetConnection.Connect.Success"));
    assert_eq!(p.session.user(), Some("mike"));
}

#[test]
fn connect_with_a_wrong_token_is_rejected_without_echoing_it() {
    let mut p = Pair::handshaken_with(with_keys());
    let wrong = USER_TOKEN; // a user token given as an App-wide token
    let reply = connect(&mut p, vec![Value::from(wrong)]);
    assert_eq!(reply.command(), Some("_error"));
    assert_eq!(reply.code(), Some("NetConnection.Connect.Rejected"));
    let description = reply.info_str("description").expect("a description");
    assert!(!description.contains(wrong), "{description}");
    assert!(matches!(
        p.session.error(),
        Some(SessionError::ConnectRejected(why)) if !why.contains(wrong)
    ));
    assert_eq!(p.take_events(), [SessionEvent::Closed]);
}

#[test]
fn connect_with_the_app_token_of_another_app_is_rejected() {
    let mut p = Pair::handshaken_with(with_keys());
    p.command(
        0,
        Command::Connect(Connect {
            transaction_id: 1.0,
            properties: Value::object([("app", Value::from("live/99999"))]),
            args: vec![Value::from(APP_TOKEN)],
        }),
    );
    let got = p.receive();
    assert_eq!(
        got.last().and_then(Received::code),
        Some("NetConnection.Connect.Rejected")
    );
}

#[test]
fn connect_arguments_are_ignored_when_no_key_is_set() {
    let mut p = Pair::handshaken();
    let reply = connect(&mut p, vec![Value::from("whatever"), Value::Number(3.0)]);
    assert_eq!(reply.code(), Some("NetConnection.Connect.Success"));
}

// ---- connect result -----------------------------------------------------------

#[test]
fn server_info_is_sent_in_the_connect_result() {
    let mut p = Pair::handshaken_with(SessionConfig {
        server_info: Some("some info 12345".to_owned()),
        ..SessionConfig::default()
    });
    let reply = connect(&mut p, vec![]);
    assert_eq!(reply.info_str("serverInfo"), Some("some info 12345"));
    assert_eq!(
        reply.info_str("connectionID"),
        Some(p.session.connection_id())
    );
}

#[test]
fn connect_result_has_no_server_info_unless_configured() {
    let mut p = Pair::handshaken();
    p.command(0, connect_command("live", 0.0));
    let got = p.receive();
    let reply = got.last().expect("a reply");
    assert_eq!(reply.code(), Some("NetConnection.Connect.Success"));
    assert!(reply.info().and_then(|i| i.get("serverInfo")).is_none());
}

// ---- setPeerInfo --------------------------------------------------------------

#[test]
fn set_peer_info_is_stored_and_not_answered() {
    let mut p = Pair::connected();
    p.command(
        0,
        Command::SetPeerInfo {
            addresses: vec!["192.0.2.1:1935".to_owned(), "[2001:db8::1]:1935".to_owned()],
        },
    );
    assert!(p.receive().is_empty());
    assert_eq!(
        p.session.peer_info(),
        ["192.0.2.1:1935", "[2001:db8::1]:1935"]
    );
    assert!(p.session.error().is_none());
}

#[test]
fn set_peer_info_keeps_a_bounded_number_of_bounded_addresses() {
    let mut p = Pair::connected();
    let mut addresses = vec!["x".repeat(MAX_PEER_ADDRESS_LEN + 1)];
    addresses.extend((0..100).map(|i| format!("10.0.0.{i}:1935")));
    p.command(0, Command::SetPeerInfo { addresses });
    let kept = p.session.peer_info();
    assert_eq!(kept.len(), MAX_PEER_ADDRESSES);
    assert_eq!(kept[0], "10.0.0.0:1935");
    assert!(kept.iter().all(|a| a.len() <= MAX_PEER_ADDRESS_LEN));
}

#[test]
fn set_peer_info_replaces_the_previous_addresses() {
    let mut p = Pair::connected();
    for a in ["192.0.2.1:1", "192.0.2.2:2"] {
        p.command(
            0,
            Command::SetPeerInfo {
                addresses: vec![a.to_owned()],
            },
        );
    }
    assert_eq!(p.session.peer_info(), ["192.0.2.2:2"]);
}

// ---- relay / broadcast / watch -------------------------------------------------

/// The values of an encoded `onRelay` body.
fn decode_body(body: &Bytes) -> Vec<Value> {
    let mut d = amf0::Decoder::new(body);
    let mut values = Vec::new();
    while !d.is_empty() {
        values.push(d.decode().expect("body decodes"));
    }
    values
}

#[test]
fn relay_hands_the_broker_an_on_relay_from_this_connection() {
    let mut p = Pair::connected();
    let me = p.session.connection_id().to_owned();
    p.command(
        0,
        command(
            "relay",
            vec![
                Value::from("1f9a5f47"),
                Value::from("this is a relay message"),
                Value::Number(5.0),
            ],
        ),
    );
    let events = p.take_events();
    let [SessionEvent::Relay { target, body }] = events.as_slice() else {
        panic!("expected one relay event, got {events:?}");
    };
    assert_eq!(target, "1f9a5f47");
    assert_eq!(
        decode_body(body),
        [
            Value::from("onRelay"),
            Value::Number(0.0),
            Value::Null,
            Value::from(me),
            Value::from("this is a relay message"),
            Value::Number(5.0),
        ]
    );
    assert!(p.receive().is_empty(), "relay is not answered");
}

#[test]
fn broadcast_hands_the_broker_an_on_relay_from_this_connection() {
    let mut p = Pair::connected();
    let me = p.session.connection_id().to_owned();
    p.command(
        0,
        command(
            "broadcast",
            vec![Value::from("this is a broadcast"), Value::from("foo")],
        ),
    );
    let events = p.take_events();
    let [SessionEvent::Broadcast { body }] = events.as_slice() else {
        panic!("expected one broadcast event, got {events:?}");
    };
    assert_eq!(
        decode_body(body),
        [
            Value::from("onRelay"),
            Value::Number(0.0),
            Value::Null,
            Value::from(me),
            Value::from("this is a broadcast"),
            Value::from("foo"),
        ]
    );
}

#[test]
fn watch_hands_the_broker_the_connection_id() {
    let mut p = Pair::connected();
    p.command(0, command("watch", vec![Value::from("1f9a5f47")]));
    assert_eq!(
        p.take_events(),
        [SessionEvent::Watch {
            target: "1f9a5f47".to_owned()
        }]
    );
}

#[test]
fn relayed_message_reaches_the_client_as_on_relay_on_stream_zero() {
    let mut p = Pair::connected();
    let mut sender = Pair::connected();
    sender.command(
        0,
        command("relay", vec![Value::from("x"), Value::from("hello")]),
    );
    let Some(SessionEvent::Relay { body, .. }) = sender.take_events().pop() else {
        panic!("sender emitted no relay");
    };
    let now = p.now;
    p.session
        .handle_broker_event(now, BrokerEvent::Relay { body });
    let got = p.receive();
    let [r] = got.as_slice() else {
        panic!("one message expected, got {got:?}");
    };
    assert_eq!(r.raw.stream_id, 0);
    assert_eq!(r.raw.type_id, type_id::COMMAND_AMF0);
    let (name, tid, object, args) = other_args(r);
    assert_eq!((name, tid, object), ("onRelay", 0.0, &Value::Null));
    assert_eq!(
        args,
        [
            Value::from(sender.session.connection_id()),
            Value::from("hello")
        ]
    );
}

#[test]
fn disconnected_watch_reaches_the_client_as_on_disconnected() {
    let mut p = Pair::connected();
    let now = p.now;
    p.session.handle_broker_event(
        now,
        BrokerEvent::Disconnected {
            connection_id: "1f9a5f47".to_owned(),
        },
    );
    let got = p.receive();
    let [r] = got.as_slice() else {
        panic!("one message expected, got {got:?}");
    };
    assert_eq!(r.raw.stream_id, 0);
    let (name, tid, object, args) = other_args(r);
    assert_eq!((name, tid, object), ("onDisconnected", 0.0, &Value::Null));
    assert_eq!(args, [Value::from("1f9a5f47")]);
}

#[test]
fn relays_to_a_client_that_does_not_read_are_dropped_not_fatal() {
    let mut p = Pair::connected();
    let body = Bytes::from(vec![0u8; 64 * 1024]);
    let now = p.now;
    for _ in 0..64 {
        p.session
            .handle_broker_event(now, BrokerEvent::Relay { body: body.clone() });
    }
    assert!(p.session.error().is_none(), "{:?}", p.session.error());
    assert!(p.session.control_bytes <= MAX_CONTROL_BYTES / 2);
}

#[test]
fn a_broadcast_flood_closes_the_sender() {
    // Each broadcast costs the broker an entry per member of the App; a
    // member sending them as fast as it can write must be cut off.
    let mut p = Pair::connected();
    let mut sent = 0;
    for _ in 0..10_000 {
        if p.session.error().is_some() {
            break;
        }
        p.command(0, command("broadcast", vec![Value::from("spam")]));
        sent += 1;
    }
    let events = p.take_events();
    let broadcasts = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Broadcast { .. }))
        .count();
    assert!(
        matches!(p.session.error(), Some(SessionError::Flood(_))),
        "after {sent} broadcasts: {:?}",
        p.session.error()
    );
    assert!(
        broadcasts <= SessionConfig::default().max_relays_per_second as usize,
        "{broadcasts} broadcasts reached the broker"
    );
}

#[test]
fn broadcasts_within_the_rate_keep_the_session() {
    let mut p = Pair::connected();
    let rate = SessionConfig::default().max_relays_per_second;
    for _ in 0..3 {
        for _ in 0..rate {
            p.command(0, command("broadcast", vec![Value::from("chat")]));
        }
        p.advance(Duration::from_secs(1));
        p.command(0, other_cmd_ack());
    }
    assert!(p.session.error().is_none(), "{:?}", p.session.error());
}

/// Any command that refreshes the session's notion of "now".
fn other_cmd_ack() -> Command {
    command("setPeerInfo", vec![])
}
