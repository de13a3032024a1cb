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
//! is receive time minus the marker's send time, for markers received
//! inside the window; first-frame time runs from writing `play` to the
//! first coded video frame. A player that never gets video, or is
//! disconnected, is failed; one disconnected mid-window keeps its
//! completeness (its lost frames count as lost).
//!
//! Players are cheap on purpose: one 16 KiB read
//! buffer each, payloads never copied out of the chunk layer, only the first
//! NAL units of video frames looked at, and counters kept locally until the
//! end.

use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::client::{ClientConfig, ClientEvent, ClientSession, MediaKind, Role};
use tincan_core::entropy::SeededEntropy;
use tincan_core::time::MediaTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::flv::{self, Flv};
use super::{parse_url, proc, quantile, FanoutArgs, Json, RtmpUrl};

/// Read buffer per connection: enough for several frames per syscall at
/// the bitrates benchmarked, small enough for 5,000 players.
const READ_BUF: usize = 16 * 1024;

/// Not yet set, for the window atomics.
const UNSET: u64 = u64::MAX;

/// State every task of the run shares.
struct Shared {
    /// The run's clock origin: markers carry nanoseconds since it.
    epoch: Instant,
    /// The measurement window, in nanoseconds since `epoch`.
    window_start: AtomicU64,
    window_end: AtomicU64,
    /// Players that received their first video frame or have failed: the
    /// window opens when all have, so a server that makes new players wait
    /// for a keyframe shows it in first-frame time, not as lost frames.
    settled: AtomicUsize,
    /// Markers the publisher has handed out. A marker claiming a later
    /// sequence number did not come from this run (a server that mangles
    /// payloads), and is not counted: it would also size a player's
    /// bitmap from a number the server chose.
    markers: AtomicU64,
}

impl Shared {
    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn in_window(&self, t: u64) -> bool {
        t >= self.window_start.load(Ordering::Relaxed)
            && t < self.window_end.load(Ordering::Relaxed)
    }
}

/// What one player saw.
#[derive(Default)]
struct PlayerResult {
    /// Why it failed (never received video, or disconnected before the
    /// end).
    failed: Option<String>,
    /// When its first coded video frame arrived, nanos since the epoch:
    /// completeness counts from here (or the window start, if later).
    playing_at: Option<u64>,
    /// From sending `play` to the first coded video frame.
    first_frame: Option<Duration>,
    /// Whether that first frame was a keyframe (what follows decodes).
    first_is_keyframe: bool,
    /// Bytes read from the socket inside the window.
    window_bytes: u64,
    /// Distinct markers received, one bit per sequence number.
    received: Vec<u64>,
    /// Latency of each marker received inside the window, microseconds.
    latencies_us: Vec<u32>,
}

impl PlayerResult {
    fn mark(&mut self, seq: u32) {
        let word = seq as usize / 64;
        if word >= self.received.len() {
            // Bounded: only sequence numbers the publisher has sent get
            // here, 30 a second of run.
            self.received.resize(word + 64, 0);
        }
        self.received[word] |= 1 << (seq % 64);
    }

    fn has(&self, seq: usize) -> bool {
        self.received
            .get(seq / 64)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }
}

pub(super) fn run(args: &FanoutArgs) -> Result<(), String> {
    let publish_url = parse_url(&args.url)?;
    let play_url = parse_url(args.play_url.as_deref().unwrap_or(&args.url))?;
    if publish_url.stream.is_empty() || play_url.stream.is_empty() {
        return Err("the URL needs a stream name: rtmp://HOST:PORT/APP/STREAM".into());
    }
    let data = std::fs::read(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let flv =
        flv::parse(Bytes::from(data)).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        window_start: AtomicU64::new(UNSET),
        window_end: AtomicU64::new(UNSET),
        settled: AtomicUsize::new(0),
        markers: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    // Memory sampler: its own thread, so /proc reads never delay players.
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = args.server_pid.map(|pid| {
        let stop = Arc::clone(&sampler_stop);
        let peak = Arc::clone(&peak_rss);
        std::thread::spawn(move || sample_rss(pid, &stop, &peak))
    });

    // The publisher.
    let (ready_tx, ready_rx) = mpsc::channel();
    let publisher = {
        let shared = Arc::clone(&shared);
        let stop = stop_rx.clone();
        std::thread::spawn(move || -> Result<Vec<u64>, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(publish(publish_url, flv, shared, stop, ready_tx))
        })
    };
    match ready_rx.recv_timeout(Duration::from_secs(15)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("publisher: {e}")),
        Err(_) => {
            return Err(match publisher.join() {
                Ok(Err(e)) => format!("publisher: {e}"),
                _ => "publisher: the server did not start the publish in 15 s".into(),
            })
        }
    }
    std::thread::sleep(Duration::from_secs_f64(args.warmup.max(0.0)));
    let pids = args.server_pid.map(proc::tree);
    let rss_before = pids.as_deref().map(proc::rss_kb);

    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| e.to_string())?;
    let measured = runtime.block_on(coordinate(
        args,
        &play_url,
        &shared,
        pids.as_deref(),
        stop_tx,
        stop_rx,
    ));
    drop(runtime);
    sampler_stop.store(true, Ordering::Relaxed);
    if let Some(s) = sampler {
        let _ = s.join();
    }
    let sends = publisher
        .join()
        .map_err(|_| "the publisher thread panicked".to_string())?
        .map_err(|e| format!("publisher: {e}"))?;
    let report = Report::new(
        args,
        &shared,
        &measured,
        &sends,
        rss_before,
        args.server_pid.map(|_| peak_rss.load(Ordering::Relaxed)),
    );
    report.print(args.json);
    Ok(())
}

/// What the coordinator measured around the window, and every player's
/// result.
struct Measured {
    players: Vec<PlayerResult>,
    window: Duration,
    server_cpu: Option<f64>,
    /// Seconds the server's threads waited for a CPU in the window.
    server_wait: Option<f64>,
    tool_cpu: f64,
    /// Seconds the tool's threads waited for a CPU in the window.
    tool_wait: f64,
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
        handles.push(tokio::spawn(player(
            i,
            at,
            url.clone(),
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
    let ws = Instant::now();
    let we = ws + Duration::from_secs_f64(args.duration.max(0.1));
    shared.window_end.store(shared.nanos(we), Ordering::Relaxed);
    shared
        .window_start
        .store(shared.nanos(ws), Ordering::Relaxed);
    let me = [std::process::id()];
    let cpu0 = pids.map(proc::cpu);
    let wait0 = pids.map(proc::runqueue_wait);
    let tool0 = proc::self_cpu();
    let tool_wait0 = proc::runqueue_wait(&me);
    tokio::time::sleep_until(tokio::time::Instant::from_std(we)).await;
    let cpu1 = pids.map(proc::cpu);
    let wait1 = pids.map(proc::runqueue_wait);
    let tool1 = proc::self_cpu();
    let tool_wait1 = proc::runqueue_wait(&me);
    // Let in-flight frames land, then stop everyone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    let mut players = Vec::with_capacity(handles.len());
    for h in handles {
        players.push(h.await.unwrap_or_else(|e| PlayerResult {
            failed: Some(format!("player task: {e}")),
            ..PlayerResult::default()
        }));
    }
    Measured {
        players,
        window: we - ws,
        server_cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
        server_wait: wait0.zip(wait1).map(|(a, b)| b - a),
        tool_cpu: tool1 - tool0,
        tool_wait: tool_wait1 - tool_wait0,
    }
}

/// Writes everything the client has queued.
async fn flush(stream: &mut TcpStream, client: &mut ClientSession) -> std::io::Result<()> {
    while let Some(mut t) = client.poll_transmit() {
        while !t.is_empty() {
            let written = {
                let mut slices = [IoSlice::new(&[]); 64];
                let n = t.io_slices(&mut slices);
                stream.write_vectored(&slices[..n]).await?
            };
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            t.advance(written);
        }
    }
    Ok(())
}

async fn player(
    i: usize,
    at: Instant,
    url: RtmpUrl,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> PlayerResult {
    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    let mut r = PlayerResult::default();
    let mut settled = false;
    let mut settle = |shared: &Shared| {
        if !settled {
            settled = true;
            shared.settled.fetch_add(1, Ordering::Relaxed);
        }
    };
    let outcome = play(i, &url, &shared, &mut stop, &mut r, &mut settle).await;
    settle(&shared);
    if let Err(e) = outcome {
        r.failed = Some(e);
    } else if r.playing_at.is_none() {
        r.failed = Some("never received video".into());
    }
    r
}

async fn play(
    i: usize,
    url: &RtmpUrl,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
    r: &mut PlayerResult,
    settle: &mut impl FnMut(&Shared),
) -> Result<(), String> {
    let mut stream = super::connect(url.addr, i)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let config = ClientConfig::new(&url.tc_url, &url.app, &url.stream, Role::Play);
    let mut client = ClientSession::new(
        Instant::now(),
        config,
        &mut SeededEntropy::new(i as u64 + 1),
    );
    flush(&mut stream, &mut client)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0u8; READ_BUF];
    let mut nalu_len_size = 4;
    let mut play_sent: Option<Instant> = None;
    loop {
        let n = tokio::select! {
            n = stream.read(&mut buf) => n,
            _ = stop.changed() => return Ok(()),
        };
        let n = match n {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => n,
            Err(e) => return Err(format!("read: {e}")),
        };
        let now = Instant::now();
        let t = shared.nanos(now);
        let in_window = shared.in_window(t);
        if in_window {
            r.window_bytes += n as u64;
        }
        let had_stream = client.stream_id() != 0;
        client
            .handle_input(now, &buf[..n])
            .map_err(|e| e.to_string())?;
        if !had_stream && client.stream_id() != 0 {
            // `play` is in the transmit flushed below.
            play_sent = Some(now);
        }
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Media {
                    kind: MediaKind::Video,
                    payload,
                    ..
                } => {
                    on_video(
                        r,
                        &payload,
                        &mut nalu_len_size,
                        play_sent,
                        (now, t),
                        in_window,
                        shared.markers.load(Ordering::Acquire),
                    );
                    if r.playing_at.is_none() && r.first_frame.is_some() {
                        r.playing_at = Some(t);
                        settle(shared);
                    }
                }
                ClientEvent::Closed(reason) => return Err(reason),
                _ => {}
            }
        }
        flush(&mut stream, &mut client)
            .await
            .map_err(|e| format!("write: {e}"))?;
    }
}

fn on_video(
    r: &mut PlayerResult,
    payload: &[u8],
    nalu_len_size: &mut usize,
    play_sent: Option<Instant>,
    (now, t): (Instant, u64),
    in_window: bool,
    markers: u64,
) {
    if payload.len() >= 2 && payload[0] & 0x0f == 7 && payload[1] == 0 {
        *nalu_len_size = flv::nalu_len_size_of(payload).unwrap_or(4);
        return;
    }
    if r.first_frame.is_none() {
        r.first_frame = Some(play_sent.map_or(Duration::ZERO, |p| now - p));
        r.first_is_keyframe = payload.first().is_some_and(|b| b >> 4 == 1);
    }
    if let Some((seq, sent)) = flv::find_marker(payload, *nalu_len_size) {
        if u64::from(seq) >= markers {
            return;
        }
        r.mark(seq);
        // Latency counts inside the window only; completeness counts every
        // marker, however late.
        if in_window {
            let latency_us = t.saturating_sub(sent) / 1000;
            r.latencies_us
                .push(latency_us.min(u64::from(u32::MAX)) as u32);
        }
    }
}

/// Publishes `flv` in real time until told to stop; returns every marker's
/// send time (nanos since the epoch), indexed by sequence number.
async fn publish(
    url: RtmpUrl,
    flv: Flv,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    ready: mpsc::Sender<Result<(), String>>,
) -> Result<Vec<u64>, String> {
    let fail = |ready: &mpsc::Sender<Result<(), String>>, e: String| {
        let _ = ready.send(Err(e.clone()));
        e
    };
    let mut stream = match TcpStream::connect(url.addr).await {
        Ok(s) => s,
        Err(e) => return Err(fail(&ready, format!("connect {}: {e}", url.addr))),
    };
    let _ = stream.set_nodelay(true);
    let mut config = ClientConfig::new(&url.tc_url, &url.app, &url.stream, Role::Publish);
    // Big frames in few chunks, as OBS and FFmpeg publishers do.
    config.out_chunk_size = 60_000;
    let mut client = ClientSession::new(Instant::now(), config, &mut SeededEntropy::new(0));
    let mut buf = vec![0u8; READ_BUF];
    // The dialogue, up to NetStream.Publish.Start.
    while !client.is_active() {
        if let Err(e) = flush(&mut stream, &mut client).await {
            return Err(fail(&ready, format!("write: {e}")));
        }
        let n = match stream.read(&mut buf).await {
            Ok(0) => return Err(fail(&ready, "the server closed the connection".into())),
            Ok(n) => n,
            Err(e) => return Err(fail(&ready, format!("read: {e}"))),
        };
        if let Err(e) = client.handle_input(Instant::now(), &buf[..n]) {
            return Err(fail(&ready, e.to_string()));
        }
        while let Some(event) = client.poll_event() {
            if let ClientEvent::Closed(reason) = event {
                return Err(fail(&ready, reason));
            }
        }
    }
    let _ = ready.send(Ok(()));

    let mut sends: Vec<u64> = Vec::new();
    let first = flv.tags.first().map_or(0, |t| t.timestamp);
    let start = Instant::now();
    let mut pass: u32 = 0;
    let mut i = 0;
    loop {
        let Some(tag) = flv.tags.get(i) else {
            i = 0;
            pass += 1;
            continue;
        };
        let media_ms = tag
            .timestamp
            .wrapping_sub(first)
            .wrapping_add(pass.wrapping_mul(flv.loop_ms));
        let due = start + Duration::from_millis(u64::from(media_ms));
        if Instant::now() < due {
            flush(&mut stream, &mut client)
                .await
                .map_err(|e| format!("write: {e}"))?;
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {}
                n = stream.read(&mut buf) => {
                    let n = match n {
                        Ok(0) => return Err("the server closed the connection".into()),
                        Ok(n) => n,
                        Err(e) => return Err(format!("read: {e}")),
                    };
                    client.handle_input(Instant::now(), &buf[..n]).map_err(|e| e.to_string())?;
                    while let Some(event) = client.poll_event() {
                        if let ClientEvent::Closed(reason) = event {
                            return Err(reason);
                        }
                    }
                    continue;
                }
                _ = stop.changed() => {
                    client.close("bench over");
                    let _ = flush(&mut stream, &mut client).await;
                    return Ok(sends);
                }
            }
        }
        i += 1;
        // Sequence headers and metadata once; the server keeps them.
        if pass > 0 && (tag.kind == 18 || tag.is_sequence_header()) {
            continue;
        }
        let ts = MediaTime::from_millis(media_ms);
        let sent = match tag.kind {
            18 => client.send_data(ts, &tag.body),
            8 => client.send_media(MediaKind::Audio, ts, tag.body.clone()),
            _ if tag.is_avc_frame() => {
                let seq = sends.len() as u32;
                let now = shared.nanos(Instant::now());
                sends.push(now);
                // Published before the frame is written, so a player never
                // sees a marker it would not count.
                shared.markers.store(u64::from(seq) + 1, Ordering::Release);
                let marked = flv::mark(&tag.body, flv.nalu_len_size, seq, now);
                client.send_media(MediaKind::Video, ts, marked)
            }
            _ => client.send_media(MediaKind::Video, ts, tag.body.clone()),
        };
        sent.map_err(|e| e.to_string())?;
    }
}

fn sample_rss(pid: u32, stop: &AtomicBool, peak: &AtomicU64) {
    let mut pids = proc::tree(pid);
    let mut refreshed = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if refreshed.elapsed() > Duration::from_secs(1) {
            pids = proc::tree(pid);
            refreshed = Instant::now();
        }
        peak.fetch_max(proc::rss_kb(&pids), Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The numbers of one run.
struct Report {
    players: usize,
    failed: usize,
    first_failure: Option<String>,
    duration: f64,
    delivered_bytes: u64,
    frames_sent: usize,
    completeness: Vec<f64>,
    latencies_us: Vec<u32>,
    first_frames_ms: Vec<f64>,
    first_keyframe_pct: Option<f64>,
    server_cpu: Option<f64>,
    server_wait: Option<f64>,
    peak_rss: Option<u64>,
    rss_before: Option<u64>,
    tool_cpu: f64,
    tool_wait: f64,
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
        let counted_end = we.saturating_sub((args.tail.max(0.0) * 1e9) as u64);
        // Send times only grow, so a window is a range of sequence numbers.
        let seq_at = |t: u64| sends.partition_point(|&s| s < t);
        let frames_sent = seq_at(we) - seq_at(ws);
        let mut completeness = Vec::new();
        let mut latencies_us = Vec::new();
        let mut first_frames_ms = Vec::new();
        let mut keyframes = 0;
        for p in &m.players {
            if let Some(playing) = p.playing_at {
                let from = seq_at(playing.max(ws));
                let to = seq_at(counted_end).max(from);
                let expected = to - from;
                if expected > 0 {
                    let got = (from..to).filter(|&s| p.has(s)).count();
                    completeness.push(got as f64 / expected as f64);
                }
            }
            if let Some(f) = p.first_frame {
                first_frames_ms.push(f.as_secs_f64() * 1000.0);
                keyframes += usize::from(p.first_is_keyframe);
            }
            latencies_us.extend_from_slice(&p.latencies_us);
        }
        completeness.sort_by(f64::total_cmp);
        latencies_us.sort_unstable();
        first_frames_ms.sort_by(f64::total_cmp);
        let first_keyframe_pct = (!first_frames_ms.is_empty())
            .then(|| 100.0 * keyframes as f64 / first_frames_ms.len() as f64);
        let failed: Vec<&PlayerResult> = m.players.iter().filter(|p| p.failed.is_some()).collect();
        Report {
            players: m.players.len(),
            failed: failed.len(),
            first_failure: failed.first().and_then(|p| p.failed.clone()),
            duration: m.window.as_secs_f64(),
            delivered_bytes: m.players.iter().map(|p| p.window_bytes).sum(),
            frames_sent,
            completeness,
            latencies_us,
            first_frames_ms,
            first_keyframe_pct,
            server_cpu: m.server_cpu,
            server_wait: m.server_wait,
            peak_rss,
            rss_before,
            tool_cpu: m.tool_cpu,
            tool_wait: m.tool_wait,
        }
    }

    fn gbytes(&self) -> f64 {
        self.delivered_bytes as f64 / 1e9
    }

    fn latency_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.latencies_us, q).map(|us| f64::from(us) / 1000.0)
    }

    fn print(&self, json: bool) {
        let gbit = self.gbytes() * 8.0 / self.duration;
        let per_gb = self
            .server_cpu
            .filter(|_| self.delivered_bytes > 0)
            .map(|c| c / self.gbytes());
        let below = self.completeness.iter().filter(|&&c| c < 0.99).count();
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        eprintln!(
            "bench fanout: {} players, {:.1} s window",
            self.players, self.duration
        );
        eprintln!("  players failed        {}", self.failed);
        if let Some(f) = &self.first_failure {
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
            opt(self.completeness.first().map(|c| c * 100.0)),
            opt(quantile(&self.completeness, 0.01).map(|c| c * 100.0)),
            below
        );
        eprintln!(
            "  latency ms            p50 {} p99 {} p99.9 {} max {} ({} samples)",
            opt(self.latency_ms(0.5)),
            opt(self.latency_ms(0.99)),
            opt(self.latency_ms(0.999)),
            opt(self.latency_ms(1.0)),
            self.latencies_us.len()
        );
        eprintln!(
            "  first frame ms        p50 {} p99 {} max {}; keyframe first {}%",
            opt(quantile(&self.first_frames_ms, 0.5)),
            opt(quantile(&self.first_frames_ms, 0.99)),
            opt(quantile(&self.first_frames_ms, 1.0)),
            opt(self.first_keyframe_pct)
        );
        eprintln!(
            "  server                cpu {} s, {} cpu-s/GB, peak rss {} KiB (before players {} KiB)",
            opt(self.server_cpu),
            opt(per_gb),
            self.peak_rss.map_or("-".into(), |v| v.to_string()),
            self.rss_before.map_or("-".into(), |v| v.to_string()),
        );
        eprintln!(
            "  tool                  cpu {:.2} s ({:.2} cores)",
            self.tool_cpu,
            self.tool_cpu / self.duration
        );
        eprintln!(
            "  waiting for a CPU     server {} s, tool {:.2} s (run-queue wait in the window)",
            opt(self.server_wait),
            self.tool_wait
        );
        if !json {
            return;
        }
        let mut lat = Json::default();
        lat.num("p50", self.latency_ms(0.5))
            .num("p99", self.latency_ms(0.99))
            .num("p999", self.latency_ms(0.999))
            .num("max", self.latency_ms(1.0))
            .int("samples", self.latencies_us.len() as u64);
        let mut ff = Json::default();
        ff.num("p50", quantile(&self.first_frames_ms, 0.5))
            .num("p99", quantile(&self.first_frames_ms, 0.99))
            .num("max", quantile(&self.first_frames_ms, 1.0));
        let mut j = Json::default();
        j.int("players", self.players as u64)
            .int("players_failed", self.failed as u64)
            .num("duration_s", Some(self.duration))
            .int("delivered_bytes", self.delivered_bytes)
            .num("delivered_gbit_s", Some(gbit))
            .int("frames_sent", self.frames_sent as u64)
            .num("completeness_min", self.completeness.first().copied())
            .num("completeness_p1", quantile(&self.completeness, 0.01))
            .int("players_below_99pct", below as u64)
            .obj("latency_ms", lat)
            .obj("first_frame_ms", ff)
            .num("first_frame_keyframe_pct", self.first_keyframe_pct)
            .num("server_cpu_s", self.server_cpu)
            .num("cpu_s_per_gb", per_gb)
            .num("server_peak_rss_kb", self.peak_rss.map(|v| v as f64))
            .num(
                "server_rss_before_players_kb",
                self.rss_before.map(|v| v as f64),
            )
            .num("tool_cpu_s", Some(self.tool_cpu))
            .num("tool_cores", Some(self.tool_cpu / self.duration))
            .num("server_runqueue_wait_s", self.server_wait)
            .num("tool_runqueue_wait_s", Some(self.tool_wait));
        if let Some(f) = &self.first_failure {
            j.str("first_failure", f);
        }
        println!("{}", j.finish());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(r: &PlayerResult) -> Vec<usize> {
        (0..r.received.len() * 64).filter(|&s| r.has(s)).collect()
    }

    #[test]
    fn a_marker_the_publisher_has_sent_counts() {
        let frame = [0x27, 1, 0, 0, 0, 0, 0, 0, 3, 0x41, 0x9a, 0x55];
        let mut r = PlayerResult::default();
        let now = Instant::now();
        let marked = flv::mark(&frame, 4, 7, 1_000);
        on_video(&mut r, &marked, &mut 4, Some(now), (now, 2_000), true, 8);
        assert_eq!(received(&r), vec![7]);
        assert_eq!(r.latencies_us, vec![1]);
    }

    #[test]
    fn a_marker_beyond_what_was_sent_is_ignored_and_grows_nothing() {
        let frame = [0x27, 1, 0, 0, 0, 0, 0, 0, 3, 0x41, 0x9a, 0x55];
        let mut r = PlayerResult::default();
        let now = Instant::now();
        let forged = flv::mark(&frame, 4, u32::MAX, 1_000);
        on_video(&mut r, &forged, &mut 4, Some(now), (now, 2_000), true, 8);
        assert!(r.received.is_empty());
        assert!(r.latencies_us.is_empty());
    }
}
