//! `tincan serve --http-listen`, against the real binary with real HTTP and
//! real FFmpeg clients: every route's shape and values, paging, the token
//! rules of the control routes, the metrics' per-stream series, and
//! readiness during a graceful shutdown.
//!
//! The responses of the first test are also written to
//! `<target>/<profile>/http-api-examples/`, where docs/http-api.md's
//! examples were taken from.

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use tincan_core::message::{Command as Rtmp, Connect, Encoding, Message, Value as RtmpValue};
use tincan_tests::http::{get, get_json, poll_json, post};
use tincan_tests::require_tool;
use tincan_tests::server::{
    play_args, profile_dir, publish_args, x264, Client, Output, TestServer,
};
use tincan_tests::tc_client::{status_code, TcClient};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A live FFmpeg publisher of the 160x120 test pattern (H.264 + AAC) to
/// `rtmp://.../live/NAME`, for `seconds`.
fn publisher(server: &TestServer, name: &str, seconds: u32) -> Client {
    let ffmpeg = require_tool("ffmpeg");
    let video = x264(25);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    let args = publish_args(&server.url(name), 25, seconds, &video, &["-c:a", "aac"]);
    Client::spawn("publisher", Command::new(ffmpeg).args(args), Output::Ignore)
}

/// An FFmpeg player of `live/NAME`, decoding.
fn player(server: &TestServer, name: &str) -> Client {
    let ffmpeg = require_tool("ffmpeg");
    let args = play_args(&server.url(name), &[]);
    Client::spawn("player", Command::new(ffmpeg).args(args), Output::FrameCrc)
}

/// Waits until stream `live/NAME` is described (video size known).
fn wait_described(server: &TestServer, name: &str, publisher: &Client) -> Value {
    let (s, ok) = poll_json(
        &server.http_url(&format!("/api/v1/streams/live/{name}")),
        TIMEOUT,
        |s| s["media"]["video"][0]["width"].is_u64() && s["media"]["audio"][0]["codec"].is_string(),
    );
    assert!(
        ok,
        "stream never described: {s}\n{}\n{}",
        publisher.describe(),
        server.logs()
    );
    s
}

/// A connection of a bare RTMP client to App `live`.
fn connected(server: &TestServer) -> TcClient {
    let mut c = TcClient::connect(server.port(), TIMEOUT).expect("client connects");
    c.connect_app("live");
    assert!(c.wait_for(TIMEOUT, |m| status_code(m)
        == Some("NetConnection.Connect.Success")));
    c
}

fn save_example(name: &str, value: &Value) {
    let dir = profile_dir().join("http-api-examples");
    std::fs::create_dir_all(&dir).expect("examples dir");
    let text = serde_json::to_string_pretty(value).expect("JSON");
    std::fs::write(dir.join(format!("{name}.json")), text + "\n").expect("write example");
}

fn connection<'a>(page: &'a Value, id: &Value) -> &'a Value {
    page["connections"]
        .as_array()
        .expect("connections array")
        .iter()
        .find(|c| c["id"] == *id)
        .unwrap_or_else(|| panic!("connection {id} not listed: {page}"))
}

#[test]
fn a_live_publisher_and_its_player_show_in_streams_connections_and_server() {
    let server = TestServer::start_with_http(&[]);
    let publisher = publisher(&server, "api", 30);
    let stream = wait_described(&server, "api", &publisher);

    // The stream: App, name, media description of the 160x120 test source.
    assert_eq!(stream["app"], "live");
    assert_eq!(stream["name"], "api");
    let video = &stream["media"]["video"][0];
    assert_eq!(video["codec"], "H.264", "{stream}");
    assert_eq!(video["width"], 160);
    assert_eq!(video["height"], 120);
    assert_eq!(video["frame_rate"], 25.0);
    let audio = &stream["media"]["audio"][0];
    assert_eq!(audio["codec"], "AAC");
    assert_eq!(audio["sample_rate"], 48000);
    assert_eq!(audio["channels"], 1);
    assert_eq!(stream["subscribers"], 0);
    assert_eq!(stream["players"], serde_json::json!([]));
    assert!(stream["bytes_in"].as_u64().unwrap() > 0);
    assert!(stream["frames_in"].as_u64().unwrap() > 0);
    assert!(stream["uptime_secs"].as_f64().unwrap() > 0.0);
    assert!(stream["since"].as_str().unwrap().ends_with('Z'));
    let publisher_id = stream["publisher"]["id"].clone();
    assert!(publisher_id.is_u64(), "{stream}");
    assert!(stream["publisher"]["peer"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    // A bitrate over the window once the stream has run a few seconds.
    let (stream, ok) = poll_json(&server.http_url("/api/v1/streams/live/api"), TIMEOUT, |s| {
        s["bitrate_in_bps"].as_u64().unwrap_or(0) > 10_000
    });
    assert!(ok, "no input bitrate: {stream}");

    // The publisher's connection.
    let page = get_json(&server.http_url("/api/v1/connections"));
    assert_eq!(page["total"], 1);
    assert_eq!(page["next"], Value::Null);
    let c = connection(&page, &publisher_id);
    assert_eq!(c["role"], "publisher");
    assert_eq!(c["state"], "connected");
    assert_eq!(c["app"], "live");
    assert_eq!(c["transport"], "rtmp");
    assert!(c["flash_ver"].as_str().unwrap().contains("Lavf"), "{c}");
    assert_eq!(c["publishing"][0]["name"], "api");
    assert!(c["bytes_in"].as_u64().unwrap() > 0);
    assert_eq!(c["peer"], stream["publisher"]["peer"]);

    // A player joins: the stream counts it and names its connection.
    let player = player(&server, "api");
    let (stream, ok) = poll_json(&server.http_url("/api/v1/streams/live/api"), TIMEOUT, |s| {
        s["subscribers"] == 1 && s["players"].as_array().is_some_and(|p| p.len() == 1)
    });
    assert!(
        ok,
        "the player never showed: {stream}\n{}",
        player.describe()
    );
    let player_id = stream["players"][0].clone();
    let p = player.wait_for(TIMEOUT, |p| p.video >= 25);
    assert!(p.video >= 25, "{}", player.describe());
    let one = get_json(&server.http_url(&format!("/api/v1/connections/{player_id}")));
    assert_eq!(one["role"], "player");
    assert_eq!(one["playing"][0]["app"], "live");
    assert_eq!(one["playing"][0]["name"], "api");
    assert!(one["bytes_out"].as_u64().unwrap() > 0);
    assert_eq!(one["dropped_frames"], 0);
    let stream = get_json(&server.http_url("/api/v1/streams/live/api"));
    assert!(stream["bytes_out"].as_u64().unwrap() > 0);

    let list = get_json(&server.http_url("/api/v1/streams"));
    assert_eq!(list["streams"].as_array().unwrap().len(), 1);
    assert_eq!(list["streams"][0]["name"], "api");

    let about = get_json(&server.http_url("/api/v1/server"));
    assert_eq!(about["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        about["rtmp_listen"],
        serde_json::json!([format!("127.0.0.1:{}", server.port())])
    );
    assert_eq!(about["connections"], 2);
    assert_eq!(about["streams"], 1);
    assert_eq!(about["shutting_down"], false);

    // Unknown things are JSON 404s; malformed ids are 400s.
    for path in [
        "/api/v1/streams/live/nobody",
        "/api/v1/connections/999999",
        "/api/v1/nothing",
    ] {
        let r = get(&server.http_url(path));
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["error"], "not_found", "{path}");
    }
    let r = get(&server.http_url("/api/v1/connections/abc"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "bad_request");

    save_example("server", &about);
    save_example("streams", &list);
    save_example("stream", &stream);
    save_example(
        "connections",
        &get_json(&server.http_url("/api/v1/connections?limit=1")),
    );
    save_example("connection", &one);
    save_example(
        "error",
        &get(&server.http_url("/api/v1/streams/live/nobody")).json(),
    );
}

#[test]
fn connections_are_paged_by_id_with_a_cursor() {
    let server = TestServer::start_with_http(&[]);
    let _clients: Vec<TcClient> = (0..5).map(|_| connected(&server)).collect();
    // The helper's readiness probe may not be removed yet.
    let (all, ok) = poll_json(&server.http_url("/api/v1/connections"), TIMEOUT, |p| {
        p["total"] == 5
    });
    assert!(ok, "{all}");
    let ids: Vec<u64> = all["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ordered by id: {ids:?}"
    );

    let mut paged = Vec::new();
    let mut url = server.http_url("/api/v1/connections?limit=2");
    let mut pages = 0;
    loop {
        let page = get_json(&url);
        pages += 1;
        assert_eq!(page["total"], 5);
        assert!(page["connections"].as_array().unwrap().len() <= 2);
        paged.extend(
            page["connections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_u64().unwrap()),
        );
        match page["next"].as_u64() {
            Some(next) => {
                url = server.http_url(&format!("/api/v1/connections?limit=2&after={next}"))
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, ids);

    for bad in ["limit=0", "limit=1001", "limit=x", "after=-1"] {
        let r = get(&server.http_url(&format!("/api/v1/connections?{bad}")));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.json()["error"], "bad_request");
    }
}

#[test]
fn without_a_token_the_control_routes_are_refused() {
    let server = TestServer::start_with_http(&[]);
    let mut client = connected(&server);
    let page = get_json(&server.http_url("/api/v1/connections"));
    let id = &page["connections"][0]["id"];
    for path in [
        format!("/api/v1/connections/{id}/close"),
        "/api/v1/streams/live/x/close".to_owned(),
    ] {
        for token in [None, Some("anything")] {
            let r = post(&server.http_url(&path), token);
            assert_eq!(r.status, 403, "{path} {token:?}: {}", r.body);
            assert_eq!(r.json()["error"], "forbidden");
        }
    }
    // Nothing was closed.
    client.read_for(Duration::from_millis(300));
    assert!(!client.saw_eof());
}

#[test]
fn the_right_bearer_token_closes_a_connection_and_ends_a_publish() {
    let token = "t0k3n-for-the-test";
    let server = TestServer::start_with_http(&["--http-token", token]);
    let mut client = connected(&server);
    let page = get_json(&server.http_url("/api/v1/connections"));
    let id = page["connections"][0]["id"].as_u64().unwrap();
    let close = server.http_url(&format!("/api/v1/connections/{id}/close"));

    for wrong in [None, Some("t0k3n-for-the-tesT"), Some("")] {
        let r = post(&close, wrong);
        assert_eq!(r.status, 401, "{wrong:?}: {}", r.body);
        assert_eq!(r.json()["error"], "unauthorized");
        assert!(r
            .www_authenticate
            .as_deref()
            .unwrap_or("")
            .starts_with("Bearer"));
    }
    client.read_for(Duration::from_millis(200));
    assert!(!client.saw_eof(), "a refused request closed the connection");
    // A GET is not a way around it.
    assert_eq!(get(&close).status, 405);

    let r = post(&close, Some(token));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["closed"], true);
    assert!(
        client.wait_for(TIMEOUT, |m| status_code(m)
            == Some("NetConnection.Connect.Closed")),
        "{:?}",
        client.received()
    );
    assert!(client.wait_eof(TIMEOUT), "the connection stayed open");
    let (_, gone) = poll_json(&server.http_url("/api/v1/connections"), TIMEOUT, |p| {
        p["total"] == 0
    });
    assert!(gone);
    assert_eq!(post(&close, Some(token)).status, 404);
    assert!(!server.logs().contains(token), "the token was logged");

    // Ending a publish: the publisher is told NetStream.Publish.Denied
    // with the operator's description and leaves by itself; the server
    // does not close its connection.
    let closed_by_server = r#"tincan_connections_closed_total{reason="closed_by_server"}"#;
    let kicked_before = sample(&get(&server.http_url("/metrics")).body, closed_by_server);
    let mut publisher = publisher(&server, "kick", 60);
    wait_described(&server, "kick", &publisher);
    let end = server.http_url("/api/v1/streams/live/kick/close");
    assert_eq!(post(&end, Some("nope")).status, 401);
    let r = post(&end, Some(token));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["closed"], true);
    assert!(r.json()["publisher"].is_u64(), "{}", r.body);
    assert!(
        publisher.wait_exit(TIMEOUT).is_some(),
        "FFmpeg kept publishing: {}",
        publisher.describe()
    );
    assert!(
        publisher.stderr().contains("publish ended by the operator"),
        "the description is not in FFmpeg's output: {}",
        publisher.describe()
    );
    let (s, unpublished) = poll_json(&server.http_url("/api/v1/streams"), TIMEOUT, |s| {
        s["streams"]
            .as_array()
            .is_some_and(|a| a.iter().all(|s| s["publisher"].is_null()))
    });
    assert!(unpublished, "{s}");
    assert_eq!(post(&end, Some(token)).status, 404);
    let (_, gone) = poll_json(&server.http_url("/api/v1/connections"), TIMEOUT, |p| {
        p["total"] == 0
    });
    assert!(gone);
    assert_eq!(
        sample(&get(&server.http_url("/metrics")).body, closed_by_server),
        kicked_before,
        "the server closed FFmpeg's connection"
    );

    // A publisher that stays: told why, and its connection open.
    let mut rtmp = connected(&server);
    let stream = create_stream(&mut rtmp);
    rtmp.publish(stream, "stays");
    assert!(rtmp.wait_for(TIMEOUT, |m| status_code(m)
        == Some("NetStream.Publish.Start")));
    let r = post(
        &server.http_url("/api/v1/streams/live/stays/close"),
        Some(token),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        rtmp.wait_for(TIMEOUT, |m| status_code(m)
            == Some("NetStream.Publish.Denied")
            && description(m) == Some("publish ended by the operator")),
        "{:?}",
        rtmp.received()
    );
    rtmp.read_for(Duration::from_millis(300));
    assert!(!rtmp.saw_eof(), "the publisher's connection was closed");
    let page = get_json(&server.http_url("/api/v1/connections"));
    assert_eq!(page["total"], 1, "{page}");
}

/// Sends `createStream` and returns the stream id of its result.
fn create_stream(c: &mut TcClient) -> u32 {
    let t = c.create_stream();
    let mut id = None;
    c.wait_for(TIMEOUT, |m| match m {
        Message::Command {
            command:
                Rtmp::Result {
                    transaction_id,
                    args,
                    ..
                },
            ..
        } if *transaction_id == t => {
            id = args.iter().find_map(RtmpValue::as_f64);
            id.is_some()
        }
        _ => false,
    });
    id.expect("createStream answered with a stream id") as u32
}

/// The `description` of an `onStatus` info object.
fn description(m: &Message) -> Option<&str> {
    match m {
        Message::Command {
            command: Rtmp::OnStatus { info },
            ..
        } => info.get("description")?.as_str(),
        _ => None,
    }
}

/// The value of the sample `series` (name and labels exactly as
/// written) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

/// Every line of a scrape is a comment of the text format or a sample
/// `name{labels} value`, and every sample's family was declared.
fn check_format(scrape: &str) {
    let mut declared = std::collections::HashSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!(declared.insert(name.to_owned()), "declared twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(declared.contains(name), "undeclared family: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            }
        }
    }
}

#[test]
fn metrics_carry_totals_and_per_stream_series_only_while_the_stream_lives() {
    let server = TestServer::start_with_http(&[]);
    // The helper's readiness probe was a connection too.
    let opened = r#"tincan_connections_opened_total{transport="rtmp"}"#;
    let (_, probed) = poll_json(&server.http_url("/api/v1/connections"), TIMEOUT, |p| {
        p["total"] == 0
    });
    assert!(probed);
    let before = sample(&get(&server.http_url("/metrics")).body, opened).unwrap();
    let mut publisher = publisher(&server, "m", 60);
    wait_described(&server, "m", &publisher);
    let player = player(&server, "m");
    let (_, ok) = poll_json(&server.http_url("/api/v1/streams/live/m"), TIMEOUT, |s| {
        s["subscribers"] == 1
    });
    assert!(ok, "{}", player.describe());
    player.wait_for(TIMEOUT, |p| p.video >= 10);

    let r = get(&server.http_url("/metrics"));
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    let live = r.body;
    check_format(&live);
    let series = r#"{app="live",name="m"}"#;
    assert!(
        sample(
            &live,
            &format!("tincan_stream_received_bytes_total{series}")
        )
        .unwrap()
            > 0.0
    );
    assert!(sample(&live, &format!("tincan_stream_sent_bytes_total{series}")).unwrap() > 0.0);
    assert_eq!(
        sample(&live, &format!("tincan_stream_subscribers{series}")),
        Some(1.0)
    );
    assert_eq!(sample(&live, "tincan_publishes_total"), Some(1.0));
    assert_eq!(sample(&live, "tincan_plays_total"), Some(1.0));
    assert_eq!(
        sample(&live, r#"tincan_connections{transport="rtmp"}"#),
        Some(2.0)
    );
    assert_eq!(sample(&live, opened), Some(before + 2.0));
    assert_eq!(sample(&live, "tincan_publishers"), Some(1.0));
    assert_eq!(sample(&live, "tincan_handshake_failures_total"), Some(0.0));
    assert_eq!(sample(&live, "tincan_aborts_total"), Some(0.0));
    assert_eq!(sample(&live, "tincan_ready"), Some(1.0));
    let received = sample(&live, "tincan_received_bytes_total").unwrap();
    let sent = sample(&live, "tincan_sent_bytes_total").unwrap();
    assert!(received > 0.0 && sent > 0.0);

    // A bad handshake is counted.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        s.write_all(&[6; 1537]).unwrap(); // RTMPE's version byte
        let _ = std::io::Read::read(&mut s, &mut [0; 16]);
    }

    // The publisher and the player leave: the stream's series go, the
    // totals stay and have not gone down.
    publisher.kill();
    drop(player);
    let deadline = Instant::now() + TIMEOUT;
    let after = loop {
        let scrape = get(&server.http_url("/metrics")).body;
        if !scrape.contains(series)
            && sample(&scrape, r#"tincan_connections{transport="rtmp"}"#) == Some(0.0)
        {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "series outlived the stream:\n{scrape}"
        );
        sleep(Duration::from_millis(200));
    };
    check_format(&after);
    assert!(sample(&after, "tincan_received_bytes_total").unwrap() >= received);
    assert!(sample(&after, "tincan_sent_bytes_total").unwrap() >= sent);
    assert_eq!(sample(&after, "tincan_publishes_total"), Some(1.0));
    assert_eq!(sample(&after, "tincan_handshake_failures_total"), Some(1.0));
    assert_eq!(sample(&after, opened), Some(before + 3.0));
    let closed: f64 = after
        .lines()
        .filter(|l| l.starts_with("tincan_connections_closed_total{"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    assert_eq!(closed, before + 3.0, "{after}");
    assert_eq!(sample(&after, "tincan_streams"), Some(0.0));
}

/// Every `reason` of `tincan_rejections_total`.
const REJECTIONS: [&str; 7] = [
    "connect_rejected",
    "publish_taken",
    "publish_name",
    "publish_limit",
    "publish_denied",
    "play_limit",
    "play_denied",
];

/// Every `reason` of `tincan_connections_refused_total`.
const REFUSALS: [&str; 3] = ["shutting_down", "connection_limit", "per_address_limit"];

/// Scrapes until sample `series` is `want`; the last scrape and whether it
/// was.
fn poll_sample(server: &TestServer, series: &str, want: f64) -> (String, bool) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let scrape = get(&server.http_url("/metrics")).body;
        if sample(&scrape, series) == Some(want) {
            return (scrape, true);
        }
        if Instant::now() >= deadline {
            return (scrape, false);
        }
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn refusals_and_rejections_are_counted_by_reason() {
    let server = TestServer::start_with_http(&["--max-connections", "2"]);
    let (_, probed) = poll_json(&server.http_url("/api/v1/connections"), TIMEOUT, |p| {
        p["total"] == 0
    });
    assert!(probed);
    let rejected = |r: &str| format!("tincan_rejections_total{{reason=\"{r}\"}}");
    let refused = |r: &str| format!("tincan_connections_refused_total{{reason=\"{r}\"}}");
    // Every reason is there from the start, at 0.
    let start = get(&server.http_url("/metrics")).body;
    check_format(&start);
    for series in REJECTIONS
        .iter()
        .map(|r| rejected(r))
        .chain(REFUSALS.iter().map(|r| refused(r)))
    {
        assert_eq!(sample(&start, &series), Some(0.0), "{series}:\n{start}");
    }

    // A publish of a name that is live: publish_taken.
    let mut first = connected(&server);
    let stream = create_stream(&mut first);
    first.publish(stream, "taken");
    assert!(first.wait_for(TIMEOUT, |m| status_code(m)
        == Some("NetStream.Publish.Start")));
    let mut second = connected(&server);
    let stream = create_stream(&mut second);
    second.publish(stream, "taken");
    let (scrape, ok) = poll_sample(&server, &rejected("publish_taken"), 1.0);
    assert!(ok, "{scrape}");
    assert_eq!(sample(&scrape, "tincan_publishes_total"), Some(1.0));

    // A third connection is over --max-connections: refused at accept.
    assert!(TcClient::connect(server.port(), Duration::from_secs(5)).is_err());
    let (scrape, ok) = poll_sample(&server, &refused("connection_limit"), 1.0);
    assert!(ok, "{scrape}");

    // A connect that names no App: connect_rejected.
    second.close();
    let (_, ok) = poll_json(&server.http_url("/api/v1/connections"), TIMEOUT, |p| {
        p["total"] == 1
    });
    assert!(ok);
    let mut nameless = TcClient::connect(server.port(), TIMEOUT).expect("handshake");
    let connect = Message::Command {
        encoding: Encoding::Amf0,
        command: Rtmp::Connect(Connect {
            transaction_id: 1.0,
            properties: RtmpValue::object([("objectEncoding", RtmpValue::Number(0.0))]),
            args: vec![],
        }),
    };
    nameless.send(3, 0, 0, &connect);
    assert!(nameless.wait_for(TIMEOUT, |m| status_code(m)
        == Some("NetConnection.Connect.Rejected")));
    let (scrape, ok) = poll_sample(&server, &rejected("connect_rejected"), 1.0);
    assert!(ok, "{scrape}");
    check_format(&scrape);
    for r in [
        "publish_name",
        "publish_limit",
        "publish_denied",
        "play_limit",
        "play_denied",
    ] {
        assert_eq!(sample(&scrape, &rejected(r)), Some(0.0), "{r}");
    }
}

#[test]
fn readyz_turns_503_when_a_graceful_shutdown_starts_and_healthz_stays_up() {
    let mut server = TestServer::start_with_http(&[]);
    // A connected client keeps the server draining, so the HTTP listener
    // is still there to ask.
    let mut client = connected(&server);
    let r = get(&server.http_url("/readyz"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ready"], true);
    assert_eq!(get(&server.http_url("/healthz")).status, 200);

    let pid = server.child().id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(client.wait_for(TIMEOUT, |m| status_code(m)
        == Some("NetConnection.Shutdown.Notify")));
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = get(&server.http_url("/readyz"));
        if r.status == 503 {
            assert_eq!(r.json()["ready"], false);
            break;
        }
        assert!(Instant::now() < deadline, "readyz stayed {}", r.status);
        sleep(Duration::from_millis(50));
    }
    let r = get(&server.http_url("/healthz"));
    assert_eq!(r.status, 200);
    assert_eq!(
        get_json(&server.http_url("/api/v1/server"))["shutting_down"],
        true
    );
    let metrics = get(&server.http_url("/metrics")).body;
    assert_eq!(sample(&metrics, "tincan_ready"), Some(0.0));
}
