//! TC messaging between clients through a whole simulated server: `relay`,
//! `broadcast` and `watch`, checked by the exact `onRelay` and
//! `onDisconnected` commands each client receives (README, "Relaying and
//! Broadcasting Messages" and "Watching For Client Disconnections").

use tincan_core::message::{Command, Encoding, GenericCommand, Message, Value};
use tincan_tests::sim::{ClientId, Received, Sim};

/// Connects a new client to `app`; returns it and its connection ID.
fn join(sim: &mut Sim, app: &str) -> (ClientId, String) {
    let id = sim.add_client();
    let reply = sim.connect(id, app);
    let conn = reply.info_str("connectionID").expect("a connectionID");
    (id, conn)
}

/// A transaction-less TC command on stream 0, as the README writes them.
fn send(sim: &mut Sim, from: ClientId, name: &str, args: Vec<Value>) {
    sim.client_mut(from).command(
        0,
        Command::Other(GenericCommand {
            name: name.to_owned(),
            transaction_id: 0.0,
            command_object: Value::Null,
            args,
        }),
    );
    sim.run();
}

/// Every command named `name` the client received: its message stream id,
/// message type, transaction id, command object and arguments.
fn commands(sim: &Sim, id: ClientId, name: &str) -> Vec<(u32, Vec<Value>)> {
    sim.client(id)
        .received()
        .iter()
        .filter_map(|r: &Received| match &r.message {
            Message::Command {
                command: Command::Other(g),
                ..
            } if g.name == name => {
                assert_eq!(g.transaction_id, 0.0, "{name} is transaction-less");
                assert_eq!(g.command_object, Value::Null, "{name} has a null object");
                Some((r.stream_id, g.args.clone()))
            }
            _ => None,
        })
        .collect()
}

fn strings(values: &[&str]) -> Vec<Value> {
    values.iter().map(|s| Value::from(*s)).collect()
}

#[test]
fn relay_delivers_on_relay_with_the_sender_id_on_stream_zero() {
    let mut sim = Sim::new();
    let (a, a_id) = join(&mut sim, "live");
    let (b, b_id) = join(&mut sim, "live");
    send(
        &mut sim,
        a,
        "relay",
        vec![
            Value::from(b_id),
            Value::from("this is a relay message"),
            Value::Number(5.0),
        ],
    );
    assert_eq!(
        commands(&sim, b, "onRelay"),
        [(
            0,
            vec![
                Value::from(a_id),
                Value::from("this is a relay message"),
                Value::Number(5.0)
            ]
        )]
    );
    assert!(commands(&sim, a, "onRelay").is_empty());
}

#[test]
fn relay_reaches_a_client_of_another_app() {
    let mut sim = Sim::new();
    let (a, a_id) = join(&mut sim, "live/1");
    let (b, b_id) = join(&mut sim, "studio/2");
    send(&mut sim, a, "relay", strings(&[&b_id, "hi"]));
    assert_eq!(commands(&sim, b, "onRelay"), [(0, strings(&[&a_id, "hi"]))]);
}

#[test]
fn relay_arrives_as_an_amf0_command_message() {
    let mut sim = Sim::new();
    let (a, _) = join(&mut sim, "live");
    let (b, b_id) = join(&mut sim, "live");
    send(&mut sim, a, "relay", strings(&[&b_id, "hi"]));
    let last = sim
        .client(b)
        .received()
        .last()
        .expect("b received the relay");
    assert!(matches!(
        &last.message,
        Message::Command { encoding: Encoding::Amf0, command: Command::Other(g) }
            if g.name == "onRelay"
    ));
}

#[test]
fn relay_to_an_unknown_connection_id_is_dropped_silently() {
    let mut sim = Sim::new();
    let (a, _) = join(&mut sim, "live");
    let (b, _) = join(&mut sim, "live");
    let before = sim.client(a).received().len();
    send(&mut sim, a, "relay", strings(&["0123456789abcdef", "lost"]));
    assert_eq!(sim.client(a).received().len(), before, "no answer to relay");
    assert!(commands(&sim, b, "onRelay").is_empty());
    assert!(!sim.is_closed(a));
}

#[test]
fn broadcast_reaches_every_client_of_the_app_including_the_sender() {
    let mut sim = Sim::new();
    let (a, a_id) = join(&mut sim, "live/12345");
    let (b, _) = join(&mut sim, "live/12345");
    let (c, _) = join(&mut sim, "live/12345");
    send(
        &mut sim,
        a,
        "broadcast",
        strings(&["this is a broadcast", "foo"]),
    );
    let expected = [(0, strings(&[&a_id, "this is a broadcast", "foo"]))];
    for id in [a, b, c] {
        assert_eq!(commands(&sim, id, "onRelay"), expected, "client {id:?}");
    }
}

#[test]
fn broadcast_does_not_leave_the_app() {
    let mut sim = Sim::new();
    let (a, _) = join(&mut sim, "live/1");
    let (other, _) = join(&mut sim, "live/2");
    send(&mut sim, a, "broadcast", strings(&["x"]));
    assert!(commands(&sim, other, "onRelay").is_empty());
}

#[test]
fn watch_sends_on_disconnected_when_the_watched_client_leaves() {
    let mut sim = Sim::new();
    let (watcher, _) = join(&mut sim, "live");
    let (target, target_id) = join(&mut sim, "elsewhere");
    send(&mut sim, watcher, "watch", strings(&[&target_id]));
    assert!(commands(&sim, watcher, "onDisconnected").is_empty());
    sim.client_mut(target).close();
    sim.run();
    assert!(sim.is_closed(target));
    assert_eq!(
        commands(&sim, watcher, "onDisconnected"),
        [(0, strings(&[&target_id]))]
    );
}

#[test]
fn watch_of_a_connection_id_not_connected_answers_at_once() {
    let mut sim = Sim::new();
    let (watcher, _) = join(&mut sim, "live");
    let ghost = "1f9a5f4769fef5884d321e969b6ef7b64fe8db5f11c12637";
    send(&mut sim, watcher, "watch", strings(&[ghost]));
    assert_eq!(
        commands(&sim, watcher, "onDisconnected"),
        [(0, strings(&[ghost]))]
    );
}

#[test]
fn watcher_that_left_first_causes_nothing_when_the_target_leaves() {
    let mut sim = Sim::new();
    let (watcher, _) = join(&mut sim, "live");
    let (target, target_id) = join(&mut sim, "live");
    let (bystander, _) = join(&mut sim, "live");
    send(&mut sim, watcher, "watch", strings(&[&target_id]));
    sim.client_mut(watcher).close();
    sim.run();
    sim.client_mut(target).close();
    sim.run();
    assert!(commands(&sim, bystander, "onDisconnected").is_empty());
    assert_eq!(sim.unroutable(), 0);
}

#[test]
fn relay_from_an_amf3_client_reaches_an_amf0_client() {
    let mut sim = Sim::new();
    let a = sim.add_client();
    let t = sim.client_mut(a).connect_amf3("live");
    sim.run();
    let a_id = sim
        .client(a)
        .reply(t)
        .and_then(|r| r.info_str("connectionID"))
        .expect("the AMF3 client connected");
    let (b, b_id) = join(&mut sim, "live");
    send(&mut sim, a, "relay", strings(&[&b_id, "from flash"]));
    assert_eq!(
        commands(&sim, b, "onRelay"),
        [(0, strings(&[&a_id, "from flash"]))]
    );
}
