//! Per-App settings and a reloaded configuration, seen by clients: an App's
//! own keys and real-time treatment, and new settings reaching new
//! connections without touching those already served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tincan_core::auth::{token, AuthKeys};
use tincan_core::message::Value;
use tincan_core::session::{AppSettings, RealTimeConfig, SessionConfig};
use tincan_tests::sim::media::{avc_inter, avc_keyframe};
use tincan_tests::sim::{ClientId, LinkConfig, Reply, Sim, SimConfig};

fn connect(sim: &mut Sim, app: &str, args: Vec<Value>) -> (ClientId, Reply) {
    let id = sim.add_client();
    let t = sim
        .client_mut(id)
        .connect_with(Value::object([("app", Value::from(app))]), args);
    sim.run();
    let reply = sim.client(id).reply(t).expect("connect is answered");
    (id, reply)
}

fn apps(list: &[(&str, AppSettings)]) -> Arc<BTreeMap<String, AppSettings>> {
    Arc::new(
        list.iter()
            .map(|(n, s)| ((*n).to_owned(), s.clone()))
            .collect(),
    )
}

#[test]
fn an_app_with_its_own_keys_takes_its_tokens_and_others_keep_the_servers() {
    let mut sim = Sim::with_config(SimConfig {
        session: SessionConfig {
            auth_keys: AuthKeys::new(["server-key"]),
            apps: apps(&[
                (
                    "studio",
                    AppSettings {
                        auth_keys: Some(AuthKeys::new(["studio-key"])),
                        ..AppSettings::default()
                    },
                ),
                (
                    "open",
                    AppSettings {
                        auth_keys: Some(AuthKeys::default()),
                        ..AppSettings::default()
                    },
                ),
            ]),
            ..SessionConfig::default()
        },
        ..SimConfig::default()
    });
    let studio_token = token(b"studio-key", "studio");
    let server_token = token(b"server-key", "studio");
    let (_, ok) = connect(&mut sim, "studio", vec![Value::from(studio_token.as_str())]);
    assert!(ok.ok, "{ok:?}");
    let (_, refused) = connect(&mut sim, "studio", vec![Value::from(server_token.as_str())]);
    assert!(!refused.ok, "the server's key is not the studio's");
    let live_token = token(b"server-key", "live");
    let (_, live) = connect(&mut sim, "live", vec![Value::from(live_token.as_str())]);
    assert!(live.ok, "other Apps keep the server's keys");
    let (_, open) = connect(&mut sim, "open", vec![]);
    assert!(open.ok, "an App with no keys needs no token");
}

#[test]
fn an_apps_real_time_treatment_reaches_its_players() {
    let short = RealTimeConfig {
        video_lifetime: Duration::from_millis(200),
        ..RealTimeConfig::default()
    };
    let mut sim = Sim::with_config(SimConfig {
        session: SessionConfig {
            apps: apps(&[(
                "lowlatency",
                AppSettings {
                    real_time: Some(short),
                    ..AppSettings::default()
                },
            )]),
            ..SessionConfig::default()
        },
        ..SimConfig::default()
    });
    let mut players = Vec::new();
    let mut publishers = Vec::new();
    for app in ["lowlatency", "live"] {
        publishers.push(sim.start_publisher(app, "cam"));
        let (id, _) = sim.start_player(app, "cam");
        sim.set_link(id, LinkConfig::slow(2));
        players.push(id);
    }
    for i in 0..25u32 {
        for &(p, s) in &publishers {
            let frame = if i == 0 {
                avc_keyframe(&[1u8; 2000])
            } else {
                avc_inter(&[2u8; 2000])
            };
            sim.client_mut(p).send_video(s, i * 40, frame);
        }
        sim.advance(Duration::from_millis(40));
    }
    let now = sim.now();
    let dropped = |id| {
        sim.server()
            .connection_stats(now, sim.session_id(id))
            .unwrap()
            .dropped_frames
    };
    assert!(dropped(players[0]) > 0, "the App's 200 ms lifetime drops");
    assert_eq!(dropped(players[1]), 0, "other Apps keep 3 s");
}

#[test]
fn a_new_configuration_reaches_new_connections_only() {
    let mut sim = Sim::new();
    let (before, _) = connect(&mut sim, "live", vec![]);
    let mut config = sim.server().config().clone();
    config.session.auth_keys = AuthKeys::new(["new-key"]);
    config.max_connections_per_ip = 1000;
    sim.with_server(|s, _| s.set_config(config));
    let (_, refused) = connect(&mut sim, "live", vec![]);
    assert!(!refused.ok, "a new connection needs a token now");
    let t = token(b"new-key", "live");
    let (_, ok) = connect(&mut sim, "live", vec![Value::from(t.as_str())]);
    assert!(ok.ok);
    assert!(!sim.is_closed(before), "who was connected stays");
    assert_eq!(sim.server().config().max_connections_per_ip, 1000);
}
