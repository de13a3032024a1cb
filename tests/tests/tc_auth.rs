//! TC token authentication through a whole simulated server, with the
//! README's `connect` commands verbatim (README, "Authentication").

use tincan_core::auth::AuthKeys;
use tincan_core::message::Value;
use tincan_core::session::SessionConfig;
use tincan_tests::sim::{Reply, Sim, SimConfig};

const APP_TOKEN: &str = "df41d9cbe74f325250d6e0346dcd9e95fb837892f4a927c27cecf2664d639786";
const USER_TOKEN: &str = "8bddf00ca7e31862fe17872c463df61eafde6518f565cb3def0e82a3b2d639d7";

fn sim_with_key() -> Sim {
    Sim::with_config(SimConfig {
        session: SessionConfig {
            auth_keys: AuthKeys::new(["supersecret"]),
            ..SessionConfig::default()
        },
        ..SimConfig::default()
    })
}

/// The README's `connect` to `live/12345` with `args` after the object;
/// returns the client and the reply.
fn connect(sim: &mut Sim, args: &[&str]) -> (tincan_tests::sim::ClientId, Reply) {
    let id = sim.add_client();
    let t = sim.client_mut(id).connect_with(
        Value::object([
            ("app", Value::from("live/12345")),
            ("objectEncoding", Value::Number(0.0)),
            ("tcUrl", Value::from("rtmp://localhost/live/12345")),
        ]),
        args.iter().map(|a| Value::from(*a)).collect(),
    );
    sim.run();
    let reply = sim.client(id).reply(t).expect("connect is answered");
    (id, reply)
}

#[test]
fn app_wide_token_from_the_readme_connects() {
    let mut sim = sim_with_key();
    let (_, reply) = connect(&mut sim, &[APP_TOKEN]);
    assert!(reply.ok, "{reply:?}");
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Success")
    );
}

#[test]
fn user_name_and_token_from_the_readme_connect() {
    let mut sim = sim_with_key();
    let (id, reply) = connect(&mut sim, &["mike", USER_TOKEN]);
    assert!(reply.ok, "{reply:?}");
    assert_eq!(sim.session(id).and_then(|s| s.user()), Some("mike"));
}

#[test]
fn wrong_token_is_rejected_and_the_connection_closed() {
    let mut sim = sim_with_key();
    let (id, reply) = connect(&mut sim, &["mike", APP_TOKEN]);
    assert!(!reply.ok);
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Rejected")
    );
    assert!(sim.is_closed(id));
    assert!(sim.client(id).saw_eof());
}

#[test]
fn missing_token_is_rejected() {
    let mut sim = sim_with_key();
    let (id, reply) = connect(&mut sim, &[]);
    assert!(!reply.ok);
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Rejected")
    );
    assert!(sim.is_closed(id));
}

#[test]
fn rejected_client_never_joins_the_app() {
    let mut sim = sim_with_key();
    let (_, good) = connect(&mut sim, &[APP_TOKEN]);
    assert!(good.ok);
    let (_, bad) = connect(&mut sim, &["not a token"]);
    assert!(!bad.ok);
    assert_eq!(sim.broker().session_count(), 1);
}
