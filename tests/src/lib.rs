//! Shared helpers for tincan's cross-runtime conformance, simulation and
//! interop tests.
//!
//! [`conformance`] is the suite every runtime must pass, written once and
//! instantiated per runtime in `tests/conformance_<runtime>.rs`.
//!
//! The interop tests run real clients (FFmpeg, rtmpdump, GStreamer) as child
//! processes against listeners on loopback. `scripts/test` installs those
//! clients; a test that cannot find one fails with a message saying so
//! rather than silently passing.

#![forbid(unsafe_code)]

pub mod abuse;
pub mod access;
pub mod conformance;
pub mod http;
pub mod relay;
pub mod server;
pub mod sim;
pub mod tc_client;
pub mod tls;
pub mod wire;

use std::path::PathBuf;
use std::process::{Child, Command};

/// Finds a client program on `PATH`, failing the test with instructions when
/// it is missing (a skipped interop test would prove nothing).
pub fn require_tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: run scripts/test, which installs the interop clients"
            )
        })
}

/// A child process that is killed when the test ends, pass or fail, so a
/// stuck client never outlives its test.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `cmd`, failing the test if it cannot start.
    pub fn spawn(cmd: &mut Command) -> Self {
        ChildGuard(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        )
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
