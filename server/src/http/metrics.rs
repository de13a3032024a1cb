//! `GET /metrics` in the Prometheus text exposition format (0.0.4).
//!
//! Written by hand from live state at each scrape rather than through a
//! metrics crate: every value is the core's server-wide totals
//! (`Handle::totals`), a total the tracker keeps from the server's events,
//! or a reading of the statistics getters, so there is no registry to keep
//! in step. Per-stream series are produced only for the
//! streams that exist at the scrape, so a stream's label set disappears
//! when it ends and cardinality follows what is live. The format is a few
//! lines (`# HELP`, `# TYPE`, `name{labels} value`, with three escapes in
//! label values); the interop test checks every line of a real scrape.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use tincan_core::stats::Totals;

use super::tracker::{CLOSE_REASONS, TRANSPORTS};
use super::Shared;

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds a scrape: one `# HELP` and `# TYPE` per family, then its samples.
#[derive(Debug, Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(k);
                self.0.push_str("=\"");
                escape_into(&mut self.0, v);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A label value as the format wants it: backslash, double quote and
/// line feed escaped (stream names are chosen by clients).
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

pub(super) async fn metrics(State(state): State<Shared>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&state)).into_response()
}

/// Requests refused, by the `reason` label of `tincan_rejections_total`
/// and the core's counter of it.
fn rejections(core: &Totals) -> [(&'static str, u64); 7] {
    [
        ("connect_rejected", core.connects_rejected),
        ("publish_taken", core.publishes_rejected_taken),
        ("publish_name", core.publishes_rejected_name),
        ("publish_limit", core.publishes_rejected_limit),
        ("publish_denied", core.publishes_rejected_denied),
        ("play_limit", core.plays_rejected_limit),
        ("play_denied", core.plays_rejected_denied),
    ]
}

/// Connections refused at accept, by the `reason` label of
/// `tincan_connections_refused_total`.
fn refusals(core: &Totals) -> [(&'static str, u64); 3] {
    [
        ("shutting_down", core.refused_shutting_down),
        ("connection_limit", core.refused_connection_limit),
        ("per_address_limit", core.refused_per_address_limit),
    ]
}

fn render(state: &Shared) -> String {
    // The core's totals before the connections: a connection that closes
    // between the two reads is then in neither (never in both), so a sum
    // of closed and live counts undercounts for one scrape at worst, and
    // the tracker's high-water mark keeps it from going down.
    let core = state.handle.totals();
    let conns = state.handle.connections();
    let mut streams = state.handle.streams();
    streams.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
    let events_dropped = state.handle.events_dropped();
    let relay_targets = state.relays.targets();
    let relay_retries = state.relays.retries_total();
    let relay_pulls = state.relays.pulls();
    let mut t = Text::default();
    let mut tracker = state.tracker.lock();
    let traffic = tracker.traffic(&conns);
    let aborts = tracker.aborts(core.closed_aborts, &conns);
    let totals = &tracker.totals;

    t.family("tincan_info", "gauge", "Build information: always 1.");
    t.sample("tincan_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    t.single(
        "tincan_uptime_seconds",
        "gauge",
        "Seconds since the HTTP API started (with the server).",
        format!("{:.3}", state.started.elapsed().as_secs_f64()),
    );
    t.single(
        "tincan_ready",
        "gauge",
        "1 while new clients are welcome, 0 once a shutdown started.",
        u8::from(!state.readiness.is_shutting_down()),
    );

    t.family(
        "tincan_connections_opened_total",
        "counter",
        "Connections accepted (or dialed, or opened from code), by transport.",
    );
    // The core's `opened` is indexed in TRANSPORTS' order.
    for (i, tr) in TRANSPORTS.iter().enumerate() {
        t.sample(
            "tincan_connections_opened_total",
            &[("transport", tr.as_str())],
            core.opened[i],
        );
    }
    t.family(
        "tincan_connections_refused_total",
        "counter",
        "Connections refused at accept, by why (a shutdown, the connection limit, the per-address limit).",
    );
    for (reason, n) in refusals(&core) {
        t.sample("tincan_connections_refused_total", &[("reason", reason)], n);
    }
    t.family(
        "tincan_connections",
        "gauge",
        "Connections served now, by transport.",
    );
    for tr in TRANSPORTS {
        let n = conns.iter().filter(|(_, c)| c.transport == tr).count();
        t.sample("tincan_connections", &[("transport", tr.as_str())], n);
    }
    t.family(
        "tincan_connections_closed_total",
        "counter",
        "Connections closed, by why (socket_error: the socket failed while the session was open).",
    );
    for reason in CLOSE_REASONS {
        let n = totals.closes.get(reason).copied().unwrap_or(0);
        t.sample("tincan_connections_closed_total", &[("reason", reason)], n);
    }
    t.single(
        "tincan_handshake_failures_total",
        "counter",
        "Connections closed because the RTMP handshake failed (bad version, deadline).",
        core.handshake_failures,
    );
    t.family(
        "tincan_rejections_total",
        "counter",
        "Requests refused, by reason: connect_rejected (token, App or embedder), publish_taken \
         (name live at an equal or higher priority), publish_name, publish_limit (stream limit), \
         publish_denied (embedder), play_limit (name or stream limit), play_denied (embedder).",
    );
    for (reason, n) in rejections(&core) {
        t.sample("tincan_rejections_total", &[("reason", reason)], n);
    }
    t.single(
        "tincan_publishes_total",
        "counter",
        "Publishes that went live.",
        core.publishes,
    );
    t.single(
        "tincan_plays_total",
        "counter",
        "Plays accepted.",
        core.plays,
    );
    t.single(
        "tincan_received_bytes_total",
        "counter",
        "Bytes read from every connection (on the wire).",
        traffic.bytes_in,
    );
    t.single(
        "tincan_sent_bytes_total",
        "counter",
        "Bytes written to every connection (on the wire).",
        traffic.bytes_out,
    );
    t.single(
        "tincan_realtime_dropped_frames_total",
        "counter",
        "Media frames the real-time policy abandoned for slow players.",
        traffic.dropped_frames,
    );
    t.single(
        "tincan_realtime_dropped_bytes_total",
        "counter",
        "Payload bytes of those frames.",
        traffic.dropped_bytes,
    );
    t.single(
        "tincan_aborts_total",
        "counter",
        "Messages abandoned part way with an RTMP Abort (the real-time policy's finish-by margin ran out).",
        aborts,
    );
    t.single(
        "tincan_events_dropped_total",
        "counter",
        "Server events the metrics never saw because they fell behind; closes by reason and bytes undercount by them.",
        events_dropped,
    );
    drop(tracker);

    if let Some(registry) = &state.cluster {
        let c = registry.counters();
        t.single(
            "tincan_cluster_redis_up",
            "gauge",
            "1 while the cluster registry's Redis answers, 0 while it is away (static origins only).",
            u8::from(c.redis_up),
        );
        t.single(
            "tincan_cluster_announce_errors_total",
            "counter",
            "Heartbeats and announcements to the cluster registry that failed (on an origin, connection attempts too).",
            c.announce_errors,
        );
        t.single(
            "tincan_cluster_announced_streams",
            "gauge",
            "Streams this node announces as their origin now.",
            c.announced,
        );
        t.family(
            "tincan_cluster_lookups_total",
            "counter",
            "Origin lookups in the cluster registry (pulls starting, the API), by result: found, none (no live origin), error (Redis away).",
        );
        for (result, n) in ["found", "none", "error"].iter().zip(c.lookups) {
            t.sample("tincan_cluster_lookups_total", &[("result", result)], n);
        }
    }

    t.single(
        "tincan_streams",
        "gauge",
        "Streams that exist now (published or waited for).",
        streams.len(),
    );
    t.single(
        "tincan_publishers",
        "gauge",
        "Streams being published now.",
        streams.iter().filter(|s| s.publisher.is_some()).count(),
    );
    t.single(
        "tincan_subscribers",
        "gauge",
        "Players subscribed to any stream now.",
        streams.iter().map(|s| s.subscribers).sum::<usize>(),
    );

    // Per stream: only streams with a plain name (one only `sha256:`
    // players wait for has none to label with).
    let named: Vec<_> = streams
        .iter()
        .filter_map(|s| s.name.as_deref().map(|n| (s, n)))
        .collect();
    t.family(
        "tincan_stream_received_bytes_total",
        "counter",
        "Media payload bytes a stream received from its publishers; the series ends with the stream.",
    );
    for (s, name) in &named {
        let labels = [("app", s.app.as_str()), ("name", *name)];
        t.sample("tincan_stream_received_bytes_total", &labels, s.input.bytes);
    }
    t.family(
        "tincan_stream_sent_bytes_total",
        "counter",
        "Media payload bytes a stream handed to its players; the series ends with the stream.",
    );
    for (s, name) in &named {
        let labels = [("app", s.app.as_str()), ("name", *name)];
        t.sample("tincan_stream_sent_bytes_total", &labels, s.output.bytes);
    }
    t.family(
        "tincan_stream_subscribers",
        "gauge",
        "Players subscribed to a stream now.",
    );
    for (s, name) in &named {
        let labels = [("app", s.app.as_str()), ("name", *name)];
        t.sample("tincan_stream_subscribers", &labels, s.subscribers);
    }
    t.family(
        "tincan_stream_bitrate_in_bps",
        "gauge",
        "Bits per second a stream received over the last 5 seconds.",
    );
    for (s, name) in &named {
        let labels = [("app", s.app.as_str()), ("name", *name)];
        t.sample("tincan_stream_bitrate_in_bps", &labels, s.bitrate_in);
    }
    relay_metrics(&mut t, &relay_targets, relay_retries);
    pull_metrics(&mut t, &relay_pulls);
    t.0
}

/// Pull relays: pulled streams by state, and per stream its players,
/// bytes and failovers.
fn pull_metrics(t: &mut Text, pulls: &[crate::relay::PullView]) {
    t.family(
        "tincan_relay_pulls",
        "gauge",
        "Streams pulled from an origin, by state now.",
    );
    for state in ["connecting", "live", "retrying"] {
        let n = pulls.iter().filter(|p| p.state == state).count();
        t.sample("tincan_relay_pulls", &[("state", state)], n);
    }
    t.family(
        "tincan_relay_pull_received_bytes_total",
        "counter",
        "Bytes read from origins for a pulled stream; the series ends with the pull.",
    );
    for p in pulls {
        let labels = [("app", p.app.as_str()), ("name", p.name.as_str())];
        t.sample(
            "tincan_relay_pull_received_bytes_total",
            &labels,
            p.bytes_received,
        );
    }
    t.family(
        "tincan_relay_pull_failovers_total",
        "counter",
        "Times a pulled stream moved to another origin after media had flowed.",
    );
    for p in pulls {
        let labels = [("app", p.app.as_str()), ("name", p.name.as_str())];
        t.sample("tincan_relay_pull_failovers_total", &labels, p.failovers);
    }
}

/// Push relays: targets by state, and per target (labelled by its id and
/// local stream; the destination URL holds a stream key, so it is in the
/// API, not in labels) its bytes and drops.
fn relay_metrics(t: &mut Text, targets: &[crate::relay::TargetView], retries: u64) {
    t.family(
        "tincan_relay_push_targets",
        "gauge",
        "Push relay targets (source stream x destination) by state now.",
    );
    for state in ["connecting", "live", "retrying"] {
        let n = targets.iter().filter(|x| x.state == state).count();
        t.sample("tincan_relay_push_targets", &[("state", state)], n);
    }
    t.single(
        "tincan_relay_push_retries_total",
        "counter",
        "Push relay connections scheduled for another attempt after a failure.",
        retries,
    );
    t.family(
        "tincan_relay_push_sent_bytes_total",
        "counter",
        "Bytes written to a push destination over all its connections; the series ends with the source stream.",
    );
    for x in targets {
        let id = x.id.to_string();
        let labels = [
            ("target", id.as_str()),
            ("app", x.app.as_str()),
            ("name", x.name.as_str()),
        ];
        t.sample("tincan_relay_push_sent_bytes_total", &labels, x.bytes_sent);
    }
    t.family(
        "tincan_relay_push_dropped_frames_total",
        "counter",
        "Frames dropped because a push destination read slower than real time.",
    );
    for x in targets {
        let id = x.id.to_string();
        let labels = [
            ("target", id.as_str()),
            ("app", x.app.as_str()),
            ("name", x.name.as_str()),
        ];
        t.sample(
            "tincan_relay_push_dropped_frames_total",
            &labels,
            x.frames_dropped,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut t = Text::default();
        t.sample("m", &[("name", "a\"b\\c\nd")], 1);
        assert_eq!(t.0, "m{name=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
