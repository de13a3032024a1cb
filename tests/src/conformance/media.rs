//! The real clients of the suite: FFmpeg publishing a small live test
//! pattern, and FFmpeg, rtmpdump and GStreamer playing it back with a
//! decoder, all pointed at a URL rather than a particular server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::require_tool;
use crate::server::{play_args, x264, Client, Output};

/// Frame rate of every published test stream.
pub const FPS: u32 = 25;

/// The smallest picture the suite publishes; other sizes tag streams apart.
pub const SMALL: (u32, u32) = (160, 120);

/// The system FFmpeg (the clients' reference build).
pub fn ffmpeg() -> PathBuf {
    require_tool("ffmpeg")
}

/// Starts FFmpeg publishing `seconds` of a live (`-re`) lavfi `testsrc` of
/// `size` with a sine tone, as H.264 (a keyframe every `gop` frames) and
/// AAC in FLV to `url`.
pub fn publish(url: &str, size: (u32, u32), seconds: u32, gop: u32) -> Client {
    let (w, h) = size;
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
    .map(String::from)
    .to_vec();
    args.push(format!("testsrc=size={w}x{h}:rate={FPS}"));
    args.extend(["-re", "-f", "lavfi", "-i"].map(String::from));
    args.push("sine=frequency=440:sample_rate=48000".into());
    args.extend(["-t".into(), seconds.to_string()]);
    args.extend(x264(gop));
    args.extend(["-c:a", "aac", "-b:a", "64k", "-f", "flv", url].map(String::from));
    Client::spawn(
        &format!("ffmpeg publisher {url}"),
        Command::new(ffmpeg()).args(args),
        Output::Ignore,
    )
}

/// Starts FFmpeg playing `input` (a URL or a file), decoding every frame
/// and writing one framecrc line per frame; `extra` are output options
/// (e.g. `-t 2`).
pub fn ffmpeg_play(input: &str, extra: &[&str]) -> Client {
    Client::spawn(
        &format!("ffmpeg player {input}"),
        Command::new(ffmpeg()).args(play_args(input, extra)),
        Output::FrameCrc,
    )
}

/// Starts rtmpdump recording live `url` into `flv`.
pub fn rtmpdump(url: &str, flv: &Path) -> Client {
    Client::spawn(
        "rtmpdump",
        Command::new(require_tool("rtmpdump"))
            .args(["-r", url, "--live", "-o"])
            .arg(flv),
        Output::Ignore,
    )
}

/// Starts GStreamer playing `url` with `rtmp2src`, decoding H.264 to raw
/// GRAY8 frames of `size` on stdout (counted by the [`Client`]) and AAC to
/// a fake sink.
pub fn gstreamer_play(url: &str, size: (u32, u32)) -> Client {
    let (w, h) = size;
    let pipeline = format!(
        "rtmp2src location={url} ! flvdemux name=d \
         d.video ! queue ! h264parse ! avdec_h264 ! videoconvert \
         ! video/x-raw,format=GRAY8,width={w},height={h} ! fdsink fd=1 \
         d.audio ! queue ! aacparse ! faad ! fakesink"
    );
    Client::spawn(
        "gstreamer player",
        Command::new(require_tool("gst-launch-1.0"))
            .arg("-q")
            .args(pipeline.split_whitespace()),
        Output::Raw {
            frame_size: u64::from(w * h),
        },
    )
}

/// Whether FFmpeg's stream report on stderr names an H.264 video stream
/// of `size`.
pub fn reports_h264_of_size(stderr: &str, size: (u32, u32)) -> bool {
    let (w, h) = size;
    stderr
        .lines()
        .filter(|l| l.contains("Video: h264"))
        .any(|l| l.contains(&format!(" {w}x{h}")))
}
