//! Real components for the access-control tests (tests/tests/access_*.rs):
//! the `tincan` binary started with chosen environment variables, a tiny
//! scripted HTTP endpoint that records what it is sent, a real
//! `redis-server` on a port of its own, and RTMP clients that publish and
//! play from chosen source addresses.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::message::Message;

use crate::server::tincan_binary;
use crate::tc_client::{status_code, status_description, TcClient};
use crate::{require_tool, ChildGuard};

/// The Go RTMP server's variables: removed from every server's
/// environment, so a test sees only what it sets.
pub const GO_VARS: &[&str] = &[
    "RTMP_PORT",
    "SSL_PORT",
    "SSL_CERT",
    "SSL_KEY",
    "LOG_REQUESTS",
    "LOG_DEBUG",
    "RUST_LOG",
    "ID_MAX_LENGTH",
    "MAX_IP_CONCURRENT_CONNECTIONS",
    "CONCURRENT_LIMIT_WHITELIST",
    "RTMP_PLAY_WHITELIST",
    "CALLBACK_URL",
    "JWT_SECRET",
    "CUSTOM_JWT_SUBJECT",
    "REDIS_USE",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_CHANNEL",
    "TINCAN_PROFILE",
];

/// A free loopback TCP port (free when asked).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A `tincan serve` with chosen environment and arguments; killed on drop.
#[derive(Debug)]
pub struct Tincan {
    child: ChildGuard,
    /// The RTMP port.
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tincan {
    /// Starts `tincan serve ARGS` with `env` (and none of [`GO_VARS`]
    /// otherwise). Unless `args` or `env` choose the port (`--listen`,
    /// `RTMP_PORT`), it listens on 127.0.0.1 and ::1 on a free port.
    /// With `--listen ADDR:PORT`, PORT is the one waited for.
    /// Waits until 127.0.0.1:PORT accepts.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("tincan.log");
        // A `--listen ADDR` given: its (first address's) port.
        let listened = args
            .iter()
            .position(|a| *a == "--listen")
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                let first = v.split(',').next().unwrap_or_default();
                let port = first.rsplit(':').next().unwrap_or_default();
                port.parse::<u16>().expect("--listen ADDR:PORT")
            });
        let chosen = env
            .iter()
            .find(|(k, _)| *k == "RTMP_PORT")
            .map(|(_, v)| v.parse::<u16>().expect("RTMP_PORT is a port"))
            .or(listened);
        let port = chosen.unwrap_or_else(free_port);
        let mut cmd = Command::new(tincan_binary());
        cmd.arg("serve");
        if chosen.is_none() && !args.contains(&"--listen") {
            cmd.arg("--listen")
                .arg(format!("127.0.0.1:{port},[::1]:{port}"));
        }
        if !args.contains(&"--log") && !env.iter().any(|(k, _)| k.starts_with("LOG_")) {
            cmd.args(["--log", "info,tincan_server=debug"]);
        }
        for var in GO_VARS {
            cmd.env_remove(var);
        }
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let mut server = Tincan {
            child: ChildGuard::spawn(&mut cmd),
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.0.try_wait() {
                panic!("tincan exited ({status}):\n{}", server.logs());
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "tincan did not listen:\n{}",
                server.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `tincan serve ARGS` with `env` expecting it to refuse to
    /// start; returns its exit code and what it printed.
    pub fn refuses(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        let mut cmd = Command::new(tincan_binary());
        for var in GO_VARS {
            cmd.env_remove(var);
        }
        let out = cmd
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run tincan");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `--print-config` with `args` and `env`.
    pub fn print_config(args: &[&str], env: &[(&str, &str)]) -> String {
        let mut cmd = Command::new(tincan_binary());
        for var in GO_VARS {
            cmd.env_remove(var);
        }
        let out = cmd
            .arg("serve")
            .args(args)
            .arg("--print-config")
            .envs(env.iter().copied())
            .output()
            .expect("run tincan");
        assert!(
            out.status.success(),
            "--print-config failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's address on 127.0.0.1.
    pub fn v4(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's address on ::1.
    pub fn v6(&self) -> SocketAddr {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, self.port))
    }

    /// `rtmp://127.0.0.1:PORT/APP/NAME`.
    pub fn url(&self, app: &str, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{name}", self.port)
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// How long the RTMP steps of a test may take.
pub const STEP: Duration = Duration::from_secs(10);

/// An RTMP client from source address `from`, connected to App `app` and
/// with a stream created; `Err` with the refusal's status if `connect` was
/// refused.
pub fn connect_from(
    from: IpAddr,
    server: SocketAddr,
    app: &str,
) -> Result<(TcClient, u32), String> {
    let mut c = TcClient::connect_from(from, server, STEP)?;
    c.connect_app(app);
    let mut outcome = None;
    c.wait_for(STEP, |m| match status_code(m) {
        Some(code) if code.starts_with("NetConnection.Connect.") => {
            outcome = Some((code.to_owned(), describe(m)));
            true
        }
        _ => false,
    });
    match outcome {
        Some((code, _)) if code == "NetConnection.Connect.Success" => {}
        Some((code, why)) => return Err(format!("{code}: {why}")),
        None => return Err("no connect answer (closed)".into()),
    }
    c.create_stream();
    let mut stream = None;
    c.wait_for(STEP, |m| {
        if let Message::Command {
            command: tincan_core::message::Command::Result { args, .. },
            ..
        } = m
        {
            if let Some(n) = args.last().and_then(|v| v.as_f64()) {
                stream = Some(n as u32);
                return true;
            }
        }
        false
    });
    Ok((c, stream.ok_or("no createStream result")?))
}

fn describe(m: &Message) -> String {
    status_description(m).unwrap_or_default().to_owned()
}

/// Waits for the first `onStatus` whose code starts with `prefix`
/// (e.g. "NetStream.Publish."; a play's `Reset`, which precedes its
/// `Start`, is skipped); returns (code, description).
pub fn status(c: &mut TcClient, prefix: &str) -> Option<(String, String)> {
    let mut found = None;
    c.wait_for(STEP, |m| match status_code(m) {
        Some(code) if code.starts_with(prefix) && code != "NetStream.Play.Reset" => {
            found = Some((code.to_owned(), describe(m)));
            true
        }
        _ => false,
    });
    found
}

/// Publishes `name` from `from` to App `app`: the publish status (code,
/// description) and the client, which keeps sending a keyframe now and
/// then only when told to by [`feed`].
pub fn publish_from(
    from: IpAddr,
    server: SocketAddr,
    app: &str,
    name: &str,
) -> Result<(TcClient, u32, (String, String)), String> {
    let (mut c, stream) = connect_from(from, server, app)?;
    c.publish(stream, name);
    let st = status(&mut c, "NetStream.Publish.").ok_or("no publish status")?;
    Ok((c, stream, st))
}

/// One small AVC keyframe (sequence header then a frame), so a publish
/// carries media.
pub fn feed(c: &mut TcClient, stream: u32, timestamp: u32) {
    c.send_video(
        stream,
        timestamp,
        Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 0]),
    );
    c.send_video(
        stream,
        timestamp,
        Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]),
    );
}

/// Plays `name` from `from` in App `app`: the first play status (code,
/// description), or `Err` if connect was refused.
pub fn play_from(
    from: IpAddr,
    server: SocketAddr,
    app: &str,
    name: &str,
) -> Result<(TcClient, (String, String)), String> {
    let (mut c, stream) = connect_from(from, server, app)?;
    c.play(stream, name);
    let st = status(&mut c, "NetStream.Play.").ok_or("no play status")?;
    Ok((c, st))
}

/// `127.0.0.N`.
pub fn lo(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A request the [`Endpoint`] received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Request {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How the [`Endpoint`] answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (a slow or stuck endpoint).
    pub delay: Duration,
}

impl Reply {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: &str) -> Self {
        self.body = body.into();
        self
    }

    /// Answers after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(&Request) -> Reply + Send + Sync;

/// A tiny HTTP/1.1 server on loopback that records every request and
/// answers as its script says, one thread per connection.
pub struct Endpoint {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Arc<Script>>>,
}

impl Endpoint {
    /// Starts one answering every request with `script`.
    pub fn start(script: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind endpoint");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<Arc<Script>>> = Arc::new(Mutex::new(Arc::new(script)));
        let (r, s) = (requests.clone(), script.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (r, s) = (r.clone(), s.clone());
                thread::spawn(move || serve(conn, &r, &s));
            }
        });
        Endpoint {
            port,
            requests,
            script,
        }
    }

    /// Replaces the script.
    pub fn answer(&self, script: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until a request matches `f`, and returns it.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&Request) -> bool) -> Option<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| f(r)) {
                return Some(r);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(conn: TcpStream, requests: &Mutex<Vec<Request>>, script: &Mutex<Arc<Script>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len = headers
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Request {
            method,
            path,
            headers,
            body,
            at: Instant::now(),
        };
        requests.lock().unwrap().push(request.clone());
        let script = script.lock().unwrap().clone();
        let reply = script(&request);
        thread::sleep(reply.delay);
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&reply.body);
        if conn.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

/// A real `redis-server` on a free loopback port, killed on drop (and
/// restartable on the same port).
pub struct Redis {
    pub port: u16,
    child: Option<ChildGuard>,
}

impl Redis {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> Self {
        let mut r = Redis {
            port: free_port(),
            child: None,
        };
        r.restart();
        r
    }

    /// A port for a Redis that is not running yet.
    pub fn not_started() -> Self {
        Redis {
            port: free_port(),
            child: None,
        }
    }

    /// Starts (again) on its port.
    pub fn restart(&mut self) {
        let bin = require_tool("redis-server");
        self.child = Some(ChildGuard::spawn(
            Command::new(bin)
                .args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (kill -9: Redis going away without a goodbye).
    pub fn kill(&mut self) {
        self.child = None;
    }

    /// Sends one command; its reply's first line.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(out.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }

    /// PUBLISH; how many subscribers received it.
    pub fn publish(&self, channel: &str, message: &str) -> u64 {
        self.command(&["PUBLISH", channel, message])
            .and_then(|r| r.strip_prefix(':').and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    }

    /// Waits until `channel` has a subscriber (tincan subscribed).
    pub fn wait_subscribed(&self, channel: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut s = match TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                Ok(s) => s,
                Err(_) => {
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let cmd = format!(
                "*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n${}\r\n{channel}\r\n",
                channel.len()
            );
            let _ = s.write_all(cmd.as_bytes());
            let mut r = BufReader::new(s);
            let mut lines = Vec::new();
            for _ in 0..4 {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 {
                    break;
                }
                lines.push(l.trim_end().to_owned());
            }
            if lines.get(3).is_some_and(|n| n != ":0") {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }
}
