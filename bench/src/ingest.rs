//! `tincan-bench ingest`: N publishers, each to a stream of its own, each
//! stream with one player, over real sockets.
//!
//! Where `fanout` measures what sending one stream to many costs a server,
//! this measures what taking many streams in costs: chunk reassembly,
//! per-stream state and the GOP cache for every publisher, at 2.5 Mbit/s
//! each. Each stream's one player proves the server kept up with every
//! stream, not only that it read the sockets.
//!
//! Publisher i starts `i × --join-interval-ms` after the run begins and
//! publishes NAME-i; its player joins `--warmup` seconds after that publish
//! started, so handshakes arrive at a steady rate whatever N is. The
//! publishers share one runtime on their own thread(s) (`--publisher-threads`),
//! apart from the players (`--threads`), so player work never delays
//! pacing. The window opens once every publisher publishes (or failed) and
//! every player has its first video frame (or failed), and lasts
//! `--duration` seconds.
//!
//! What counts, beyond what `fanout` counts per player (against its own
//! stream's markers): received bytes are what the publishers handed the
//! kernel inside the window, which on loopback is what the server read, give
//! or take a socket buffer; the headline figure is the server's CPU seconds
//! over the window per received GB. A publisher's lag is how late, at worst,
//! it sent a tag inside the window: a tool that cannot keep pace shows there
//! and in its own CPU, rather than as a server that lost frames.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::flv::Flv;
use super::live::{
    self, opt, Measured, PlayerResult, PlayerStats, PublishResult, RssSampler, Shared, WindowCpu,
};
use super::{parse_url, proc, quantile, IngestArgs, Json, RtmpUrl};

/// The stream name when the URL has none.
const DEFAULT_NAME: &str = "ingest";

/// Past the last publisher's start: the longest a publish may take to
/// start (the publisher gives up at 15 s), the warm-up, and a margin for a
/// first frame; past it the window opens with whoever made it.
const SETTLE_MARGIN: Duration = Duration::from_secs(25);

pub(super) fn run(args: &IngestArgs) -> Result<(), String> {
    let base = parse_url(&args.url)?;
    if args.publishers == 0 {
        return Err("--publishers must be at least 1".into());
    }
    let name = if base.stream.is_empty() {
        DEFAULT_NAME.to_owned()
    } else {
        base.stream.clone()
    };
    let urls: Vec<RtmpUrl> = (0..args.publishers)
        .map(|i| RtmpUrl {
            stream: format!("{name}-{i}"),
            ..base.clone()
        })
        .collect();
    let flv = live::load_input(&args.input)?;
    let shared = Arc::new(Shared::new(args.publishers));
    let (stop_tx, stop_rx) = watch::channel(false);
    let pids = args.measure.server_pid.map(proc::tree);
    let rss_before = pids.as_deref().map(proc::rss_kb);
    let sampler = args.measure.server_pid.map(RssSampler::start);

    let start = Instant::now();
    let interval = Duration::from_secs_f64(args.join_interval_ms.max(0.0) / 1000.0);
    let mut ready_rxs = Vec::with_capacity(args.publishers);
    let mut ready_txs = Vec::with_capacity(args.publishers);
    for _ in 0..args.publishers {
        let (tx, rx) = oneshot::channel();
        ready_txs.push(tx);
        ready_rxs.push(rx);
    }
    let publishers = {
        let (shared, stop, urls) = (Arc::clone(&shared), stop_rx.clone(), urls.clone());
        let threads = args.publisher_threads;
        std::thread::spawn(move || -> Result<Vec<PublishResult>, String> {
            let rt = live::runtime(threads)?;
            Ok(rt.block_on(publish_all(
                urls, ready_txs, start, interval, flv, shared, stop,
            )))
        })
    };

    let runtime = live::runtime(args.threads)?;
    let measured = runtime.block_on(coordinate(
        args,
        &urls,
        ready_rxs,
        (start, interval),
        &shared,
        pids.as_deref(),
        stop_tx,
        stop_rx,
    ));
    drop(runtime);
    let peak_rss = sampler.map(RssSampler::finish);
    let published = publishers
        .join()
        .map_err(|_| "the publishers' thread panicked".to_string())??;
    let report = Report::new(args, &shared, &measured, &published, rss_before, peak_rss);
    report.print(args.measure.json);
    Ok(())
}

/// Runs every publisher, each from its start time, until told to stop.
async fn publish_all(
    urls: Vec<RtmpUrl>,
    ready: Vec<oneshot::Sender<Result<Instant, String>>>,
    start: Instant,
    interval: Duration,
    flv: Arc<Flv>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Vec<PublishResult> {
    let mut handles = Vec::with_capacity(urls.len());
    for (i, (url, ready)) in urls.into_iter().zip(ready).enumerate() {
        let (flv, shared, mut stop) = (Arc::clone(&flv), Arc::clone(&shared), stop.clone());
        let at = start + interval * i as u32;
        handles.push(tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                _ = stop.changed() => {
                    shared.settled.fetch_add(1, Ordering::Relaxed);
                    let _ = ready.send(Err("the run ended before it started".into()));
                    return PublishResult::default();
                }
            }
            let settled = Arc::clone(&shared);
            live::publish(url, Some(i), i, flv, shared, stop, move |r| {
                settled.settled.fetch_add(1, Ordering::Relaxed);
                let _ = ready.send(r.map(|()| Instant::now()));
            })
            .await
        }));
    }
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(h.await.unwrap_or_else(|e| PublishResult {
            failed: Some(format!("publisher task: {e}")),
            ..PublishResult::default()
        }));
    }
    results
}

#[allow(clippy::too_many_arguments)] // one call site, each argument distinct
async fn coordinate(
    args: &IngestArgs,
    urls: &[RtmpUrl],
    ready: Vec<oneshot::Receiver<Result<Instant, String>>>,
    (start, interval): (Instant, Duration),
    shared: &Arc<Shared>,
    pids: Option<&[u32]>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
) -> Measured {
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let mut handles = Vec::with_capacity(urls.len());
    for (i, (url, ready)) in urls.iter().zip(ready).enumerate() {
        let (url, shared, stop) = (url.clone(), Arc::clone(shared), stop_rx.clone());
        handles.push(tokio::spawn(async move {
            match ready.await {
                Ok(Ok(publishing)) => {
                    live::player(i, publishing + warmup, url, i, shared, stop).await
                }
                Ok(Err(e)) => {
                    shared.settled.fetch_add(1, Ordering::Relaxed);
                    PlayerResult::failed(format!("its publisher failed: {e}"))
                }
                Err(_) => {
                    shared.settled.fetch_add(1, Ordering::Relaxed);
                    PlayerResult::failed("its publisher ended without a word".into())
                }
            }
        }));
    }
    // Every publisher and every player settled, or a bound past the last
    // start for servers that never answer some of them.
    let n = urls.len();
    let deadline = start + interval * n as u32 + warmup + SETTLE_MARGIN;
    while shared.settled.load(Ordering::Relaxed) < 2 * n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    live::measure(shared, args.duration, pids, stop_tx, handles).await
}

/// The numbers of one run.
struct Report {
    publishers: usize,
    connected: usize,
    publishing: usize,
    publishers_failed: usize,
    first_publisher_failure: Option<String>,
    duration: f64,
    received_bytes: u64,
    frames_sent: usize,
    /// The worst lateness of any publisher's tag in the window.
    publish_lag_max: Duration,
    stats: PlayerStats,
    cpu: WindowCpu,
    peak_rss: Option<u64>,
    rss_before: Option<u64>,
}

impl Report {
    fn new(
        args: &IngestArgs,
        shared: &Shared,
        m: &Measured,
        published: &[PublishResult],
        rss_before: Option<u64>,
        peak_rss: Option<u64>,
    ) -> Self {
        let ws = shared.window_start.load(Ordering::Relaxed);
        let we = shared.window_end.load(Ordering::Relaxed);
        let counted_end = we.saturating_sub((args.measure.tail.max(0.0) * 1e9) as u64);
        let sends_of = |i: usize| published.get(i).map_or(&[][..], |p| &p.sends[..]);
        Report {
            publishers: published.len(),
            connected: published.iter().filter(|p| p.connected).count(),
            publishing: published.iter().filter(|p| p.publishing).count(),
            publishers_failed: published.iter().filter(|p| p.failed.is_some()).count(),
            first_publisher_failure: published.iter().find_map(|p| p.failed.clone()),
            duration: m.window.as_secs_f64(),
            received_bytes: published.iter().map(|p| p.window_bytes).sum(),
            frames_sent: published
                .iter()
                .map(|p| live::seq_at(&p.sends, we) - live::seq_at(&p.sends, ws))
                .sum(),
            publish_lag_max: published
                .iter()
                .map(|p| p.max_lag)
                .max()
                .unwrap_or_default(),
            stats: PlayerStats::new(&m.players, sends_of, ws, counted_end),
            cpu: m.cpu,
            peak_rss,
            rss_before,
        }
    }

    fn print(&self, json: bool) {
        let s = &self.stats;
        let received_gb = self.received_bytes as f64 / 1e9;
        let delivered_gb = s.delivered_bytes as f64 / 1e9;
        let per_gb = |gb: f64| self.cpu.server_cpu.filter(|_| gb > 0.0).map(|c| c / gb);
        let per_received_gb = per_gb(received_gb);
        let below = s.below_99();
        let lag_ms = self.publish_lag_max.as_secs_f64() * 1000.0;
        eprintln!(
            "bench ingest: {} publishers, {} players, {:.1} s window",
            self.publishers, s.players, self.duration
        );
        eprintln!(
            "  publishers            {} connected, {} publishing, {} failed",
            self.connected, self.publishing, self.publishers_failed
        );
        if let Some(f) = &self.first_publisher_failure {
            eprintln!("  first publisher fail  {f}");
        }
        eprintln!("  players failed        {}", s.failed);
        if let Some(f) = &s.first_failure {
            eprintln!("  first player failure  {f}");
        }
        eprintln!(
            "  received by server    {:.3} GB, {:.3} Gbit/s",
            received_gb,
            received_gb * 8.0 / self.duration
        );
        eprintln!(
            "  delivered to players  {:.3} GB, {:.3} Gbit/s",
            delivered_gb,
            delivered_gb * 8.0 / self.duration
        );
        eprintln!(
            "  frames sent (window)  {} (publish lag max {lag_ms:.1} ms)",
            self.frames_sent
        );
        eprintln!(
            "  completeness          min {} p1 {} median {} below 99%: {}",
            opt(s.completeness.first().map(|c| c * 100.0)),
            opt(quantile(&s.completeness, 0.01).map(|c| c * 100.0)),
            opt(quantile(&s.completeness, 0.5).map(|c| c * 100.0)),
            below
        );
        s.print_latency();
        eprintln!(
            "  server                cpu {} s, {} cpu-s per received GB, peak rss {} KiB (before {} KiB)",
            opt(self.cpu.server_cpu),
            opt(per_received_gb),
            self.peak_rss.map_or("-".into(), |v| v.to_string()),
            self.rss_before.map_or("-".into(), |v| v.to_string()),
        );
        self.cpu.print_tool(self.duration);
        if !json {
            return;
        }
        let mut j = Json::default();
        j.int("publishers", self.publishers as u64)
            .int("publishers_connected", self.connected as u64)
            .int("publishers_publishing", self.publishing as u64)
            .int("publishers_failed", self.publishers_failed as u64)
            .int("players", s.players as u64)
            .int("players_failed", s.failed as u64)
            .num("duration_s", Some(self.duration))
            .int("received_bytes", self.received_bytes)
            .num("received_gbit_s", Some(received_gb * 8.0 / self.duration))
            .int("delivered_bytes", s.delivered_bytes)
            .num("delivered_gbit_s", Some(delivered_gb * 8.0 / self.duration))
            .int("frames_sent", self.frames_sent as u64)
            .num("publish_lag_max_ms", Some(lag_ms))
            .num("completeness_min", s.completeness.first().copied())
            .num("completeness_p1", quantile(&s.completeness, 0.01))
            .num("completeness_median", quantile(&s.completeness, 0.5))
            .int("players_below_99pct", below as u64)
            .obj("latency_ms", s.latency_json())
            .obj("first_frame_ms", s.first_frame_json())
            .num("first_frame_keyframe_pct", s.first_keyframe_pct)
            .num("server_cpu_s", self.cpu.server_cpu)
            .num("cpu_s_per_received_gb", per_received_gb)
            .num("cpu_s_per_delivered_gb", per_gb(delivered_gb))
            .num("server_peak_rss_kb", self.peak_rss.map(|v| v as f64))
            .num("server_rss_before_kb", self.rss_before.map(|v| v as f64));
        self.cpu.json_tool(&mut j, self.duration);
        if let Some(f) = &self.first_publisher_failure {
            j.str("first_publisher_failure", f);
        }
        if let Some(f) = &s.first_failure {
            j.str("first_failure", f);
        }
        println!("{}", j.finish());
    }
}
