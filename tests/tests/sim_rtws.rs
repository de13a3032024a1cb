//! TC over RTWebSocket flows, seen from the clients: a browser-like client
//! ([`Sim::add_rtws_client`], speaking as the reference JavaScript client
//! does) connects, publishes and plays through the same server as RTMP
//! clients, sharing streams, approvals, auth and relays with them.

use tincan_tests::sim::Sim;

#[test]
fn connect_gets_success_on_a_flow_answering_the_control_flow() {
    let mut sim = Sim::new();
    let c = sim.add_rtws_client();
    let reply = sim.connect(c, "live");
    assert_eq!(
        reply.info_str("code").as_deref(),
        Some("NetConnection.Connect.Success")
    );
    assert!(sim.client(c).unanswered_flows().is_empty());
    assert!(
        sim.client(c).errors().is_empty(),
        "{:?}",
        sim.client(c).errors()
    );
}
