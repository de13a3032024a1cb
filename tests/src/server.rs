//! Runs the real `tincan` binary for interop tests, and the real clients
//! around it: each test gets its own server on its own port, and clients
//! whose output is watched as it arrives (frames decoded, bytes written,
//! what they said on stderr).

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::ChildGuard;

/// The `tincan` binary of the profile these tests were built with, built
/// (or found fresh) once per test process.
pub fn tincan_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_binary("tincan-server", "tincan"))
}

/// The `tincan-bench` load tool, built (or found fresh) like
/// [`tincan_binary`].
pub fn bench_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_binary("tincan-bench", "tincan-bench"))
}

/// Builds binary `bin` of workspace package `package` with the profile these
/// tests were built with, and returns its path.
fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    // Tests run from <target>/<profile>/deps/; the binary lives in
    // <target>/<profile>/. This honours CARGO_TARGET_DIR and --release
    // without guessing.
    let exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cargo_profile = if profile == "debug" { "dev" } else { &profile };
    // Always ask cargo: it rebuilds a stale binary and is a no-op
    // otherwise, so a test never runs yesterday's build.
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .args(["--profile", cargo_profile])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .unwrap_or_else(|e| panic!("run cargo to build {bin}: {e}"));
    assert!(status.success(), "building {bin} failed");
    let path = profile_dir.join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A `tincan serve` process on a loopback port of its own, killed on drop.
#[derive(Debug)]
pub struct TestServer {
    child: ChildGuard,
    port: u16,
    /// The `--http-listen` port, for servers started with
    /// [`TestServer::start_with_http`].
    http_port: Option<u16>,
    /// The `--tls-listen` port, for servers started with
    /// [`TestServer::start_with_tls`].
    tls_port: Option<u16>,
    log: PathBuf,
    /// Holds the log; removed on drop.
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with default settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `tincan serve` arguments and waits until
    /// it accepts connections.
    pub fn start_with(args: &[&str]) -> Self {
        Self::launch(args, false, None)
    }

    /// Starts a server with extra arguments and its HTTP API on a loopback
    /// port of its own (`--http-listen`), and waits until both listen.
    pub fn start_with_http(args: &[&str]) -> Self {
        Self::launch(args, true, None)
    }

    /// Starts a server with extra arguments and an RTMPS listener on a
    /// loopback port of its own (`--tls-listen`, with `--tls-cert cert`
    /// and `--tls-key key`), and waits until both listen.
    pub fn start_with_tls(args: &[&str], cert: &Path, key: &Path) -> Self {
        Self::launch(args, false, Some((cert, key)))
    }

    /// As [`Self::start_with_tls`], with the HTTP API too.
    pub fn start_with_tls_and_http(args: &[&str], cert: &Path, key: &Path) -> Self {
        Self::launch(args, true, Some((cert, key)))
    }

    fn launch(args: &[&str], http: bool, tls: Option<(&Path, &Path)>) -> Self {
        let bin = tincan_binary();
        let mut dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("tincan.log");
        let mut last_log = String::new();
        // The port is free when we pick it, but another test could take it
        // before the server binds: a server that dies at once is retried on
        // a new port.
        for _ in 0..3 {
            let port = free_port();
            let http_port = http.then(free_port);
            let http_args = http_port
                .map(|p| vec!["--http-listen".to_owned(), format!("127.0.0.1:{p}")])
                .unwrap_or_default();
            let tls_port = tls.map(|_| free_port());
            let tls_args: Vec<std::ffi::OsString> = match (tls, tls_port) {
                (Some((cert, key)), Some(p)) => vec![
                    "--tls-listen".into(),
                    format!("127.0.0.1:{p}").into(),
                    "--tls-cert".into(),
                    cert.into(),
                    "--tls-key".into(),
                    key.into(),
                ],
                _ => Vec::new(),
            };
            let child = ChildGuard::spawn(
                Command::new(bin)
                    .arg("serve")
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .args(["--log", "info,tincan_core=debug"])
                    .args(&http_args)
                    .args(&tls_args)
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).expect("server log file")),
            );
            let mut server = TestServer {
                child,
                port,
                http_port,
                tls_port,
                log: log.clone(),
                dir,
            };
            if server.wait_ready(Duration::from_secs(10)) {
                return server;
            }
            last_log = server.logs();
            dir = server.into_dir();
        }
        panic!("tincan did not start:\n{last_log}");
    }

    fn into_dir(self) -> tempfile::TempDir {
        let TestServer { child, dir, .. } = self;
        drop(child);
        dir
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(self.child.0.try_wait(), Ok(Some(_))) {
                return false;
            }
            let up = |port| TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok();
            if up(self.port) && self.http_port.map_or(true, up) && self.tls_port.map_or(true, up) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:HTTP_PORT` + `path`, for a server started with
    /// [`TestServer::start_with_http`].
    pub fn http_url(&self, path: &str) -> String {
        let port = self.http_port.expect("started with start_with_http");
        format!("http://127.0.0.1:{port}{path}")
    }

    /// The loopback port of the RTMPS listener, for a server started with
    /// [`TestServer::start_with_tls`].
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("started with start_with_tls")
    }

    /// `rtmps://127.0.0.1:TLS_PORT/live/NAME`, for a server started with
    /// [`TestServer::start_with_tls`].
    pub fn tls_url(&self, name: &str) -> String {
        format!("rtmps://127.0.0.1:{}/live/{name}", self.tls_port())
    }

    /// Sends the server signal `name` (`HUP`, `TERM`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.child.0.id().to_string();
        let ok = Command::new("kill")
            .args(["-s", name, &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -s {name} {pid} failed");
    }

    /// `rtmp://127.0.0.1:PORT/live/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }

    /// What the server logged so far, for failure messages.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// The server's process, e.g. to signal it.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child.0
    }
}

/// `<target>/<profile>/` of these tests' build, where a test leaves files
/// for a person to look at (screenshots, example responses).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_owned()
}

/// A loopback port free when asked (another process may take it before
/// it is bound: callers that can, retry).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// FFmpeg from PyPI's `imageio-ffmpeg`, a recent build with Enhanced RTMP
/// (HEVC, AV1, Opus in FLV); installed by scripts/test.
pub fn modern_ffmpeg() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let path = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            assert!(path.is_file(), "imageio-ffmpeg names a missing {path:?}");
            path
        }
        _ => panic!(
            "imageio-ffmpeg is not installed: run scripts/test, which installs it \
             (python3 -m pip install imageio-ffmpeg)"
        ),
    }
}

/// What a watched client produced so far.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Video frames decoded.
    pub video: usize,
    /// Audio frames decoded.
    pub audio: usize,
    /// When the first video frame came out.
    pub first_video: Option<Instant>,
    /// Bytes on stdout (raw modes).
    pub bytes: u64,
    /// Stdout closed: the client finished or died.
    pub eof: bool,
}

/// How a client's stdout is read.
#[derive(Debug, Clone, Copy)]
pub enum Output {
    /// FFmpeg `-f framecrc -` with video mapped to output stream 0 and audio
    /// to 1: one line per decoded frame.
    FrameCrc,
    /// Raw video frames of this many bytes each, back to back.
    Raw {
        /// Bytes per frame.
        frame_size: u64,
    },
    /// Not read.
    Ignore,
}

/// A real client whose stdout and stderr are read as they arrive, killed on
/// drop.
#[derive(Debug)]
pub struct Client {
    child: ChildGuard,
    /// When it was started.
    pub started: Instant,
    progress: Arc<Mutex<Progress>>,
    stderr: Arc<Mutex<String>>,
    name: String,
}

impl Client {
    /// Spawns `cmd` (stdin closed, stdout and stderr piped and read).
    pub fn spawn(name: &str, cmd: &mut Command, output: Output) -> Self {
        let mut child = ChildGuard::spawn(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let progress = Arc::new(Mutex::new(Progress::default()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.0.stdout.take().expect("piped stdout");
        let err = child.0.stderr.take().expect("piped stderr");
        {
            let progress = progress.clone();
            thread::spawn(move || read_stdout(out, output, &progress));
        }
        {
            let stderr = stderr.clone();
            thread::spawn(move || read_stderr(err, &stderr));
        }
        Client {
            child,
            started: Instant::now(),
            progress,
            stderr,
            name: name.to_owned(),
        }
    }

    /// What it produced so far.
    pub fn progress(&self) -> Progress {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Everything it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until `done` holds, the client's output ends, or `timeout`;
    /// returns the last progress seen.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&Progress) -> bool) -> Progress {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.progress();
            if done(&p) || p.eof || Instant::now() >= deadline {
                return p;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit, up to `timeout`; `None` if it did not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                // Let the readers take the last of the output.
                let _ = self.wait_for(Duration::from_secs(2), |_| false);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// Kills the process at once (a crashing publisher).
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }

    /// A summary for assertion messages.
    pub fn describe(&self) -> String {
        let err = self.stderr();
        let tail: String = err
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "{} progress {:?}; stderr tail:\n{tail}",
            self.name,
            self.progress()
        )
    }
}

fn read_stdout(out: ChildStdout, mode: Output, progress: &Mutex<Progress>) {
    let update = |f: &mut dyn FnMut(&mut Progress)| {
        f(&mut progress.lock().unwrap_or_else(|e| e.into_inner()));
    };
    match mode {
        Output::FrameCrc => {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let stream = line.split(',').next().map(str::trim);
                update(&mut |p| match stream {
                    Some("0") => {
                        p.video += 1;
                        p.first_video.get_or_insert_with(Instant::now);
                    }
                    Some("1") => p.audio += 1,
                    _ => {}
                });
            }
        }
        Output::Raw { frame_size } => {
            let mut out = out;
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                update(&mut |p| {
                    p.bytes += n as u64;
                    p.video = (p.bytes / frame_size) as usize;
                    if p.video > 0 {
                        p.first_video.get_or_insert_with(Instant::now);
                    }
                });
            }
        }
        Output::Ignore => {
            let mut out = out;
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        }
    }
    update(&mut |p| p.eof = true);
}

fn read_stderr(err: ChildStderr, sink: &Mutex<String>) {
    // Bounded: a chatty client must not grow the test's memory without end.
    const MAX: usize = 1 << 20;
    for line in BufReader::new(err).lines() {
        let Ok(line) = line else { break };
        let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < MAX {
            s.push_str(&line);
            s.push('\n');
        }
    }
}

/// `ffmpeg` arguments that publish a live test pattern (`-re`, lavfi
/// `testsrc` 160x120 at `fps` plus a sine tone) for `seconds`, encoded with
/// `video` and `audio` (encoder arguments), as FLV to `url`.
pub fn publish_args(
    url: &str,
    fps: u32,
    seconds: u32,
    video: &[&str],
    audio: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-re",
        "-f",
        "lavfi",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("testsrc=size=160x120:rate={fps}"));
    if !audio.is_empty() {
        args.extend(["-re", "-f", "lavfi", "-i"].map(String::from));
        args.push("sine=frequency=440:sample_rate=48000".into());
    }
    args.extend(["-t".into(), seconds.to_string()]);
    args.extend(video.iter().map(|s| s.to_string()));
    args.extend(audio.iter().map(|s| s.to_string()));
    args.extend(["-f", "flv", url].map(String::from));
    args
}

/// libx264 arguments for a fast, small stream with a keyframe every `gop`
/// frames exactly (no scene-cut keyframes, so GOP tests are deterministic).
pub fn x264(gop: u32) -> Vec<String> {
    vec![
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "ultrafast".into(),
        "-tune".into(),
        "zerolatency".into(),
        "-pix_fmt".into(),
        "yuv420p".into(),
        "-x264-params".into(),
        format!("keyint={gop}:min-keyint={gop}:scenecut=0"),
    ]
}

/// `ffmpeg` arguments that play `input` and write one framecrc line per
/// decoded frame to stdout: video as stream 0, audio (if any) as stream 1.
/// The stream info (codecs) goes to stderr.
pub fn play_args(input: &str, extra_output: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "info",
        "-i",
        input,
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra_output.iter().map(|s| s.to_string()));
    args.extend(["-f", "framecrc", "-"].map(String::from));
    args
}
