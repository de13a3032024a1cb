//! TC user-specific properties in the authenticated user name (`name`,
//! `pri`, `xcl`, `nbf`, `exp`, `use_by`, `exi`, `pub`), through a whole
//! simulated server: the token is an HMAC over the whole user name, so the
//! properties are granted by the key holder and cannot be forged.

use std::time::Duration;

use tincan_core::auth::{token, AuthKeys};
use tincan_core::message::Value;
use tincan_core::session::SessionConfig;
use tincan_tests::sim::{ClientId, Reply, Sim, SimConfig};

const KEY: &str = "supersecret";
const APP: &str = "live/12345";
/// The Unix time the tests pretend it is.
const NOW: f64 = 1_700_000_000.0;

fn sim() -> Sim {
    let mut sim = Sim::with_config(SimConfig {
        session: SessionConfig {
            auth_keys: AuthKeys::new([KEY]),
            ..SessionConfig::default()
        },
        ..SimConfig::default()
    });
    sim.with_server(|s, now| s.handle_unix_time(now, NOW));
    sim
}

/// Connects as `user` with its token; returns the client and the reply.
fn login(sim: &mut Sim, user: &str) -> (ClientId, Reply) {
    let id = sim.add_client();
    let t = sim.client_mut(id).connect_with(
        Value::object([
            ("app", Value::from(APP)),
            ("tcUrl", Value::from("rtmp://localhost/live/12345")),
        ]),
        vec![
            Value::from(user),
            Value::from(token(KEY.as_bytes(), &format!("{user}@{APP}")).as_str()),
        ],
    );
    sim.run();
    let reply = sim.client(id).reply(t).expect("connect is answered");
    (id, reply)
}

fn publish(sim: &mut Sim, id: ClientId, name: &str) -> Vec<String> {
    let s = sim.create_stream(id);
    sim.client_mut(id).publish(s, name);
    sim.run();
    sim.client(id).statuses(s)
}

#[test]
fn a_forged_property_breaks_the_token() {
    let mut s = sim();
    let id = s.add_client();
    let t = s.client_mut(id).connect_with(
        Value::object([("app", Value::from(APP))]),
        vec![
            Value::from("mike;pri=9"),
            Value::from(token(KEY.as_bytes(), &format!("mike;pri=1@{APP}")).as_str()),
        ],
    );
    s.run();
    let reply = s.client(id).reply(t).unwrap();
    assert!(!reply.ok);
}

#[test]
fn pri_lets_the_user_take_over_a_live_name() {
    let mut s = sim();
    let (first, _) = login(&mut s, "a");
    assert_eq!(publish(&mut s, first, "cam"), ["NetStream.Publish.Start"]);
    let (second, reply) = login(&mut s, "b;pri=5");
    assert!(reply.ok, "{reply:?}");
    assert_eq!(
        publish(&mut s, second, "cam?priority=2"),
        ["NetStream.Publish.Start"]
    );
    // Without pri the same ask is capped to 0 and refused.
    let (third, _) = login(&mut s, "c");
    assert_eq!(
        publish(&mut s, third, "cam?priority=9"),
        ["NetStream.Publish.BadName"]
    );
}

#[test]
fn pub_bounds_simultaneous_publishes() {
    let mut s = sim();
    let (id, _) = login(&mut s, "u;pub=1");
    assert_eq!(publish(&mut s, id, "one"), ["NetStream.Publish.Start"]);
    assert_eq!(publish(&mut s, id, "two"), ["NetStream.Publish.BadName"]);
}

#[test]
fn xcl_disconnects_the_users_older_connection() {
    let mut s = sim();
    let (old, _) = login(&mut s, "mike;xcl");
    let (_other, _) = login(&mut s, "anna;xcl");
    let (new, reply) = login(&mut s, "mike;xcl");
    assert!(reply.ok);
    s.advance(Duration::from_millis(100));
    assert!(s.is_closed(old), "the older login is closed");
    assert!(s
        .client(old)
        .statuses(0)
        .contains(&"NetConnection.Connect.Closed".to_owned()));
    assert!(!s.is_closed(new));
}

#[test]
fn nbf_and_use_by_bound_when_a_token_may_connect() {
    let mut s = sim();
    let (_, early) = login(&mut s, &format!("u;nbf={}", NOW + 60.0));
    assert_eq!(
        early.info_str("description").as_deref(),
        Some("the token is not valid yet")
    );
    let (_, late) = login(&mut s, &format!("u;use_by={}", NOW - 60.0));
    assert_eq!(
        late.info_str("description").as_deref(),
        Some("the token has expired")
    );
    let (_, ok) = login(
        &mut s,
        &format!("u;nbf={};use_by={}", NOW - 1.0, NOW + 60.0),
    );
    assert!(ok.ok, "{ok:?}");
}

#[test]
fn exp_and_exi_disconnect_at_their_time() {
    let mut s = sim();
    let (by_exp, _) = login(&mut s, &format!("u;exp={}", NOW + 30.0));
    let (by_exi, _) = login(&mut s, "v;exi=10");
    s.advance(Duration::from_secs(9));
    assert!(!s.is_closed(by_exi));
    s.advance(Duration::from_secs(2));
    assert!(s.is_closed(by_exi), "exi=10 closes after 10 s");
    assert!(!s.is_closed(by_exp));
    s.advance(Duration::from_secs(20));
    assert!(s.is_closed(by_exp), "exp closes at its Unix time");
    let statuses = s.client(by_exp).statuses(0);
    assert!(statuses.contains(&"NetConnection.Connect.Closed".to_owned()));
}

#[test]
fn a_time_bounded_token_is_refused_when_the_server_has_no_clock() {
    let mut s = Sim::with_config(SimConfig {
        session: SessionConfig {
            auth_keys: AuthKeys::new([KEY]),
            ..SessionConfig::default()
        },
        ..SimConfig::default()
    });
    let (_, reply) = login(&mut s, &format!("u;exp={}", NOW + 30.0));
    assert!(!reply.ok);
    let (_, plain) = login(&mut s, "u;exi=30");
    assert!(plain.ok, "exi needs no wall clock");
}

#[test]
fn a_players_publish_notify_names_the_publisher_and_its_priority() {
    use tincan_tests::sim::{member_f64, member_str};
    let mut s = sim();
    let (player, _) = login(&mut s, "viewer");
    let ps = s.create_stream(player);
    s.client_mut(player).play(ps, "cam", -2.0);
    s.run();
    let (publisher, _) = login(&mut s, "67890;name=mike;pri=5");
    assert_eq!(
        publish(&mut s, publisher, "cam?priority=3"),
        ["NetStream.Publish.Start"]
    );
    let notify = s
        .client(player)
        .status_infos(ps)
        .into_iter()
        .find(|i| member_str(i, "code").as_deref() == Some("NetStream.Play.PublishNotify"))
        .expect("PublishNotify");
    assert_eq!(
        member_str(&notify, "publisherName").as_deref(),
        Some("mike")
    );
    assert_eq!(member_f64(&notify, "priority"), Some(3.0));
}
