//! The cluster registry on a real `redis-server` started by each test,
//! with real `tincan` binaries: what an origin announces, how long it
//! lasts, what edges are told, and RTMP going on while Redis is away.
//! The registry is read with the redis crate, as any other client of it
//! would.

use std::process::Command;
use std::time::{Duration, Instant};

use tincan_tests::access::{feed, free_port, lo, play_from, publish_from, Redis, Tincan};
use tincan_tests::http::get_json;
use tincan_tests::relay::ConfigFile;
use tincan_tests::require_tool;
use tincan_tests::server::{play_args, publish_args, x264, Client, Output};
use tincan_tests::tc_client::TcClient;

/// The TTL the tests run with (short, so a dead node drops out quickly).
const TTL_MS: i64 = 3000;

/// A node of the cluster: its RTMP port is announced as
/// rtmp://127.0.0.1:PORT; it serves the HTTP API on a port of its own.
struct Node {
    tincan: Tincan,
    http: u16,
}

impl Node {
    fn start(redis: &Redis, id: &str, advertise: bool) -> Node {
        Node::start_with(redis, id, advertise, &[])
    }

    fn start_with(redis: &Redis, id: &str, advertise: bool, extra: &[&str]) -> Node {
        let port = free_port();
        let http = free_port();
        let url = format!("redis://127.0.0.1:{}", redis.port);
        let listen = format!("127.0.0.1:{port}");
        let advertised = format!("rtmp://127.0.0.1:{port}");
        let http_listen = format!("127.0.0.1:{http}");
        let mut args = vec![
            "--listen",
            &listen,
            "--http-listen",
            &http_listen,
            "--cluster-redis",
            &url,
            "--cluster-node-id",
            id,
            "--cluster-ttl",
            "3",
            "--cluster-heartbeat",
            "1",
        ];
        if advertise {
            args.extend(["--cluster-advertise", &advertised]);
        }
        args.extend_from_slice(extra);
        let node = Node {
            tincan: Tincan::start(&args, &[]),
            http,
        };
        // The HTTP API binds just after RTMP.
        assert!(eventually(Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
        }));
        node
    }

    fn api(&self, path: &str) -> serde_json::Value {
        get_json(&format!("http://127.0.0.1:{}{path}", self.http))
    }

    /// Waits until its registry connection is up.
    fn connected(&self) -> bool {
        eventually(Duration::from_secs(5), || {
            self.api("/api/v1/cluster")["redis_connected"] == true
        })
    }

    fn origins(&self, app: &str, name: &str) -> Vec<String> {
        let v = self.api(&format!("/api/v1/cluster/origins/{app}/{name}"));
        v["origins"]
            .as_array()
            .unwrap_or_else(|| panic!("no origins in {v}"))
            .iter()
            .map(|o| o["url"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn registry(redis: &Redis) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{}", redis.port))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// The nodes the registry names for a stream, with their scores.
fn members(c: &mut redis::Connection, app_name: &str) -> Vec<(String, u64)> {
    redis::cmd("ZRANGE")
        .arg(format!("tincan:stream:{app_name}"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(c)
        .unwrap()
}

fn pttl(c: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(c).unwrap()
}

fn field(c: &mut redis::Connection, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET").arg(key).arg(field).query(c).unwrap()
}

/// Polls `f` until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn publish(node: &Node, name: &str) -> TcClient {
    let (mut c, stream, (code, why)) = publish_from(lo(1), node.tincan.v4(), "live", name).unwrap();
    assert_eq!(code, "NetStream.Publish.Start", "{why}");
    feed(&mut c, stream, 0);
    c
}

#[test]
fn a_publish_is_announced_with_the_ttl_and_withdrawn_when_it_ends() {
    let redis = Redis::start();
    let a = Node::start(&redis, "node-a", true);
    let mut r = registry(&redis);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let publisher = publish(&a, "cam");

    assert!(
        eventually(Duration::from_secs(5), || !members(&mut r, "live/cam")
            .is_empty()),
        "never announced:\n{}",
        a.tincan.logs()
    );
    let m = members(&mut r, "live/cam");
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].0, "node-a");
    assert!(
        m[0].1 + 1000 >= before,
        "publish start {} before {before}",
        m[0].1
    );
    assert_eq!(
        field(&mut r, "tincan:node:node-a", "url").as_deref(),
        Some(format!("rtmp://127.0.0.1:{}", a.tincan.port).as_str())
    );
    assert_eq!(
        field(&mut r, "tincan:node:node-a", "stream:live/cam"),
        Some(m[0].1.to_string())
    );
    for key in ["tincan:node:node-a", "tincan:stream:live/cam"] {
        let t = pttl(&mut r, key);
        assert!(t > 0 && t <= TTL_MS, "{key}: PTTL {t}");
    }
    // A second node is told where the stream is.
    let b = Node::start(&redis, "node-b", false);
    assert!(b.connected());
    assert_eq!(
        b.origins("live", "cam"),
        vec![format!("rtmp://127.0.0.1:{}", a.tincan.port)]
    );

    // The publish ends: both entries go at once, the node stays.
    publisher.close();
    assert!(
        eventually(Duration::from_secs(5), || members(&mut r, "live/cam")
            .is_empty()),
        "still announced after the publish ended"
    );
    assert_eq!(field(&mut r, "tincan:node:node-a", "stream:live/cam"), None);
    assert!(field(&mut r, "tincan:node:node-a", "url").is_some());
    assert!(b.origins("live", "cam").is_empty());
}

#[test]
fn a_killed_node_drops_out_within_the_ttl() {
    let redis = Redis::start();
    let a = Node::start(&redis, "node-a", true);
    let b = Node::start(&redis, "node-b", false);
    let mut r = registry(&redis);
    let _publisher = publish(&a, "cam");
    assert!(b.connected());
    assert!(
        eventually(Duration::from_secs(5), || !b
            .origins("live", "cam")
            .is_empty()),
        "never announced:\n{}",
        a.tincan.logs()
    );
    // SIGKILL: no goodbye, only the TTL removes it.
    drop(a);
    let killed = Instant::now();
    let ttl = Duration::from_millis(TTL_MS as u64);
    let gone = eventually(ttl + Duration::from_millis(500), || {
        b.origins("live", "cam").is_empty()
    });
    eprintln!(
        "a killed origin dropped out of lookups after {} ms (TTL {TTL_MS} ms)",
        killed.elapsed().as_millis()
    );
    assert!(
        gone,
        "a dead origin still named {:?} after it died",
        killed.elapsed()
    );
    assert!(eventually(Duration::from_millis(500), || {
        let exists: i64 = redis::cmd("EXISTS")
            .arg("tincan:node:node-a")
            .arg("tincan:stream:live/cam")
            .query(&mut r)
            .unwrap();
        exists == 0
    }));
}

#[test]
fn rtmp_goes_on_while_redis_is_away_and_the_node_announces_again() {
    let mut redis = Redis::start();
    let a = Node::start(&redis, "node-a", true);
    let mut publisher = publish(&a, "cam");
    let mut r = registry(&redis);
    assert!(eventually(Duration::from_secs(5), || !members(
        &mut r, "live/cam"
    )
    .is_empty()));
    assert_eq!(a.api("/api/v1/cluster")["redis_connected"], true);

    redis.kill();
    drop(r);
    // The node notices, says so, and keeps serving RTMP: a new player gets
    // the stream's media.
    assert!(
        eventually(Duration::from_secs(5), || a.api("/api/v1/cluster")
            ["redis_connected"]
            == false),
        "{}",
        a.tincan.logs()
    );
    let (mut player, (code, why)) = play_from(lo(2), a.tincan.v4(), "live", "cam").unwrap();
    assert_eq!(code, "NetStream.Play.Start", "{why}");
    feed(&mut publisher, 1, 40);
    let mut video = 0;
    player.wait_for(Duration::from_secs(5), |m| {
        if matches!(m, tincan_core::message::Message::Video { .. }) {
            video += 1;
        }
        video >= 2
    });
    assert!(video >= 2, "the player got {video} video messages");
    let metrics = tincan_tests::http::get(&format!("http://127.0.0.1:{}/metrics", a.http));
    assert!(
        metrics.body.contains("tincan_cluster_redis_up 0"),
        "{}",
        metrics.body
    );

    // Redis returns empty: the node announces everything again.
    redis.restart();
    let mut r = registry(&redis);
    assert!(
        eventually(Duration::from_secs(6), || members(&mut r, "live/cam")
            .iter()
            .any(|(n, _)| n == "node-a")),
        "not announced again:\n{}",
        a.tincan.logs()
    );
    assert_eq!(a.api("/api/v1/cluster")["redis_connected"], true);
}

#[test]
fn the_redis_password_is_never_logged_or_shown() {
    let redis = Redis::start();
    assert_eq!(
        redis
            .command(&["CONFIG", "SET", "requirepass", "pw-cluster-1"])
            .as_deref(),
        Some("+OK")
    );
    let port = free_port();
    let http = free_port();
    let url = format!("redis://:pw-cluster-1@127.0.0.1:{}", redis.port);
    let a = Tincan::start(
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--cluster-node-id",
            "node-a",
            "--cluster-advertise",
            &format!("rtmp://127.0.0.1:{port}"),
        ],
        &[("TINCAN_CLUSTER_REDIS", &url)],
    );
    let _publisher = {
        let (mut c, stream, (code, why)) = publish_from(lo(1), a.v4(), "live", "cam").unwrap();
        assert_eq!(code, "NetStream.Publish.Start", "{why}");
        feed(&mut c, stream, 0);
        c
    };
    let mut r = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || !members(
        &mut r, "live/cam"
    )
    .is_empty()));
    let status = get_json(&format!("http://127.0.0.1:{http}/api/v1/cluster"));
    assert_eq!(status["redis_connected"], true);
    assert!(!status.to_string().contains("pw-cluster-1"), "{status}");
    assert!(!a.logs().contains("pw-cluster-1"), "{}", a.logs());
}

/// A live FFmpeg publisher of the test pattern (H.264 + AAC) to `url`.
fn ffmpeg_publisher(url: &str, seconds: u32) -> Client {
    let video = x264(25);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    let args = publish_args(url, 25, seconds, &video, &["-c:a", "aac"]);
    Client::spawn(
        "publisher",
        Command::new(require_tool("ffmpeg")).args(args),
        Output::Ignore,
    )
}

/// An FFmpeg player of `url`, one framecrc line per decoded frame.
fn ffmpeg_player(url: &str) -> Client {
    Client::spawn(
        "player",
        Command::new(require_tool("ffmpeg")).args(play_args(url, &[])),
        Output::FrameCrc,
    )
}

/// Waits until `node` has read a stream of another node from the
/// registry (a play there is then pulled).
fn knows_a_remote_stream(node: &Node) -> bool {
    eventually(Duration::from_secs(10), || {
        node.api("/api/v1/cluster")["mirrored_streams"]
            .as_u64()
            .is_some_and(|n| n > 0)
    })
}

#[test]
fn two_edges_pull_from_the_origin_the_registry_names() {
    let redis = Redis::start();
    let origin = Node::start(&redis, "origin", true);
    let edge1 = Node::start(&redis, "edge-1", false);
    let edge2 = Node::start(&redis, "edge-2", false);
    let _publisher = ffmpeg_publisher(&origin.tincan.url("live", "cam"), 60);
    assert!(knows_a_remote_stream(&edge1), "{}", edge1.tincan.logs());
    assert!(knows_a_remote_stream(&edge2), "{}", edge2.tincan.logs());
    let players = [
        ffmpeg_player(&edge1.tincan.url("live", "cam")),
        ffmpeg_player(&edge2.tincan.url("live", "cam")),
    ];
    for (player, edge) in players.iter().zip([&edge1, &edge2]) {
        let p = player.wait_for(Duration::from_secs(20), |p| p.video >= 50 && p.audio >= 50);
        assert!(
            p.video >= 50 && p.audio >= 50,
            "{}\nedge:\n{}",
            player.describe(),
            edge.tincan.logs()
        );
        // The pull found its origin in the registry.
        let metrics = tincan_tests::http::get(&format!("http://127.0.0.1:{}/metrics", edge.http));
        assert!(
            metrics
                .body
                .contains("tincan_cluster_lookups_total{result=\"found\"} 1"),
            "{}",
            metrics.body
        );
    }
}

#[test]
fn an_edge_player_that_arrives_before_the_publisher_gets_the_stream() {
    let redis = Redis::start();
    let origin = Node::start(&redis, "origin", true);
    let edge = Node::start(&redis, "edge", false);
    // The viewer is first: no origin has announced the stream yet.
    let mut player = ffmpeg_player(&edge.tincan.url("live", "cam"));
    std::thread::sleep(Duration::from_secs(2));
    let _publisher = ffmpeg_publisher(&origin.tincan.url("live", "cam"), 60);
    let p = player.wait_for(Duration::from_secs(20), |p| p.video >= 50 && p.audio >= 50);
    assert!(
        p.video >= 50 && p.audio >= 50 && player.is_running(),
        "{}\nedge:\n{}",
        player.describe(),
        edge.tincan.logs()
    );
}

/// A publisher that moves from origin A to origin B, A killed with it
/// or left running: an edge's FFmpeg player goes on decoding.
fn publisher_moves(kill_origin: bool) {
    let redis = Redis::start();
    let a = Node::start(&redis, "origin-a", true);
    let b = Node::start(&redis, "origin-b", true);
    let edge = Node::start(&redis, "edge", false);
    let mut publisher = ffmpeg_publisher(&a.tincan.url("live", "cam"), 60);
    assert!(knows_a_remote_stream(&edge), "{}", edge.tincan.logs());
    let mut player = ffmpeg_player(&edge.tincan.url("live", "cam"));
    let p = player.wait_for(Duration::from_secs(20), |p| p.video >= 50);
    assert!(p.video >= 50, "{}", player.describe());

    // The publisher leaves A (with A, or alone) and comes back on B.
    let left = Instant::now();
    publisher.kill();
    let _a = if kill_origin {
        drop(a);
        None
    } else {
        Some(a)
    };
    let before = player.progress().video;
    let _publisher = ffmpeg_publisher(&b.tincan.url("live", "cam"), 60);

    // The same player process (FFmpeg never reconnects by itself) goes
    // on decoding: two more seconds of frames from the new origin.
    let resumed = player.wait_for(Duration::from_secs(20), |p| p.video >= before + 25);
    // A measurement for the logs (`--nocapture`), never asserted.
    eprintln!(
        "{} more frames decoded {} ms after the publisher left origin A (killed: {kill_origin})",
        resumed.video.saturating_sub(before),
        left.elapsed().as_millis()
    );
    let p = player.wait_for(Duration::from_secs(20), |p| p.video >= before + 50);
    assert!(
        p.video >= before + 50 && player.is_running(),
        "{}\nedge:\n{}",
        player.describe(),
        edge.tincan.logs()
    );
    let relays = edge.api("/api/v1/relays");
    assert!(
        relays
            .to_string()
            .contains(&format!("127.0.0.1:{}", b.tincan.port)),
        "the pull is not on origin B: {relays}"
    );
}

#[test]
fn an_edge_follows_a_publisher_to_another_origin_when_the_first_dies() {
    publisher_moves(true);
}

#[test]
fn an_edge_follows_a_publisher_to_another_origin_while_the_first_lives() {
    publisher_moves(false);
}

#[test]
fn with_redis_away_an_edge_pulls_from_its_static_origins() {
    let mut redis = Redis::start();
    let origin = Node::start(&redis, "origin", true);
    let config = ConfigFile::new(&format!(
        "[[relay.pull]]\napp = \"live\"\norigins = [\"rtmp://127.0.0.1:{}/live\"]\n",
        origin.tincan.port
    ));
    let edge = Node::start_with(&redis, "edge", false, &["--config", config.arg()]);
    let _publisher = ffmpeg_publisher(&origin.tincan.url("live", "cam"), 60);
    redis.kill();
    assert!(eventually(Duration::from_secs(5), || {
        edge.api("/api/v1/cluster")["redis_connected"] == false
    }));
    let player = ffmpeg_player(&edge.tincan.url("live", "cam"));
    let p = player.wait_for(Duration::from_secs(20), |p| p.video >= 50);
    assert!(
        p.video >= 50,
        "{}\nedge:\n{}",
        player.describe(),
        edge.tincan.logs()
    );
}

#[test]
fn the_relay_node_id_names_the_node_in_the_registry() {
    let redis = Redis::start();
    let config = ConfigFile::new("[relay]\nnode_id = \"paris-1\"\n");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let advertised = format!("rtmp://127.0.0.1:{port}");
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let tincan = Tincan::start(
        &[
            "--config",
            config.arg(),
            "--listen",
            &listen,
            "--cluster-redis",
            &url,
            "--cluster-advertise",
            &advertised,
        ],
        &[],
    );
    let _publisher = {
        let (mut c, stream, (code, why)) = publish_from(lo(1), tincan.v4(), "live", "cam").unwrap();
        assert_eq!(code, "NetStream.Publish.Start", "{why}");
        feed(&mut c, stream, 0);
        c
    };
    let mut r = registry(&redis);
    assert!(
        eventually(Duration::from_secs(5), || {
            members(&mut r, "live/cam")
                .iter()
                .any(|(node, _)| node == "paris-1")
        }),
        "{:?}\n{}",
        members(&mut r, "live/cam"),
        tincan.logs()
    );
}

#[test]
fn a_relay_node_id_and_a_different_cluster_node_id_are_refused() {
    let config = ConfigFile::new("[relay]\nnode_id = \"paris-1\"\n");
    let (code, stderr) = Tincan::refuses(
        &[
            "--config",
            config.arg(),
            "--listen",
            "127.0.0.1:0",
            "--cluster-redis",
            "redis://127.0.0.1:1",
            "--cluster-node-id",
            "lyon-2",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("relay.node_id \"paris-1\" and cluster.node_id \"lyon-2\" differ"),
        "{stderr}"
    );
}

#[test]
fn an_edge_pulls_from_a_registry_origin_that_requires_a_tc_token() {
    let redis = Redis::start();
    let origin = Node::start_with(&redis, "origin", true, &["--auth-key", "supersecret"]);
    // The App-wide token of `live` under that key, as `tincan token` makes it.
    let out = Command::new(tincan_tests::server::tincan_binary())
        .args(["token", "-k", "supersecret", "live"])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let token = line.split(',').nth(2).unwrap().to_owned();
    // A rule without origins: the registry names them, the rule gives
    // them the token.
    let config = ConfigFile::new(&format!(
        "[[relay.pull]]\napp = \"live\"\ntc_token = \"{token}\"\n"
    ));
    let edge = Node::start_with(&redis, "edge", false, &["--config", config.arg()]);

    let video = x264(25);
    let video: Vec<&str> = video.iter().map(String::as_str).collect();
    let mut args = publish_args(
        &origin.tincan.url("live", "cam"),
        25,
        60,
        &video,
        &["-c:a", "aac"],
    );
    let url = args.pop().unwrap();
    args.extend(["-rtmp_conn".to_owned(), format!("S:{token}"), url]);
    let _publisher = Client::spawn(
        "publisher",
        Command::new(require_tool("ffmpeg")).args(args),
        Output::Ignore,
    );
    assert!(knows_a_remote_stream(&edge), "{}", origin.tincan.logs());
    let mut player = ffmpeg_player(&edge.tincan.url("live", "cam"));
    let p = player.wait_for(Duration::from_secs(20), |p| p.video >= 50);
    assert!(
        p.video >= 50 && player.is_running(),
        "{}\nedge:\n{}\norigin:\n{}",
        player.describe(),
        edge.tincan.logs(),
        origin.tincan.logs()
    );
    assert!(
        !edge.tincan.logs().contains(&token) && !origin.tincan.logs().contains(&token),
        "the token is never logged"
    );
}
