//! What the whole-server machine does around its sessions, seen from the
//! clients: connection limits, graceful shutdown, and a connection the
//! runtime removes without its session ever seeing the peer leave.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tincan_core::broker::BrokerConfig;
use tincan_core::server::Refusal;
use tincan_core::session::SessionError;
use tincan_tests::sim::media::{avc_keyframe, tagged};
use tincan_tests::sim::{ClientId, LinkConfig, Sim, SimConfig};

const HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const OTHER_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));
const SHUTDOWN_NOTIFY: &str = "NetConnection.Shutdown.Notify";

fn connected(sim: &mut Sim) -> ClientId {
    let id = sim.add_client();
    sim.connect(id, "live");
    id
}

fn from(sim: &mut Sim, ip: IpAddr) -> Result<ClientId, Refusal> {
    sim.try_add_client(ip, LinkConfig::unlimited())
}

#[test]
fn connection_limit_refuses_until_a_connection_is_removed() {
    let mut sim = Sim::with_config(SimConfig {
        max_connections: 3,
        ..SimConfig::default()
    });
    let first = connected(&mut sim);
    let _second = connected(&mut sim);
    let _third = connected(&mut sim);
    assert_eq!(
        from(&mut sim, OTHER_HOST),
        Err(Refusal::TooManyConnections(3))
    );

    sim.client_mut(first).close();
    sim.run();
    assert!(sim.is_closed(first), "the leaving client was not removed");
    assert_eq!(sim.server().connection_count(), 2);
    let again = from(&mut sim, OTHER_HOST).expect("the freed slot is taken");
    sim.connect(again, "live");
}

#[test]
fn per_address_limit_refuses_one_host_but_not_others() {
    let mut sim = Sim::with_config(SimConfig {
        max_connections_per_ip: 2,
        ..SimConfig::default()
    });
    let first = from(&mut sim, HOST).expect("first from the host");
    let _second = from(&mut sim, HOST).expect("second from the host");
    assert_eq!(from(&mut sim, HOST), Err(Refusal::TooManyFromAddress(2)));
    let other = from(&mut sim, OTHER_HOST).expect("another host is served");
    sim.connect(other, "live");

    // A socket error frees the host's slot as surely as a clean close.
    sim.drop_connection(first);
    let again = from(&mut sim, HOST).expect("the host's freed slot is taken");
    sim.connect(again, "live");
}

#[test]
fn exempt_addresses_and_subnets_are_not_held_to_the_per_address_limit() {
    let mut sim = Sim::with_config(SimConfig {
        max_connections_per_ip: 1,
        per_ip_exempt: tincan_core::ipnet::IpNet::parse_list("192.0.2.0/28").unwrap(),
        ..SimConfig::default()
    });
    for _ in 0..5 {
        let id = from(&mut sim, HOST).expect("an exempt host is never limited");
        sim.connect(id, "live");
    }
    let outside = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    let first = from(&mut sim, outside).expect("first from a host outside");
    assert_eq!(from(&mut sim, outside), Err(Refusal::TooManyFromAddress(1)));
    sim.drop_connection(first);
    from(&mut sim, outside).expect("its slot was released");
}

#[test]
fn shutdown_tells_connected_clients_and_keeps_serving_them() {
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (player, stream) = sim.start_player("live", "cam");
    sim.shutdown();

    for id in [publisher, player] {
        assert!(
            sim.client(id).statuses(0).contains(&SHUTDOWN_NOTIFY.into()),
            "{:?}",
            sim.client(id).statuses(0)
        );
        assert!(!sim.is_closed(id), "closed at once instead of notified");
    }
    // Until they leave, media still flows.
    let frame = avc_keyframe(&tagged(b'K', 0, 500));
    sim.client_mut(publisher)
        .send_video(pstream, 0, frame.clone());
    sim.run();
    assert_eq!(
        sim.client(player)
            .media(stream)
            .last()
            .map(|m| m.payload.clone()),
        Some(frame)
    );
}

#[test]
fn shutdown_closes_clients_that_have_not_connected_at_once() {
    let mut sim = Sim::new();
    let waiting = sim.add_client();
    sim.run();
    assert!(sim.client(waiting).handshake_complete());
    let member = connected(&mut sim);

    sim.shutdown();
    assert!(sim.is_closed(waiting), "a client without connect was kept");
    assert!(sim.client(waiting).saw_eof());
    assert!(
        matches!(
            sim.close_reason(waiting),
            Some(SessionError::ClosedByServer(_))
        ),
        "{:?}",
        sim.close_reason(waiting)
    );
    assert!(!sim.is_closed(member));
}

#[test]
fn shutdown_refuses_new_connections() {
    let mut sim = Sim::new();
    let _member = connected(&mut sim);
    sim.shutdown();
    assert_eq!(from(&mut sim, OTHER_HOST), Err(Refusal::ShuttingDown));
}

#[test]
fn shutdown_deadline_closes_whoever_stayed_and_drains_the_server() {
    let deadline = Duration::from_secs(300);
    let mut sim = Sim::with_config(SimConfig {
        shutdown_deadline: deadline,
        ..SimConfig::default()
    });
    let stayer = connected(&mut sim);
    sim.shutdown();

    sim.advance(deadline - Duration::from_millis(1));
    assert!(
        !sim.is_closed(stayer),
        "closed before the shutdown deadline"
    );
    assert!(!sim.server().is_drained());
    sim.advance(Duration::from_millis(1));
    assert!(sim.is_closed(stayer), "kept past the shutdown deadline");
    assert!(
        sim.client(stayer)
            .statuses(0)
            .contains(&"NetConnection.Connect.Closed".into()),
        "{:?}",
        sim.client(stayer).statuses(0)
    );
    assert!(sim.client(stayer).saw_eof());
    assert!(sim.server().is_drained());
}

#[test]
fn clients_leaving_after_shutdown_notify_drain_the_server_early() {
    let mut sim = Sim::new();
    let a = connected(&mut sim);
    let b = connected(&mut sim);
    sim.shutdown();
    sim.advance(Duration::from_secs(1));
    sim.client_mut(a).close();
    sim.run();
    assert!(!sim.server().is_drained(), "drained with a client left");
    sim.client_mut(b).close();
    sim.run();
    assert!(sim.server().is_drained());
}

#[test]
fn removing_a_publisher_without_eof_unpublishes_after_the_grace() {
    let grace = BrokerConfig::default().republish_grace;
    let mut sim = Sim::new();
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (player, stream) = sim.start_player("live", "cam");
    sim.client_mut(publisher)
        .send_video(pstream, 0, avc_keyframe(&tagged(b'K', 0, 100)));
    sim.run();

    // The publisher's socket fails: the runtime removes the connection;
    // its session never saw the peer leave.
    sim.drop_connection(publisher);
    let unpublish = |sim: &Sim| {
        sim.client(player)
            .statuses(stream)
            .contains(&"NetStream.Play.UnpublishNotify".to_owned())
    };
    sim.advance(grace - Duration::from_millis(1));
    assert!(!unpublish(&sim), "UnpublishNotify before the grace ended");
    sim.advance(Duration::from_millis(2));
    assert!(
        unpublish(&sim),
        "the broker never learned the publisher left: {:?}",
        sim.client(player).statuses(stream)
    );
    assert_eq!(sim.broker().published_count(), 0);
    // The name is free for a new publisher.
    sim.start_publisher("live", "cam");
}

#[test]
fn shutdown_deadline_drains_a_server_whose_client_stopped_reading() {
    // Shorter than the dead-peer timeout, so only shutdown ends the client.
    let deadline = Duration::from_secs(20);
    // How long a closing session may try to flush its goodbye (the core's
    // close-flush bound).
    let flush = Duration::from_secs(5);
    let mut sim = Sim::with_config(SimConfig {
        shutdown_deadline: deadline,
        ..SimConfig::default()
    });
    let (publisher, pstream) = sim.start_publisher("live", "cam");
    let (stuck, _) = sim.start_player("live", "cam");
    // The player's socket buffer fills and it never reads again.
    sim.set_link(
        stuck,
        LinkConfig {
            bytes_per_ms: Some(1),
            buffer_bytes: 1024,
        },
    );
    sim.client_mut(stuck).freeze();
    sim.client_mut(publisher)
        .send_video(pstream, 0, avc_keyframe(&tagged(b'K', 0, 4_000)));
    sim.run();
    assert!(sim.link_backlog(stuck) >= 1024, "the link is not full");

    sim.shutdown();
    sim.client_mut(publisher).close();
    sim.advance(deadline - Duration::from_millis(1));
    assert!(!sim.is_closed(stuck), "closed before the shutdown deadline");
    sim.advance(flush + Duration::from_millis(2));
    assert!(
        sim.is_closed(stuck),
        "a client that never reads held the server"
    );
    assert!(
        matches!(
            sim.close_reason(stuck),
            Some(SessionError::ClosedByServer(_))
        ),
        "{:?}",
        sim.close_reason(stuck)
    );
    assert!(sim.server().is_drained());
}
