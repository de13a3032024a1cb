//! Helpers of the relay tests: nginx-rtmp from Debian's packages as a
//! destination, started unprivileged with its own prefix and port, and
//! `tincan` servers with a configuration file of relays.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::ChildGuard;

/// Where Debian's `libnginx-mod-rtmp` puts the module.
pub const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// A free loopback port (free when picked).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Waits until something accepts on loopback `port`.
pub fn wait_listening(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// An nginx with the RTMP module serving App `live` (`live on`) on a
/// loopback port of its own; one process (no master, no daemon), so it
/// runs as whoever runs the test and is killed on drop.
#[derive(Debug)]
pub struct Nginx {
    _child: ChildGuard,
    /// Its RTMP port.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts it and waits until it listens.
    pub fn start() -> Nginx {
        let nginx = crate::require_tool("nginx");
        assert!(
            Path::new(RTMP_MODULE).is_file(),
            "libnginx-mod-rtmp is not installed: run scripts/test, which installs it"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        let prefix = dir.path().display().to_string();
        std::fs::write(
            &conf,
            format!(
                "load_module {RTMP_MODULE};\n\
                 daemon off;\nmaster_process off;\nworker_processes 1;\n\
                 pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n\
                 events {{ worker_connections 128; }}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
                   application live {{ live on; }} }} }}\n"
            ),
        )
        .expect("write nginx.conf");
        let child = ChildGuard::spawn(
            Command::new(nginx)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let n = Nginx {
            _child: child,
            port,
            dir,
        };
        assert!(
            wait_listening(port, Duration::from_secs(10)),
            "nginx did not start:\n{}",
            n.logs()
        );
        n
    }

    /// `rtmp://127.0.0.1:PORT/live/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }

    /// Its error log, for failure messages.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// A configuration file in a temp dir of its own (kept while this lives).
#[derive(Debug)]
pub struct ConfigFile {
    /// Its path.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ConfigFile {
    /// Writes `text` as `tincan.toml`.
    pub fn new(text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tincan.toml");
        std::fs::write(&path, text).expect("write the configuration file");
        ConfigFile { path, _dir: dir }
    }

    /// The path as an argument.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temp path")
    }
}
