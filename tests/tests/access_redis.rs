//! Redis control commands (REDIS_USE, REDIS_HOST, REDIS_PORT,
//! REDIS_PASSWORD, REDIS_CHANNEL) with a real `redis-server` started by
//! the test: each command ends exactly the publish it names; Redis down at
//! start, killed and restarted mid-run never stops RTMP, and commands work
//! again within seconds of its return.

use std::time::Duration;

use tincan_tests::access::{feed, lo, publish_from, status, Endpoint, Redis, Reply, Tincan};
use tincan_tests::tc_client::TcClient;

const SECRET: &str = "redis-test-secret";
const CHANNEL: &str = "rtmp_commands";

/// A callback naming each publish `id-CHANNEL-KEY`.
fn callback() -> Endpoint {
    Endpoint::start(|r| {
        let token = &r.headers["rtmp-event"];
        let payload = token.split('.').nth(1).unwrap();
        let json = base64url(payload);
        let c: serde_json::Value = serde_json::from_slice(&json).unwrap();
        Reply::status(200).header(
            "stream-id",
            &format!(
                "id-{}-{}",
                c["channel"].as_str().unwrap(),
                c["key"].as_str().unwrap()
            ),
        )
    })
}

/// Base64url without padding (the JWT's payload), decoded by hand: the
/// claims' signature is the callback tests' business.
fn base64url(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        acc = (acc << 6) | u32::from(val(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn server(endpoint: &Endpoint, redis: &Redis, extra: &[(&str, &str)]) -> Tincan {
    let url = endpoint.url("/");
    let port = redis.port.to_string();
    let mut env = vec![
        ("CALLBACK_URL", url.as_str()),
        ("JWT_SECRET", SECRET),
        ("REDIS_USE", "YES"),
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", port.as_str()),
        ("REDIS_CHANNEL", CHANNEL),
    ];
    env.extend_from_slice(extra);
    Tincan::start(&["--profile", "go-rtmp-server"], &env)
}

fn live(server: &Tincan, channel: &str, key: &str) -> TcClient {
    let (mut c, stream, (code, why)) = publish_from(lo(1), server.v4(), channel, key).unwrap();
    assert_eq!(code, "NetStream.Publish.Start", "{why}");
    feed(&mut c, stream, 0);
    c
}

/// The description of the status that told the publisher its publish
/// ended (within the tests' step time), if it was.
fn ended(c: &mut TcClient) -> Option<String> {
    status(c, "NetStream.Publish.Denied").map(|(_, why)| why)
}

fn not_ended(c: &mut TcClient) {
    c.read_for(Duration::from_millis(700));
    assert!(
        !c.received()
            .iter()
            .any(|m| tincan_tests::tc_client::status_code(m) == Some("NetStream.Publish.Denied")),
        "a publish that no command named was ended"
    );
}

#[test]
fn commands_end_exactly_the_publish_they_name() {
    let redis = Redis::start();
    let endpoint = callback();
    let server = server(&endpoint, &redis, &[]);
    assert!(
        redis.wait_subscribed(CHANNEL, Duration::from_secs(10)),
        "{}",
        server.logs()
    );
    let mut a = live(&server, "cha", "ka");
    let mut b = live(&server, "chb", "kb");
    let mut c = live(&server, "chc", "kc");

    // A wrong stream id, an unknown channel, garbage: nothing ends.
    for msg in [
        "close-stream>cha|id-cha-WRONG",
        "kill-session>nobody",
        "reboot>now",
        "close-stream>chb",
    ] {
        assert_eq!(redis.publish(CHANNEL, msg), 1);
    }
    not_ended(&mut a);
    not_ended(&mut b);
    not_ended(&mut c);

    // close-stream with the callback's id ends that publish only.
    redis.publish(CHANNEL, "close-stream>cha|id-cha-ka");
    let why = ended(&mut a).expect("cha ended");
    assert!(why.contains("control command"), "{why}");
    not_ended(&mut b);
    not_ended(&mut c);

    // kill-session ends the channel's publish.
    redis.publish(CHANNEL, "kill-session>chb");
    ended(&mut b).expect("chb ended");
    not_ended(&mut c);
    // The ended publishes were told `stop` with their ids.
    for id in ["id-cha-ka", "id-chb-kb"] {
        endpoint
            .wait_for(Duration::from_secs(5), |r| {
                let p = base64url(r.headers["rtmp-event"].split('.').nth(1).unwrap());
                let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
                v["event"] == "stop" && v["stream_id"] == id
            })
            .expect("stop after a command");
    }
}

#[test]
fn redis_down_at_start_and_restarted_never_stops_rtmp() {
    let mut redis = Redis::not_started();
    let endpoint = callback();
    let server = server(&endpoint, &redis, &[]);
    // RTMP works without Redis.
    let mut a = live(&server, "cha", "ka");
    // Redis comes up: the subscription follows within seconds.
    redis.restart();
    assert!(
        redis.wait_subscribed(CHANNEL, Duration::from_secs(5)),
        "{}",
        server.logs()
    );
    redis.publish(CHANNEL, "kill-session>cha");
    ended(&mut a).expect("command after Redis came up");

    // Redis dies mid-run (kill -9) and returns: RTMP goes on meanwhile,
    // and commands work again within seconds.
    redis.kill();
    let mut b = live(&server, "chb", "kb");
    std::thread::sleep(Duration::from_secs(1));
    redis.restart();
    assert!(
        redis.wait_subscribed(CHANNEL, Duration::from_secs(5)),
        "{}",
        server.logs()
    );
    redis.publish(CHANNEL, "kill-session>chb");
    ended(&mut b).expect("command after Redis returned");
}

#[test]
fn a_password_protected_redis() {
    let redis = Redis::start();
    assert_eq!(
        redis
            .command(&["CONFIG", "SET", "requirepass", "pw-1"])
            .as_deref(),
        Some("+OK")
    );
    let endpoint = callback();
    let server = server(&endpoint, &redis, &[("REDIS_PASSWORD", "pw-1")]);
    let mut a = live(&server, "cha", "ka");
    // Subscribed (PUBSUB needs the password now: publish and watch).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Authenticate and publish on one connection.
        let reply = redis_publish_auth(&redis, "pw-1", "kill-session>cha");
        if reply == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never subscribed: {}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ended(&mut a).expect("command through a password-protected Redis");
    assert!(!server.logs().contains("pw-1"));
}

fn redis_publish_auth(redis: &Redis, password: &str, message: &str) -> u64 {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    let cmd = |args: &[&str]| {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        out
    };
    s.write_all(cmd(&["AUTH", password]).as_bytes()).unwrap();
    s.write_all(cmd(&["PUBLISH", CHANNEL, message]).as_bytes())
        .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    line.trim_end().trim_start_matches(':').parse().unwrap_or(0)
}
