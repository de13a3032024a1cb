//! `tincan-bench fanout`: one publisher, N players, over real sockets.
//!
//! The publisher runs on its own thread so that pacing never waits behind
//! player work; it sends the FLV's tags at their media times (looping with
//! continuous timestamps) and puts a marker carrying the frame's sequence
//! number and send time into every H.264 frame (see [`super::flv`]). After
//! the warm-up, players join one every `--join-interval-ms`; once every
//! player has received its first video frame (or has failed) the
//! measurement window opens for `--duration` seconds.
//!
//! What counts: delivered bytes are those players read inside the window;
//! a player's completeness is the share of markers sent from the window
//! start (or its first frame, if later) to `--tail` seconds before the
//! window end that it received, at any time before the run stops; latency
//! is receive time minus the marker's send time, for markers sent and
//! received inside the window (a late joiner's cached GOP, sent before,
//! arrives up to a GOP old by design and is not live delay); first-frame
//! time runs from writing `play` to the first coded video frame. A player
//! that never gets video, or is disconnected, is failed; one disconnected
//! mid-window keeps its completeness (its lost frames count as lost).
//!
//! The publisher and the players are [`super::live`]'s, shared with
//! `ingest`.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::live::{self, opt, Measured, PlayerStats, RssSampler, Shared, WindowCpu};
use super::{parse_url, proc, quantile, FanoutArgs, Json, RtmpUrl};

pub(super) fn run(args: &FanoutArgs) -> Result<(), String> {
    let publish_url = parse_url(&args.url)?;
    let play_url = parse_url(args.play_url.as_deref().unwrap_or(&args.url))?;
    if publish_url.stream.is_empty() || play_url.stream.is_empty() {
        return Err("the URL needs a stream name: rtmp://HOST:PORT/APP/STREAM".into());
    }
    let flv = live::load_input(&args.input)?;
    let shared = Arc::new(Shared::new(1));
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = args.measure.server_pid.map(RssSampler::start);

    // The publisher, on its own thread so that pacing never waits behind
    // player work.
    let (ready_tx, ready_rx) = mpsc::channel();
    let publisher = {
        let shared = Arc::clone(&shared);
        let stop = stop_rx.clone();
        std::thread::spawn(move || -> Result<live::PublishResult, String> {
            let rt = live::runtime(1)?;
            Ok(rt.block_on(live::publish(
                publish_url,
                None,
                0,
                flv,
                shared,
                stop,
                move |r| {
                    let _ = ready_tx.send(r);
                },
            )))
        })
    };
    // The publisher gives up by itself if the server never starts the
    // publish; a closed channel means its thread ended before it could say.
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("publisher: {e}")),
        Err(_) => {
            return Err(match publisher.join() {
                Ok(Err(e)) => format!("publisher: {e}"),
                _ => "publisher: its thread ended before the publish started".into(),
            })
        }
    }
    std::thread::sleep(Duration::from_secs_f64(args.warmup.max(0.0)));
    let pids = args.measure.server_pid.map(proc::tree);
    let rss_before = pids.as_deref().map(proc::rss_kb);

    let runtime = live::runtime(args.threads)?;
    let measured = runtime.block_on(coordinate(
        args,
        &play_url,
        &shared,
        pids.as_deref(),
        stop_tx,
        stop_rx,
    ));
    drop(runtime);
    let peak_rss = sampler.map(RssSampler::finish);
    let published = publisher
        .join()
        .map_err(|_| "the publisher thread panicked".to_string())??;
    if let Some(e) = published.failed {
        return Err(format!("publisher: {e}"));
    }
    let report = Report::new(
        args,
        &shared,
        &measured,
        &published.sends,
        rss_before,
        peak_rss,
    );
    report.print(args.measure.json);
    Ok(())
}

async fn coordinate(
    args: &FanoutArgs,
    url: &RtmpUrl,
    shared: &Arc<Shared>,
    pids: Option<&[u32]>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
) -> Measured {
    let start = Instant::now();
    let interval = Duration::from_secs_f64(args.join_interval_ms.max(0.0) / 1000.0);
    let mut handles = Vec::with_capacity(args.players);
    for i in 0..args.players {
        let at = start + interval * i as u32;
        handles.push(tokio::spawn(live::player(
            i,
            at,
            url.clone(),
            0,
            Arc::clone(shared),
            stop_rx.clone(),
        )));
    }
    // Every player playing or failed, or a generous bound past the last
    // join for servers that never answer some of them.
    let join_deadline = start + interval * args.players as u32 + Duration::from_secs(10);
    while shared.settled.load(Ordering::Relaxed) < args.players && Instant::now() < join_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    live::measure(shared, args.duration, pids, stop_tx, handles).await
}

/// The numbers of one run.
struct Report {
    duration: f64,
    frames_sent: usize,
    stats: PlayerStats,
    cpu: WindowCpu,
    peak_rss: Option<u64>,
    rss_before: Option<u64>,
}

impl Report {
    fn new(
        args: &FanoutArgs,
        shared: &Shared,
        m: &Measured,
        sends: &[u64],
        rss_before: Option<u64>,
        peak_rss: Option<u64>,
    ) -> Self {
        let ws = shared.window_start.load(Ordering::Relaxed);
        let we = shared.window_end.load(Ordering::Relaxed);
        let counted_end = we.saturating_sub((args.measure.tail.max(0.0) * 1e9) as u64);
        Report {
            duration: m.window.as_secs_f64(),
            frames_sent: live::seq_at(sends, we) - live::seq_at(sends, ws),
            stats: PlayerStats::new(&m.players, |_| sends, ws, counted_end),
            cpu: m.cpu,
            peak_rss,
            rss_before,
        }
    }

    fn gbytes(&self) -> f64 {
        self.stats.delivered_bytes as f64 / 1e9
    }

    fn print(&self, json: bool) {
        let s = &self.stats;
        let gbit = self.gbytes() * 8.0 / self.duration;
        let per_gb = self
            .cpu
            .server_cpu
            .filter(|_| s.delivered_bytes > 0)
            .map(|c| c / self.gbytes());
        let below = s.below_99();
        eprintln!(
            "bench fanout: {} players, {:.1} s window",
            s.players, self.duration
        );
        eprintln!("  players failed        {}", s.failed);
        if let Some(f) = &s.first_failure {
            eprintln!("  first failure         {f}");
        }
        eprintln!(
            "  delivered             {:.3} GB, {:.3} Gbit/s",
            self.gbytes(),
            gbit
        );
        eprintln!("  frames sent (window)  {}", self.frames_sent);
        eprintln!(
            "  completeness          min {} p1 {} below 99%: {}",
            opt(s.completeness.first().map(|c| c * 100.0)),
            opt(quantile(&s.completeness, 0.01).map(|c| c * 100.0)),
            below
        );
        s.print_latency();
        eprintln!(
            "  server                cpu {} s, {} cpu-s/GB, peak rss {} KiB (before players {} KiB)",
            opt(self.cpu.server_cpu),
            opt(per_gb),
            self.peak_rss.map_or("-".into(), |v| v.to_string()),
            self.rss_before.map_or("-".into(), |v| v.to_string()),
        );
        self.cpu.print_tool(self.duration);
        if !json {
            return;
        }
        let mut j = Json::default();
        j.int("players", s.players as u64)
            .int("players_failed", s.failed as u64)
            .num("duration_s", Some(self.duration))
            .int("delivered_bytes", s.delivered_bytes)
            .num("delivered_gbit_s", Some(gbit))
            .int("frames_sent", self.frames_sent as u64)
            .num("completeness_min", s.completeness.first().copied())
            .num("completeness_p1", quantile(&s.completeness, 0.01))
            .int("players_below_99pct", below as u64)
            .obj("latency_ms", s.latency_json())
            .obj("first_frame_ms", s.first_frame_json())
            .num("first_frame_keyframe_pct", s.first_keyframe_pct)
            .num("server_cpu_s", self.cpu.server_cpu)
            .num("cpu_s_per_gb", per_gb)
            .num("server_peak_rss_kb", self.peak_rss.map(|v| v as f64))
            .num(
                "server_rss_before_players_kb",
                self.rss_before.map(|v| v as f64),
            );
        self.cpu.json_tool(&mut j, self.duration);
        if let Some(f) = &s.first_failure {
            j.str("first_failure", f);
        }
        println!("{}", j.finish());
    }
}
