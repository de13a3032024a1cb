//! Writes the seed corpora and regression inputs (see docs/fuzzing.md).
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --no-default-features
//!  --example make_seeds -- fuzz/captures fuzz`
//!
//! reads the client recordings `fuzz/capture-clients` made and writes
//! `fuzz/corpus/<target>/seed-*` and `fuzz/regressions/<target>/*`.
//! Seeds made from captures are named after the client; fuzzer-found
//! corpus entries (named by hash) are left alone.

use std::fs;
use std::path::Path;

use tincan_fuzz::seed;

fn write(root: &Path, dir: &str, target: &str, name: &str, bytes: &[u8]) {
    let d = root.join(dir).join(target);
    fs::create_dir_all(&d).expect("creating the corpus directory");
    fs::write(d.join(name), bytes).expect("writing a seed");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let captures = Path::new(args.get(1).map_or("fuzz/captures", String::as_str));
    let root = Path::new(args.get(2).map_or("fuzz", String::as_str));
    let mut clients: Vec<String> = fs::read_dir(captures)
        .expect("reading the captures directory (run fuzz/capture-clients first)")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".c2s").map(str::to_owned))
        .collect();
    clients.sort();
    let load = |name: &str, dir: &str| {
        let bytes = fs::read(captures.join(format!("{name}.{dir}"))).unwrap_or_default();
        seed::parse_capture(&bytes)
    };
    for client in &clients {
        let c2s = load(client, "c2s");
        let s2c = load(client, "s2c");
        let seed = |t: &str, suffix: &str, bytes: &[u8]| {
            write(root, "corpus", t, &format!("seed-{client}-{suffix}"), bytes);
        };
        seed(
            "handshake",
            "server-side",
            &seed::handshake_seed(false, &c2s),
        );
        seed(
            "handshake",
            "client-side",
            &seed::handshake_seed(true, &s2c),
        );
        seed(
            "chunk_decoder",
            "c2s",
            &seed::chunk_decoder_seed(&c2s, 0, 12 * 1024),
        );
        seed(
            "chunk_decoder",
            "s2c",
            &seed::chunk_decoder_seed(&s2c, 2500, 8 * 1024),
        );
        seed(
            "session",
            "loopback",
            &seed::session_seed(false, &c2s, 16 * 1024),
        );
        for (dir, reads) in [("c2s", &c2s), ("s2c", &s2c)] {
            let msgs = seed::messages(reads);
            for (target, inputs) in seed::message_seeds(&msgs, 2048) {
                for (i, input) in inputs.iter().enumerate() {
                    seed(target, &format!("{dir}-{i:02}"), input);
                }
            }
        }
    }
    // Whole-server seeds: each publisher with each client's player.
    for client in &clients {
        let Some(base) = client.strip_suffix("-play") else {
            continue;
        };
        let publisher = load(&format!("{base}-publish"), "c2s");
        let player = load(client, "c2s");
        if publisher.is_empty() {
            continue;
        }
        let bytes = seed::server_seed(&publisher, &player, 24 * 1024);
        write(
            root,
            "corpus",
            "server",
            &format!("seed-{base}-publish-and-play"),
            &bytes,
        );
    }
    write(
        root,
        "corpus",
        "server",
        "seed-tc-relay-broadcast-watch",
        &seed::server_tc_seed(),
    );
    for (name, bytes) in seed::server_decision_seeds() {
        write(root, "corpus", "server", &format!("seed-{name}"), &bytes);
    }
    write(
        root,
        "corpus",
        "session",
        "seed-tc-messaging",
        &seed::session_tc_seed(),
    );
    for (name, bytes) in seed::broker_seeds() {
        write(root, "corpus", "broker", &format!("seed-{name}"), &bytes);
    }
    for (name, bytes) in seed::client_seeds() {
        write(root, "corpus", "client", &format!("seed-{name}"), &bytes);
    }
    for (name, bytes) in seed::amf3_seeds() {
        write(root, "corpus", "amf3", &format!("seed-{name}"), &bytes);
    }
    for (name, bytes) in tincan_fuzz::tc_rtws_seeds() {
        write(root, "corpus", "tc_rtws", &format!("seed-{name}"), &bytes);
    }
    for (name, bytes) in tincan_fuzz::rtws_seeds() {
        write(root, "corpus", "rtws", &format!("seed-{name}"), &bytes);
    }
    for (target, name, bytes) in seed::regressions() {
        write(root, "regressions", target, name, &bytes);
    }
}
