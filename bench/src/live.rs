//! The publisher and the player that `fanout` and `ingest` both run, so
//! the two tools send and count alike and a fix to one is a fix to both.
//!
//! A publisher sends the FLV's tags at their media times (looping with
//! continuous timestamps) and puts a marker carrying the frame's sequence
//! number and send time into every H.264 frame (see [`super::flv`]). A
//! player reads its stream, records the markers it got and, for those
//! received inside the measurement window, their latency.
//!
//! Players are cheap on purpose: one 16 KiB read buffer each, payloads
//! never copied out of the chunk layer, only the first NAL units of video
//! frames looked at, and counters kept locally until the end. What a run
//! keeps grows with its length only (30 markers a second per stream), never
//! with what a server chooses to send.

use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tincan_core::client::{ClientConfig, ClientEvent, ClientSession, MediaKind, Role};
use tincan_core::entropy::SeededEntropy;
use tincan_core::time::MediaTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::flv::{self, Flv};
use super::{proc, quantile, Json, RtmpUrl};

/// Read buffer per player: enough for several frames per syscall at the
/// bitrates benchmarked, small enough for 5,000 players.
const READ_BUF: usize = 16 * 1024;

/// Read buffer per publisher: a server only sends it the dialogue,
/// acknowledgements and pings.
const PUBLISH_READ_BUF: usize = 4 * 1024;

/// How long a server may take from connect to `NetStream.Publish.Start`
/// before the publisher gives up, so a server that never answers fails the
/// publisher instead of hanging the run.
const PUBLISH_START_TIMEOUT: Duration = Duration::from_secs(15);

/// Media a publisher that fell behind its schedule queues before it
/// writes: it catches up in bursts of this size instead of letting the
/// client's never-dropped queue grow to its bound and close the session.
const CATCH_UP_BYTES: usize = 256 * 1024;

/// Not yet set, for the window atomics.
pub(crate) const UNSET: u64 = u64::MAX;

/// The input every publisher sends: loaded once, shared by every
/// publisher (tag bodies are `Bytes` slices of one buffer).
pub(crate) fn load_input(path: &std::path::Path) -> Result<Arc<Flv>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let flv = flv::parse(Bytes::from(data)).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Arc::new(flv))
}

/// State every task of a run shares.
pub(crate) struct Shared {
    /// The run's clock origin: markers carry nanoseconds since it.
    pub(crate) epoch: Instant,
    /// The measurement window, in nanoseconds since `epoch`.
    pub(crate) window_start: AtomicU64,
    pub(crate) window_end: AtomicU64,
    /// Players that received their first video frame or have failed (and,
    /// for `ingest`, publishers that started publishing or failed): the
    /// window opens when all have, so a server that makes new players wait
    /// for a keyframe shows it in first-frame time, not as lost frames.
    pub(crate) settled: AtomicUsize,
    /// Per stream, the markers its publisher has handed out. A marker
    /// claiming a later sequence number did not come from this run (a
    /// server that mangles or mixes up payloads), and is not counted: it
    /// would also size a player's bitmap from a number the server chose.
    pub(crate) markers: Vec<AtomicU64>,
}

impl Shared {
    /// A run of `streams` published streams, its clock starting now.
    pub(crate) fn new(streams: usize) -> Self {
        Shared {
            epoch: Instant::now(),
            window_start: AtomicU64::new(UNSET),
            window_end: AtomicU64::new(UNSET),
            settled: AtomicUsize::new(0),
            markers: (0..streams).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    pub(crate) fn in_window(&self, t: u64) -> bool {
        t >= self.window_start.load(Ordering::Relaxed)
            && t < self.window_end.load(Ordering::Relaxed)
    }

    /// Opens the window for `duration` from now; returns its bounds.
    pub(crate) fn open_window(&self, duration: Duration) -> (Instant, Instant) {
        let ws = Instant::now();
        let we = ws + duration;
        // End first: a task that sees the start set must not see the
        // unset (infinite) end.
        self.window_end.store(self.nanos(we), Ordering::Relaxed);
        self.window_start.store(self.nanos(ws), Ordering::Relaxed);
        (ws, we)
    }
}

/// What one player saw.
#[derive(Default)]
pub(crate) struct PlayerResult {
    /// Why it failed (never received video, or disconnected before the
    /// end).
    pub(crate) failed: Option<String>,
    /// When its first coded video frame arrived, nanos since the epoch:
    /// completeness counts from here (or the window start, if later).
    pub(crate) playing_at: Option<u64>,
    /// From sending `play` to the first coded video frame.
    pub(crate) first_frame: Option<Duration>,
    /// Whether that first frame was a keyframe (what follows decodes).
    pub(crate) first_is_keyframe: bool,
    /// Bytes read from the socket inside the window.
    pub(crate) window_bytes: u64,
    /// Distinct markers received, one bit per sequence number.
    pub(crate) received: Vec<u64>,
    /// Latency of each marker received inside the window, microseconds.
    pub(crate) latencies_us: Vec<u32>,
}

impl PlayerResult {
    /// A player that never got to play.
    pub(crate) fn failed(why: String) -> Self {
        PlayerResult {
            failed: Some(why),
            ..PlayerResult::default()
        }
    }

    fn mark(&mut self, seq: u32) {
        let word = seq as usize / 64;
        if word >= self.received.len() {
            // Bounded: only sequence numbers the publisher has sent get
            // here, 30 a second of run.
            self.received.resize(word + 64, 0);
        }
        self.received[word] |= 1 << (seq % 64);
    }

    pub(crate) fn has(&self, seq: usize) -> bool {
        self.received
            .get(seq / 64)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// The share of the markers its publisher sent from the window start
    /// (or this player's first frame, if later) up to `counted_end` that
    /// it received, at any time; `None` if it never played or nothing was
    /// due. `sends` are the send times by sequence number.
    pub(crate) fn completeness(&self, sends: &[u64], ws: u64, counted_end: u64) -> Option<f64> {
        let playing = self.playing_at?;
        let from = seq_at(sends, playing.max(ws));
        let to = seq_at(sends, counted_end).max(from);
        let expected = to - from;
        (expected > 0).then(|| {
            let got = (from..to).filter(|&s| self.has(s)).count();
            got as f64 / expected as f64
        })
    }
}

/// The first sequence number sent at or after `t`: send times only grow,
/// so a window is a range of sequence numbers.
pub(crate) fn seq_at(sends: &[u64], t: u64) -> usize {
    sends.partition_point(|&s| s < t)
}

/// Writes everything the client has queued; returns the bytes written.
pub(crate) async fn flush(
    stream: &mut TcpStream,
    client: &mut ClientSession,
) -> std::io::Result<u64> {
    let mut total = 0;
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
            total += written as u64;
        }
    }
    Ok(total)
}

/// Plays `url` as connection number `i` (see [`super::connect`]), starting
/// at `at`, until told to stop; counts the markers of `stream`'s publisher.
pub(crate) async fn player(
    i: usize,
    at: Instant,
    url: RtmpUrl,
    stream: usize,
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
    let outcome = play(i, &url, stream, &shared, &mut stop, &mut r, &mut settle).await;
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
    stream_index: usize,
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
    let markers = &shared.markers[stream_index];
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
                        in_window.then(|| shared.window_start.load(Ordering::Relaxed)),
                        markers.load(Ordering::Acquire),
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

pub(crate) fn on_video(
    r: &mut PlayerResult,
    payload: &[u8],
    nalu_len_size: &mut usize,
    play_sent: Option<Instant>,
    (now, t): (Instant, u64),
    window_start: Option<u64>,
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
        // Latency counts frames sent and received inside the window only:
        // a frame sent before it is a late joiner's fast start (the
        // cached GOP, up to a GOP old by design), not live delay.
        // Completeness counts every marker, however late.
        if window_start.is_some_and(|ws| sent >= ws) {
            let latency_us = t.saturating_sub(sent) / 1000;
            r.latencies_us
                .push(latency_us.min(u64::from(u32::MAX)) as u32);
        }
    }
}

/// How far one publisher got, and what it sent.
#[derive(Default)]
pub(crate) struct PublishResult {
    /// The TCP connection was made.
    pub(crate) connected: bool,
    /// The server answered `NetStream.Publish.Start`.
    pub(crate) publishing: bool,
    /// Why it stopped before it was told to.
    pub(crate) failed: Option<String>,
    /// Every marker's send time (nanos since the epoch), by sequence
    /// number.
    pub(crate) sends: Vec<u64>,
    /// Bytes written to the server inside the window: what the server
    /// received from this publisher.
    pub(crate) window_bytes: u64,
    /// The latest a tag went out behind its media time inside the window:
    /// a publisher (or the tool's thread) that cannot keep pace shows here.
    pub(crate) max_lag: Duration,
}

/// Where a publisher connects from: `Some(i)` as connection number `i` of
/// [`super::connect`] (many publishers, spread over loopback sources),
/// `None` from wherever the system picks.
pub(crate) type Source = Option<usize>;

/// Publishes `flv` to `url` on `stream`'s markers in real time until told
/// to stop. `ready` hears once whether the publish started (within
/// [`PUBLISH_START_TIMEOUT`]).
pub(crate) async fn publish(
    url: RtmpUrl,
    source: Source,
    stream_index: usize,
    flv: Arc<Flv>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    ready: impl FnOnce(Result<(), String>),
) -> PublishResult {
    let mut r = PublishResult::default();
    let started = tokio::time::timeout(
        PUBLISH_START_TIMEOUT,
        start_publish(&url, source, stream_index, &mut r),
    )
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "the server did not start the publish in {} s",
            PUBLISH_START_TIMEOUT.as_secs()
        ))
    });
    let (mut stream, mut client) = match started {
        Ok(s) => s,
        Err(e) => {
            ready(Err(e.clone()));
            r.failed = Some(e);
            return r;
        }
    };
    r.publishing = true;
    ready(Ok(()));
    let outcome = send_media(
        &mut stream,
        &mut client,
        stream_index,
        &flv,
        &shared,
        &mut stop,
        &mut r,
    )
    .await;
    if let Err(e) = outcome {
        r.failed = Some(e);
    }
    r
}

/// Connects and runs the dialogue up to `NetStream.Publish.Start`.
async fn start_publish(
    url: &RtmpUrl,
    source: Source,
    stream_index: usize,
    r: &mut PublishResult,
) -> Result<(TcpStream, ClientSession), String> {
    let connected = match source {
        Some(i) => super::connect(url.addr, i).await,
        None => TcpStream::connect(url.addr).await.inspect(|s| {
            let _ = s.set_nodelay(true);
        }),
    };
    let mut stream = connected.map_err(|e| format!("connect {}: {e}", url.addr))?;
    r.connected = true;
    let mut config = ClientConfig::new(&url.tc_url, &url.app, &url.stream, Role::Publish);
    // Big frames in few chunks, as OBS and FFmpeg publishers do.
    config.out_chunk_size = 60_000;
    let mut client = ClientSession::new(
        Instant::now(),
        config,
        // Distinct from every player's seed (i + 1), for no reason but
        // tidiness: the handshake's randomness decides nothing here.
        &mut SeededEntropy::new(u64::MAX - stream_index as u64),
    );
    let mut buf = vec![0u8; PUBLISH_READ_BUF];
    while !client.is_active() {
        flush(&mut stream, &mut client)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let n = match stream.read(&mut buf).await {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => n,
            Err(e) => return Err(format!("read: {e}")),
        };
        client
            .handle_input(Instant::now(), &buf[..n])
            .map_err(|e| e.to_string())?;
        while let Some(event) = client.poll_event() {
            if let ClientEvent::Closed(reason) = event {
                return Err(reason);
            }
        }
    }
    Ok((stream, client))
}

/// The paced part of [`publish`]: every tag at its media time, the file
/// looped with continuous timestamps.
async fn send_media(
    stream: &mut TcpStream,
    client: &mut ClientSession,
    stream_index: usize,
    flv: &Flv,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
    r: &mut PublishResult,
) -> Result<(), String> {
    let markers = &shared.markers[stream_index];
    let mut buf = vec![0u8; PUBLISH_READ_BUF];
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
        let now = Instant::now();
        if now < due {
            write(stream, client, shared, r).await?;
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
                    let _ = flush(stream, client).await;
                    return Ok(());
                }
            }
        } else {
            if shared.in_window(shared.nanos(now)) {
                r.max_lag = r.max_lag.max(now - due);
            }
            if client.queued_bytes() >= CATCH_UP_BYTES {
                write(stream, client, shared, r).await?;
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
                let seq = r.sends.len() as u32;
                let now = shared.nanos(Instant::now());
                r.sends.push(now);
                // Published before the frame is written, so a player never
                // sees a marker it would not count.
                markers.store(u64::from(seq) + 1, Ordering::Release);
                let marked = flv::mark(&tag.body, flv.nalu_len_size, seq, now);
                client.send_media(MediaKind::Video, ts, marked)
            }
            _ => client.send_media(MediaKind::Video, ts, tag.body.clone()),
        };
        sent.map_err(|e| e.to_string())?;
    }
}

/// What every player of a run saw, summed up for the report: the same
/// figures, worked out the same way, in `fanout` and `ingest`.
pub(crate) struct PlayerStats {
    pub(crate) players: usize,
    pub(crate) failed: usize,
    pub(crate) first_failure: Option<String>,
    /// Bytes all players read inside the window.
    pub(crate) delivered_bytes: u64,
    /// Per player that played, sorted.
    pub(crate) completeness: Vec<f64>,
    /// Every marker received inside the window, sorted.
    pub(crate) latencies_us: Vec<u32>,
    /// Per player that got video, sorted.
    pub(crate) first_frames_ms: Vec<f64>,
    pub(crate) first_keyframe_pct: Option<f64>,
}

impl PlayerStats {
    /// `sends_of(i)` is the send times of player `i`'s publisher; markers
    /// count from `ws` up to `counted_end` (see
    /// [`PlayerResult::completeness`]).
    pub(crate) fn new<'a>(
        players: &[PlayerResult],
        sends_of: impl Fn(usize) -> &'a [u64],
        ws: u64,
        counted_end: u64,
    ) -> Self {
        let mut completeness = Vec::new();
        let mut latencies_us = Vec::new();
        let mut first_frames_ms = Vec::new();
        let mut keyframes = 0;
        for (i, p) in players.iter().enumerate() {
            completeness.extend(p.completeness(sends_of(i), ws, counted_end));
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
        let mut failed = players.iter().filter_map(|p| p.failed.as_ref());
        PlayerStats {
            players: players.len(),
            first_failure: failed.next().cloned(),
            failed: players.iter().filter(|p| p.failed.is_some()).count(),
            delivered_bytes: players.iter().map(|p| p.window_bytes).sum(),
            completeness,
            latencies_us,
            first_frames_ms,
            first_keyframe_pct,
        }
    }

    pub(crate) fn latency_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.latencies_us, q).map(|us| f64::from(us) / 1000.0)
    }

    /// Players that played but missed more than 1 % of their frames.
    pub(crate) fn below_99(&self) -> usize {
        self.completeness.iter().filter(|&&c| c < 0.99).count()
    }

    /// The latency lines of the text report.
    pub(crate) fn print_latency(&self) {
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
    }

    /// The `latency_ms` object of the JSON report.
    pub(crate) fn latency_json(&self) -> Json {
        let mut lat = Json::default();
        lat.num("p50", self.latency_ms(0.5))
            .num("p99", self.latency_ms(0.99))
            .num("p999", self.latency_ms(0.999))
            .num("max", self.latency_ms(1.0))
            .int("samples", self.latencies_us.len() as u64);
        lat
    }

    /// The `first_frame_ms` object of the JSON report.
    pub(crate) fn first_frame_json(&self) -> Json {
        let mut ff = Json::default();
        ff.num("p50", quantile(&self.first_frames_ms, 0.5))
            .num("p99", quantile(&self.first_frames_ms, 0.99))
            .num("max", quantile(&self.first_frames_ms, 1.0));
        ff
    }
}

/// A figure for the text report, `-` when it is unknown.
pub(crate) fn opt(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2}"))
}

/// The tokio runtime for a tool's connections: one thread, or `threads`
/// workers.
pub(crate) fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| e.to_string())
}

/// Flushes a publisher, counting what it hands the kernel inside the
/// window: what the server received.
async fn write(
    stream: &mut TcpStream,
    client: &mut ClientSession,
    shared: &Shared,
    r: &mut PublishResult,
) -> Result<(), String> {
    let n = flush(stream, client)
        .await
        .map_err(|e| format!("write: {e}"))?;
    if shared.in_window(shared.nanos(Instant::now())) {
        r.window_bytes += n;
    }
    Ok(())
}

/// Samples the peak resident memory of `pid`'s process tree on its own
/// thread, so /proc reads never delay the tool's connections.
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    pub(crate) fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            std::thread::spawn(move || {
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
            })
        };
        RssSampler { stop, peak, thread }
    }

    /// The peak seen, in KiB.
    pub(crate) fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak.load(Ordering::Relaxed)
    }
}

/// CPU of the server and of the tool over the measurement window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowCpu {
    pub(crate) server_cpu: Option<f64>,
    /// Seconds the server's threads waited for a CPU in the window.
    pub(crate) server_wait: Option<f64>,
    pub(crate) tool_cpu: f64,
    /// Seconds the tool's threads waited for a CPU in the window.
    pub(crate) tool_wait: f64,
}

impl WindowCpu {
    /// The tool's own CPU and both sides' run-queue waits, the lines every
    /// report ends with: a saturated tool or a starved server shows there.
    pub(crate) fn print_tool(&self, duration: f64) {
        eprintln!(
            "  tool                  cpu {:.2} s ({:.2} cores)",
            self.tool_cpu,
            self.tool_cpu / duration
        );
        eprintln!(
            "  waiting for a CPU     server {} s, tool {:.2} s (run-queue wait in the window)",
            opt(self.server_wait),
            self.tool_wait
        );
    }

    /// The same figures as JSON fields.
    pub(crate) fn json_tool(&self, j: &mut super::Json, duration: f64) {
        j.num("tool_cpu_s", Some(self.tool_cpu))
            .num("tool_cores", Some(self.tool_cpu / duration))
            .num("server_runqueue_wait_s", self.server_wait)
            .num("tool_runqueue_wait_s", Some(self.tool_wait));
    }
}

/// What a coordinator measured around the window, and every player's
/// result.
pub(crate) struct Measured {
    pub(crate) players: Vec<PlayerResult>,
    pub(crate) window: Duration,
    pub(crate) cpu: WindowCpu,
}

/// The window of `duration` seconds, once every connection settled: the
/// CPU read at both ends, then in-flight frames let land, every player
/// stopped through `stop` and its result collected.
pub(crate) async fn measure(
    shared: &Shared,
    duration: f64,
    pids: Option<&[u32]>,
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<PlayerResult>>,
) -> Measured {
    let (ws, we) = shared.open_window(Duration::from_secs_f64(duration.max(0.1)));
    let cpu0 = CpuMark::now(pids);
    tokio::time::sleep_until(tokio::time::Instant::from_std(we)).await;
    let cpu1 = CpuMark::now(pids);
    // Let in-flight frames land, then stop everyone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    let mut players = Vec::with_capacity(handles.len());
    for h in handles {
        players.push(
            h.await
                .unwrap_or_else(|e| PlayerResult::failed(format!("player task: {e}"))),
        );
    }
    Measured {
        players,
        window: we - ws,
        cpu: cpu0.until(&cpu1),
    }
}

/// Readings at one end of the window, taken back to back so both ends
/// cover the same span.
pub(crate) struct CpuMark {
    server: Option<(f64, f64)>,
    tool: (f64, f64),
}

impl CpuMark {
    pub(crate) fn now(pids: Option<&[u32]>) -> Self {
        CpuMark {
            server: pids.map(|p| (proc::cpu(p), proc::runqueue_wait(p))),
            tool: (proc::self_cpu(), proc::runqueue_wait(&[std::process::id()])),
        }
    }

    /// What was spent from `self` to `later`.
    pub(crate) fn until(&self, later: &CpuMark) -> WindowCpu {
        let server = self.server.zip(later.server);
        WindowCpu {
            server_cpu: server.map(|(a, b)| b.0 - a.0),
            server_wait: server.map(|(a, b)| b.1 - a.1),
            tool_cpu: later.tool.0 - self.tool.0,
            tool_wait: later.tool.1 - self.tool.1,
        }
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
        on_video(&mut r, &marked, &mut 4, Some(now), (now, 2_000), Some(0), 8);
        assert_eq!(received(&r), vec![7]);
        assert_eq!(r.latencies_us, vec![1]);
    }

    #[test]
    fn a_frame_sent_before_the_window_counts_for_completeness_not_latency() {
        // A late joiner's cached GOP: sent at 1,000 ns, received inside a
        // window that opened at 1,500.
        let frame = [0x27, 1, 0, 0, 0, 0, 0, 0, 3, 0x41, 0x9a, 0x55];
        let mut r = PlayerResult::default();
        let now = Instant::now();
        let cached = flv::mark(&frame, 4, 7, 1_000);
        on_video(
            &mut r,
            &cached,
            &mut 4,
            Some(now),
            (now, 2_000),
            Some(1_500),
            8,
        );
        assert_eq!(received(&r), vec![7]);
        assert!(r.latencies_us.is_empty(), "{:?}", r.latencies_us);
    }

    #[test]
    fn a_marker_beyond_what_was_sent_is_ignored_and_grows_nothing() {
        let frame = [0x27, 1, 0, 0, 0, 0, 0, 0, 3, 0x41, 0x9a, 0x55];
        let mut r = PlayerResult::default();
        let now = Instant::now();
        let forged = flv::mark(&frame, 4, u32::MAX, 1_000);
        on_video(&mut r, &forged, &mut 4, Some(now), (now, 2_000), Some(0), 8);
        assert!(r.received.is_empty());
        assert!(r.latencies_us.is_empty());
    }

    #[test]
    fn completeness_counts_from_the_later_of_window_start_and_first_frame() {
        // Markers sent at 10, 20, ..., 100.
        let sends: Vec<u64> = (1..=10).map(|s| s * 10).collect();
        let mut r = PlayerResult {
            playing_at: Some(45),
            ..PlayerResult::default()
        };
        // Playing from 45: markers 4..8 (sent 50..80) are due before 85.
        for seq in [4, 5, 7] {
            r.mark(seq);
        }
        assert_eq!(r.completeness(&sends, 30, 85), Some(0.75));
        assert_eq!(PlayerResult::default().completeness(&sends, 30, 85), None);
    }
}
