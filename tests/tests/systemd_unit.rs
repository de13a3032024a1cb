//! The systemd unit shipped in server/tincan.service (shown in
//! docs/operations.md) passes `systemd-analyze verify`, with its
//! `ExecStart` pointed at the `tincan` binary just built (verify checks
//! that the binary exists), and without a single warning.

use std::process::Command;

use tincan_tests::require_tool;
use tincan_tests::server::tincan_binary;

const UNIT: &str = include_str!("../../server/tincan.service");

#[test]
fn the_unit_verifies() {
    let analyze = require_tool("systemd-analyze");
    assert!(UNIT.contains("ExecStart=/usr/local/bin/tincan serve"));
    let unit = UNIT.replace(
        "/usr/local/bin/tincan",
        tincan_binary().to_str().expect("a UTF-8 path"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tincan.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Unknown keys and bad values are only warnings to verify: refuse
    // them too. (Lines about other units on the machine are not ours.)
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tincan.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze warns:\n{stderr}");
}

#[test]
fn the_unit_binds_reload_and_stop_to_the_servers_signals() {
    for line in [
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "LimitNOFILE=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "Restart=on-failure",
    ] {
        assert!(UNIT.contains(line), "{line} missing from the unit");
    }
    // Stop must outlast the graceful shutdown's deadline (300 s).
    let stop: u64 = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > 300,
        "TimeoutStopSec={stop} is not above the 300 s deadline"
    );
}
