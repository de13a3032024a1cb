//! The Go RTMP server's event callback (CALLBACK_URL, JWT_SECRET) against
//! the real binary and a real HTTP endpoint in the test: the `start` and
//! `stop` events' JWT verified with the jsonwebtoken crate (signature and
//! every claim), acceptance with a `stream-id`, each kind of refusal, the
//! timeout, and `stop` after a clean end (FFmpeg finishing), a kill -9 of
//! FFmpeg and a TCP reset.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tincan_tests::access::{
    feed, free_port, lo, publish_from, Endpoint, Reply, Request, Tincan, STEP,
};
use tincan_tests::require_tool;
use tincan_tests::server::{publish_args, x264, Client, Output};

const SECRET: &str = "test-secret-of-the-callback";

/// The verified claims of a request's `rtmp-event` header.
fn claims(r: &Request) -> serde_json::Map<String, Value> {
    assert_eq!(r.method, "POST");
    assert_eq!(r.body.len(), 0, "the body is empty");
    let token = r.headers.get("rtmp-event").expect("an rtmp-event header");
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp", "sub"]);
    v.sub = Some("rtmp_event".into());
    let data = decode::<serde_json::Map<String, Value>>(
        token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )
    .expect("a JWT signed with JWT_SECRET");
    assert_eq!(data.header.alg, Algorithm::HS256);
    // A token signed with another secret does not verify.
    assert!(decode::<Value>(token, &DecodingKey::from_secret(b"other"), &v).is_err());
    let c = data.claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = c["exp"].as_u64().expect("exp");
    assert!(exp > now && exp <= now + 130, "exp {exp} vs now {now}");
    c
}

fn event(r: &Request) -> String {
    claims(r)["event"].as_str().unwrap_or_default().to_owned()
}

fn go(endpoint: &Endpoint, extra: &[(&str, &str)]) -> Tincan {
    let url = endpoint.url("/rtmp-events");
    let mut env = vec![("CALLBACK_URL", url.as_str()), ("JWT_SECRET", SECRET)];
    env.extend_from_slice(extra);
    Tincan::start(&["--profile", "go-rtmp-server"], &env)
}

/// Answers `start` with 200 and a stream id made of the channel and key.
fn accept_all(r: &Request) -> Reply {
    let c = claims(r);
    let id = format!(
        "sid-{}-{}",
        c["channel"].as_str().unwrap(),
        c["key"].as_str().unwrap()
    );
    Reply::status(200).header("stream-id", &id)
}

fn stop_for(endpoint: &Endpoint, stream_id: &str) -> Option<Request> {
    endpoint.wait_for(STEP, |r| {
        let c = claims(r);
        c["event"] == "stop" && c["stream_id"] == stream_id
    })
}

#[test]
fn start_and_stop_carry_every_claim_and_the_accepted_stream_id() {
    let endpoint = Endpoint::start(accept_all);
    let server = go(&endpoint, &[]);
    let (mut c, stream, (code, why)) = publish_from(lo(7), server.v4(), "chan-1", "key_A").unwrap();
    assert_eq!(code, "NetStream.Publish.Start", "{why}");
    feed(&mut c, stream, 0);
    let start = &endpoint.requests()[0];
    assert_eq!(start.path, "/rtmp-events");
    let claims_start = claims(start);
    assert_eq!(claims_start["sub"], "rtmp_event");
    assert_eq!(claims_start["event"], "start");
    assert_eq!(claims_start["channel"], "chan-1");
    assert_eq!(claims_start["key"], "key_A");
    assert_eq!(claims_start["client_ip"], "127.0.0.7");
    assert!(
        !claims_start.contains_key("stream_id"),
        "no stream_id for start"
    );

    // A clean end (the client unpublishes and leaves): stop with the id.
    c.close();
    let stop = stop_for(&endpoint, "sid-chan-1-key_A").expect("a stop event");
    let s = claims(&stop);
    assert_eq!(s["sub"], "rtmp_event");
    assert_eq!(s["channel"], "chan-1");
    assert_eq!(s["key"], "key_A");
    assert_eq!(s["client_ip"], "127.0.0.7");
    // Exactly one stop.
    std::thread::sleep(Duration::from_millis(500));
    let stops = endpoint
        .requests()
        .iter()
        .filter(|r| event(r) == "stop")
        .count();
    assert_eq!(stops, 1);

    // A reset without any goodbye: stop all the same.
    let (mut c, stream, (code, _)) = publish_from(lo(8), server.v4(), "chan-2", "k").unwrap();
    assert_eq!(code, "NetStream.Publish.Start");
    feed(&mut c, stream, 0);
    c.reset();
    stop_for(&endpoint, "sid-chan-2-k").expect("a stop event after a reset");
    // Secrets and tokens never reach the log.
    let logs = server.logs();
    let token = endpoint.requests()[0].headers["rtmp-event"].clone();
    assert!(!logs.contains(SECRET) && !logs.contains(&token), "{logs}");
}

#[test]
fn ffmpeg_publishes_once_accepted_and_stop_follows_its_end_or_its_kill() {
    let ffmpeg = require_tool("ffmpeg");
    let endpoint = Endpoint::start(accept_all);
    let server = go(&endpoint, &[]);
    let publish = |channel: &str, seconds: u32| {
        let args = publish_args(
            &server.url(channel, "obs-key"),
            25,
            seconds,
            &x264(25).iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        );
        Client::spawn("ffmpeg", Command::new(&ffmpeg).args(&args), Output::Ignore)
    };
    // Ends by itself after 2 s: a clean end.
    let mut clean = publish("clean", 2);
    assert!(
        clean
            .wait_exit(Duration::from_secs(20))
            .is_some_and(|s| s.success()),
        "{}",
        clean.stderr()
    );
    stop_for(&endpoint, "sid-clean-obs-key").expect("stop after FFmpeg finished");

    // Killed with SIGKILL while live.
    let mut killed = publish("killed", 60);
    endpoint
        .wait_for(STEP, |r| claims(r)["channel"] == "killed")
        .expect("a start event");
    std::thread::sleep(Duration::from_secs(1));
    assert!(killed.is_running(), "{}", killed.stderr());
    killed.kill();
    stop_for(&endpoint, "sid-killed-obs-key").expect("stop after kill -9");
}

#[test]
fn refusals_say_why_and_close_the_publisher() {
    let endpoint = Endpoint::start(|r| match claims(r)["key"].as_str() {
        Some("slow") => Reply::status(200)
            .header("stream-id", "late")
            .after(Duration::from_secs(6)),
        Some("good") => Reply::status(200).header("stream-id", "s1"),
        _ => Reply::status(403).body("nope"),
    });
    let server = go(&endpoint, &[("TINCAN_ACCESS_CALLBACK_TIMEOUT", "1.5")]);
    // Any status but 200 refuses: the key is invalid, and the connection
    // is closed.
    let (mut c, _, (code, why)) = publish_from(lo(2), server.v4(), "ch", "bad").unwrap();
    assert_eq!(code, "NetStream.Publish.BadName", "{why}");
    assert!(
        why.contains("invalid stream key") && why.contains("403"),
        "{why}"
    );
    assert!(c.wait_eof(STEP), "the refused publisher was not closed");
    // No answer in time: refused with a status that says so.
    let t = Instant::now();
    let (mut c, _, (code, why)) = publish_from(lo(2), server.v4(), "ch", "slow").unwrap();
    assert_eq!(code, "NetStream.Publish.Denied", "{why}");
    assert!(why.contains("no answer within"), "{why}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(c.wait_eof(STEP));
    // A refused start holds nothing: the channel still takes a publisher.
    let (_c, _, (code, why)) = publish_from(lo(2), server.v4(), "ch", "good").unwrap();
    assert_eq!(code, "NetStream.Publish.Start", "{why}");
    // No stop for publishes that never started.
    std::thread::sleep(Duration::from_millis(300));
    assert!(endpoint.requests().iter().all(|r| event(r) == "start"));

    // An unreachable callback refuses too.
    let dead = format!("http://127.0.0.1:{}/", free_port());
    let server = Tincan::start(
        &["--profile", "go-rtmp-server"],
        &[("CALLBACK_URL", &dead), ("JWT_SECRET", SECRET)],
    );
    let (mut c, _, (code, why)) = publish_from(lo(2), server.v4(), "ch", "k").unwrap();
    assert_eq!(code, "NetStream.Publish.Denied", "{why}");
    assert!(why.contains("unreachable"), "{why}");
    assert!(c.wait_eof(STEP));
    // The default timeout is 10 s (and is never "forever").
    let c = Tincan::print_config(&["--profile", "go-rtmp-server"], &[]);
    assert!(c.contains("callback_timeout = 10  # default"), "{c}");
}
