//! Enhanced RTMP v2's reconnect request through the `tincan` binary: the
//! `--shutdown-reconnect-url` flag on a graceful shutdown, and the HTTP
//! API's route for one connection. The clients are real TCP clients built
//! from the core's wire layers, so the test sees the exact statuses.

use std::time::Duration;

use serde_json::json;
use tincan_core::message::{Command, Message, Value};
use tincan_tests::http::{get_json, post, post_json};
use tincan_tests::server::TestServer;
use tincan_tests::tc_client::{status_code, TcClient};

const TIMEOUT: Duration = Duration::from_secs(10);
const RECONNECT: &str = "NetConnection.Connect.ReconnectRequest";
const NOTIFY: &str = "NetConnection.Shutdown.Notify";

/// A connected client; `caps_ex` is announced in `connect` when given.
fn connected(server: &TestServer, caps_ex: Option<f64>) -> TcClient {
    let mut c = TcClient::connect(server.port(), TIMEOUT).expect("connect");
    let extra = caps_ex
        .map(|c| vec![("capsEx", Value::Number(c))])
        .unwrap_or_default();
    c.connect_app_with("live", extra);
    assert!(
        c.wait_for(TIMEOUT, |m| status_code(m)
            == Some("NetConnection.Connect.Success")),
        "{:?}",
        c.received()
    );
    c
}

/// The info object of every `onStatus` received so far, in order.
fn statuses(c: &TcClient) -> Vec<&Value> {
    c.received()
        .iter()
        .filter_map(|m| match m {
            Message::Command {
                command: Command::OnStatus { info },
                ..
            } => Some(info),
            _ => None,
        })
        .collect()
}

fn code(info: &Value) -> &str {
    info.get("code").and_then(Value::as_str).unwrap_or("")
}

#[test]
fn shutdown_asks_capable_clients_to_reconnect_to_the_configured_url_before_the_notice() {
    let target = "rtmp://other-node.example:1935/live";
    let server = TestServer::start_with(&["--shutdown-reconnect-url", target]);
    // capsEx 1 is Reconnect; 2 (Multitrack) alone is not.
    let mut capable = connected(&server, Some(1.0));
    let mut multitrack_only = connected(&server, Some(2.0));
    let mut legacy = connected(&server, None);

    server.signal("TERM");
    for c in [&mut capable, &mut multitrack_only, &mut legacy] {
        assert!(
            c.wait_for(TIMEOUT, |m| status_code(m) == Some(NOTIFY)),
            "no shutdown notice: {:?}",
            c.received()
        );
    }

    let seen = statuses(&capable);
    let reconnect = seen
        .iter()
        .position(|i| code(i) == RECONNECT)
        .unwrap_or_else(|| panic!("no reconnect request: {seen:?}"));
    let notify = seen.iter().position(|i| code(i) == NOTIFY).unwrap();
    assert!(reconnect < notify, "the request came after the notice");
    assert_eq!(
        seen[reconnect].get("tcUrl").and_then(Value::as_str),
        Some(target)
    );
    for c in [&multitrack_only, &legacy] {
        assert!(
            statuses(c).iter().all(|i| code(i) != RECONNECT),
            "a client that did not announce reconnect support was asked: {:?}",
            c.received()
        );
    }
}

#[test]
fn without_the_flag_shutdown_sends_no_reconnect_request() {
    let server = TestServer::start();
    let mut capable = connected(&server, Some(15.0));
    server.signal("TERM");
    assert!(capable.wait_for(TIMEOUT, |m| status_code(m) == Some(NOTIFY)));
    assert!(statuses(&capable).iter().all(|i| code(i) != RECONNECT));
}

/// The API's ids of every connection, oldest first.
fn connection_ids(server: &TestServer) -> Vec<u64> {
    let page = get_json(&server.http_url("/api/v1/connections"));
    page["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_api_asks_one_capable_connection_to_reconnect_where_the_operator_says() {
    let token = "reconnect-token";
    let server = TestServer::start_with_http(&["--http-token", token]);
    let mut capable = connected(&server, Some(1.0));
    let mut other = connected(&server, Some(1.0));
    let ids = connection_ids(&server);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let url = server.http_url(&format!("/api/v1/connections/{}/reconnect", ids[0]));

    assert_eq!(post(&url, None).status, 401);
    let body = json!({ "tcUrl": "rtmp://edge2.example/live", "description": "draining edge1" });
    let r = post_json(&url, Some(token), &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["requested"], true);

    assert!(
        capable.wait_for(TIMEOUT, |m| status_code(m) == Some(RECONNECT)),
        "{:?}",
        capable.received()
    );
    let seen = statuses(&capable);
    let info = seen.iter().find(|i| code(i) == RECONNECT).unwrap();
    assert_eq!(
        info.get("tcUrl").and_then(Value::as_str),
        Some("rtmp://edge2.example/live")
    );
    assert_eq!(
        info.get("description").and_then(Value::as_str),
        Some("draining edge1")
    );
    // The request does not close anything, and the other client is not
    // asked.
    other.read_for(Duration::from_millis(300));
    assert!(statuses(&other).iter().all(|i| code(i) != RECONNECT));
    assert!(!capable.saw_eof() && !other.saw_eof());

    // No body: the client is asked to reconnect where it is.
    let url2 = server.http_url(&format!("/api/v1/connections/{}/reconnect", ids[1]));
    let r = post(&url2, Some(token));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(other.wait_for(TIMEOUT, |m| status_code(m) == Some(RECONNECT)));
    let seen = statuses(&other);
    let info = seen.iter().find(|i| code(i) == RECONNECT).unwrap();
    assert_eq!(info.get("tcUrl"), None, "{info:?}");
}

#[test]
fn the_api_refuses_to_ask_a_client_that_did_not_announce_reconnect_support() {
    let token = "reconnect-token";
    let server = TestServer::start_with_http(&["--http-token", token]);
    let mut legacy = connected(&server, None);
    let id = connection_ids(&server)[0];
    let r = post(
        &server.http_url(&format!("/api/v1/connections/{id}/reconnect")),
        Some(token),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["error"], "not_capable");
    let r = post(
        &server.http_url("/api/v1/connections/999999/reconnect"),
        Some(token),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = post_json(
        &server.http_url(&format!("/api/v1/connections/{id}/reconnect")),
        Some(token),
        &json!({ "url": "typo" }),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    legacy.read_for(Duration::from_millis(300));
    assert!(statuses(&legacy).iter().all(|i| code(i) != RECONNECT));
    assert!(!legacy.saw_eof());
}
