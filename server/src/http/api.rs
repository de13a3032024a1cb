//! The JSON API, the probes and the status page. Shapes are documented in
//! docs/http-api.md; field names are snake_case, bitrates are bits per
//! second over the core's rate window (5 s), durations are seconds.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tincan_core::event::SessionId;
use tincan_core::media::{AudioCodec, MediaInfo, VideoCodec};
use tincan_core::stats::{ConnectionStats, Role, StreamStats};

use super::auth;
use super::time::{ago, rfc3339};
use super::tracker::StreamRef;
use super::Shared;

/// Connections listed per page unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 100;
/// The largest page: a listing costs the core's lock for its length.
const MAX_PAGE: usize = 1000;

/// An error as every route reports it: a stable code and a sentence.
#[derive(Debug, Serialize)]
pub(super) struct ApiError {
    error: &'static str,
    message: String,
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let body = Json(ApiError {
        error: code,
        message: message.into(),
    });
    let mut response = (status, body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"tincan\""),
        );
    }
    response
}

/// `GET /`: the status page, one self-contained file (inline CSS and
/// script, no external resource), so it works offline and needs no build.
pub(super) async fn status_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Everything is inline and fetched from this origin; nothing
            // else may load or run.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                 connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'",
            ),
        ],
        include_str!("status.html"),
    )
        .into_response()
}

/// `GET /player` (`--http-player-path`): the browser player, one
/// self-contained file as the status page: TC over RTWebSocket to the
/// `--ws-listen` port it reads from `/api/v1/server`, WebCodecs to decode
/// and encode.
pub(super) async fn player_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Inline only, as the status page; it may also open
            // WebSockets (to the RTWebSocket listener, another port) and
            // show the camera's preview.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                 connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; \
                 img-src data:; base-uri 'none'; form-action 'none'",
            ),
        ],
        include_str!("player.html"),
    )
        .into_response()
}

/// `GET /healthz`: 200 while the process serves HTTP at all.
pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 while new clients are welcome, 503 once a shutdown
/// started (the RTMP listeners are closed then; connected clients drain).
pub(super) async fn readyz(State(state): State<Shared>) -> Response {
    if state.readiness.is_shutting_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "reason": "shutting down" })),
        )
            .into_response()
    } else {
        Json(serde_json::json!({ "ready": true })).into_response()
    }
}

/// `GET /api/v1/server`.
#[derive(Debug, Serialize)]
pub(super) struct ServerJson {
    version: &'static str,
    started: String,
    uptime_secs: f64,
    rtmp_listen: Vec<String>,
    /// RTWebSocket listeners, which the player connects to.
    ws_listen: Vec<String>,
    wss_listen: Vec<String>,
    player_path: String,
    shutting_down: bool,
    connections: usize,
    streams: usize,
}

pub(super) async fn server(State(state): State<Shared>) -> Json<ServerJson> {
    Json(ServerJson {
        version: env!("CARGO_PKG_VERSION"),
        started: rfc3339(state.started_wall),
        uptime_secs: secs(state.started.elapsed()),
        rtmp_listen: state.rtmp_listen.iter().map(ToString::to_string).collect(),
        ws_listen: state.listeners.ws.iter().map(ToString::to_string).collect(),
        wss_listen: state
            .listeners
            .wss
            .iter()
            .map(ToString::to_string)
            .collect(),
        player_path: state.player_path.clone(),
        shutting_down: state.readiness.is_shutting_down(),
        connections: state.handle.connections().len(),
        streams: state.handle.streams().len(),
    })
}

/// `GET /api/v1/cluster`: the cluster registry as this node sees it, or
/// `{"enabled": false}` when clustering is off.
pub(super) async fn cluster(State(state): State<Shared>) -> Response {
    match &state.cluster {
        Some(registry) => {
            let mut v = serde_json::to_value(registry.status()).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("enabled".into(), true.into());
            }
            Json(v).into_response()
        }
        None => Json(serde_json::json!({ "enabled": false })).into_response(),
    }
}

/// `GET /api/v1/cluster/origins/{app}/{name}`: the live origins the
/// registry names for a stream (other than this node), newest publish
/// first: what an edge of this node would pull from.
pub(super) async fn cluster_origins(
    State(state): State<Shared>,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    let Some(registry) = &state.cluster else {
        return error(
            StatusCode::NOT_FOUND,
            "cluster_off",
            "clustering is off: start tincan with --cluster-redis",
        );
    };
    match registry.origins(&app, &name).await {
        Ok(origins) => Json(serde_json::json!({
            "app": app,
            "name": name,
            "origins": origins,
        }))
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "registry_unavailable", e),
    }
}

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// One stream in `/api/v1/streams`.
#[derive(Debug, Serialize)]
pub(super) struct StreamJson {
    app: String,
    /// `None` while only `sha256:` players wait for a name never published.
    name: Option<String>,
    publisher: Option<PublisherJson>,
    media: MediaJson,
    bitrate_in_bps: u64,
    bitrate_out_bps: u64,
    subscribers: usize,
    /// Connection ids of its players.
    players: Vec<u64>,
    bytes_in: u64,
    bytes_out: u64,
    frames_in: u64,
    frames_out: u64,
    dropped_frames: u64,
    dropped_bytes: u64,
    since: String,
    uptime_secs: f64,
}

#[derive(Debug, Serialize)]
struct PublisherJson {
    id: u64,
    peer: Option<String>,
    since: Option<String>,
    published_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
struct MediaJson {
    video: Vec<VideoJson>,
    audio: Vec<AudioJson>,
}

#[derive(Debug, Serialize)]
struct VideoJson {
    track: u8,
    codec: Option<&'static str>,
    width: Option<u32>,
    height: Option<u32>,
    frame_rate: Option<f64>,
    profile: Option<&'static str>,
    level: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct AudioJson {
    track: u8,
    codec: Option<&'static str>,
    sample_rate: Option<u32>,
    channels: Option<u8>,
    profile: Option<&'static str>,
}

/// The name operators know a video codec by.
fn video_codec(c: VideoCodec) -> &'static str {
    match c {
        VideoCodec::SorensonH263 => "Sorenson H.263",
        VideoCodec::ScreenVideo => "Screen Video",
        VideoCodec::Vp6 => "VP6",
        VideoCodec::Vp6Alpha => "VP6 Alpha",
        VideoCodec::ScreenVideoV2 => "Screen Video 2",
        VideoCodec::Avc => "H.264",
        VideoCodec::Hevc => "H.265",
        VideoCodec::Av1 => "AV1",
        VideoCodec::Vp8 => "VP8",
        VideoCodec::Vp9 => "VP9",
        VideoCodec::Vvc => "H.266",
    }
}

/// The name operators know an audio codec by.
fn audio_codec(c: AudioCodec) -> &'static str {
    match c {
        AudioCodec::LpcmPlatformEndian => "PCM",
        AudioCodec::Adpcm => "ADPCM",
        AudioCodec::Mp3 => "MP3",
        AudioCodec::LpcmLittleEndian => "PCM LE",
        AudioCodec::Nellymoser16kMono => "Nellymoser 16 kHz",
        AudioCodec::Nellymoser8kMono => "Nellymoser 8 kHz",
        AudioCodec::Nellymoser => "Nellymoser",
        AudioCodec::G711ALaw => "G.711 A-law",
        AudioCodec::G711MuLaw => "G.711 mu-law",
        AudioCodec::Aac => "AAC",
        AudioCodec::Speex => "Speex",
        AudioCodec::Mp3_8k => "MP3 8 kHz",
        AudioCodec::DeviceSpecific => "device-specific",
        AudioCodec::Opus => "Opus",
        AudioCodec::Flac => "FLAC",
        AudioCodec::Ac3 => "AC-3",
        AudioCodec::Eac3 => "E-AC-3",
    }
}

fn media_json(m: &MediaInfo) -> MediaJson {
    MediaJson {
        video: m
            .video()
            .iter()
            .map(|v| VideoJson {
                track: v.track,
                codec: v.codec.map(video_codec),
                width: v.width,
                height: v.height,
                frame_rate: v.frame_rate.map(|f| (f * 1000.0).round() / 1000.0),
                profile: v.profile,
                level: v.level,
            })
            .collect(),
        audio: m
            .audio()
            .iter()
            .map(|a| AudioJson {
                track: a.track,
                codec: a.codec.map(audio_codec),
                sample_rate: a.sample_rate,
                channels: a.channels,
                profile: a.profile,
            })
            .collect(),
    }
}

/// Builds the JSON of `streams`, with what only the live connections and
/// the tracker know: the publisher's address, and the drops of each
/// stream's players (the core counts drops per connection; a stream's are
/// the sum over the connections playing it now).
fn streams_json(state: &Shared, streams: Vec<StreamStats>) -> Vec<StreamJson> {
    let conns: HashMap<SessionId, ConnectionStats> =
        state.handle.connections().into_iter().collect();
    let now = SystemTime::now();
    let tracker = state.tracker.lock();
    streams
        .into_iter()
        .map(|s| {
            let players = match &s.name {
                Some(name) => tracker.players_of(&s.app, name),
                None => Vec::new(),
            };
            let (dropped_frames, dropped_bytes) = players
                .iter()
                .filter_map(|id| conns.get(id))
                .fold((0u64, 0u64), |(f, b), c| {
                    (f + c.dropped_frames, b + c.dropped_bytes)
                });
            StreamJson {
                publisher: s.publisher.map(|id| PublisherJson {
                    id: id.0,
                    peer: conns.get(&id).and_then(|c| c.peer).map(|p| p.to_string()),
                    since: s.published_for.map(|d| rfc3339(ago(now, d))),
                    published_secs: s.published_for.map(secs),
                }),
                media: media_json(&s.media),
                bitrate_in_bps: s.bitrate_in,
                bitrate_out_bps: s.bitrate_out,
                subscribers: s.subscribers,
                players: players.iter().map(|id| id.0).collect(),
                bytes_in: s.input.bytes,
                bytes_out: s.output.bytes,
                frames_in: s.input.frames,
                frames_out: s.output.frames,
                dropped_frames,
                dropped_bytes,
                since: rfc3339(ago(now, s.uptime)),
                uptime_secs: secs(s.uptime),
                app: s.app,
                name: s.name,
            }
        })
        .collect()
}

/// `GET /api/v1/streams`: every stream, by App then name.
#[derive(Debug, Serialize)]
pub(super) struct StreamsJson {
    streams: Vec<StreamJson>,
}

pub(super) async fn streams(State(state): State<Shared>) -> Json<StreamsJson> {
    let mut streams = streams_json(&state, state.handle.streams());
    streams.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
    Json(StreamsJson { streams })
}

/// `GET /api/v1/streams/{app}/{name}`.
pub(super) async fn stream(
    State(state): State<Shared>,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    match state.handle.stream_stats(&app, &name) {
        Some(s) => Json(streams_json(&state, vec![s]).remove(0)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no stream {name:?} in App {app:?}"),
        ),
    }
}

/// One connection in `/api/v1/connections`.
#[derive(Debug, Serialize)]
pub(super) struct ConnectionJson {
    id: u64,
    peer: Option<String>,
    transport: &'static str,
    app: Option<String>,
    connection_id: String,
    flash_ver: Option<String>,
    role: &'static str,
    state: &'static str,
    publishing: Vec<StreamRefJson>,
    playing: Vec<StreamRefJson>,
    bytes_in: u64,
    bytes_out: u64,
    frames_in: u64,
    frames_out: u64,
    bitrate_in_bps: u64,
    bitrate_out_bps: u64,
    dropped_frames: u64,
    dropped_bytes: u64,
    since: String,
    uptime_secs: f64,
}

#[derive(Debug, Serialize)]
struct StreamRefJson {
    app: String,
    name: String,
    stream_id: u32,
}

fn refs(r: &[StreamRef]) -> Vec<StreamRefJson> {
    r.iter()
        .map(|s| StreamRefJson {
            app: s.app.clone(),
            name: s.name.clone(),
            stream_id: s.stream,
        })
        .collect()
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Connecting => "connecting",
        Role::Idle => "idle",
        Role::Publisher => "publisher",
        Role::Player => "player",
        _ => "other",
    }
}

fn connections_json(
    state: &Shared,
    conns: Vec<(SessionId, ConnectionStats)>,
) -> Vec<ConnectionJson> {
    let now = SystemTime::now();
    let tracker = state.tracker.lock();
    conns
        .into_iter()
        .map(|(id, c)| {
            let open = tracker.open.get(&id);
            ConnectionJson {
                id: id.0,
                peer: c.peer.map(|p| p.to_string()),
                transport: c.transport.as_str(),
                // Connecting: the handshake or `connect` is not done;
                // everything after is the role's business.
                state: if c.role == Role::Connecting {
                    "connecting"
                } else {
                    "connected"
                },
                role: role(c.role),
                app: c.app,
                connection_id: c.connection_id,
                flash_ver: c.flash_ver,
                publishing: open.map(|o| refs(&o.publishing)).unwrap_or_default(),
                playing: open.map(|o| refs(&o.playing)).unwrap_or_default(),
                bytes_in: c.input.bytes,
                bytes_out: c.output.bytes,
                frames_in: c.input.frames,
                frames_out: c.output.frames,
                bitrate_in_bps: c.bitrate_in,
                bitrate_out_bps: c.bitrate_out,
                dropped_frames: c.dropped_frames,
                dropped_bytes: c.dropped_bytes,
                since: rfc3339(ago(now, c.uptime)),
                uptime_secs: secs(c.uptime),
            }
        })
        .collect()
}

/// `GET /api/v1/connections`: one page, ordered by id.
#[derive(Debug, Serialize)]
pub(super) struct ConnectionsJson {
    connections: Vec<ConnectionJson>,
    /// Pass as `after` for the next page; `None` on the last page.
    next: Option<u64>,
    /// Connections served now, on every page.
    total: usize,
}

fn param<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    key: &'static str,
) -> Result<Option<T>, Response> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{key} must be a non-negative integer, not {v:?}"),
            )
        }),
    }
}

pub(super) async fn connections(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = match param::<usize>(&q, "limit") {
        Ok(l) => l.unwrap_or(DEFAULT_PAGE),
        Err(e) => return e,
    };
    if !(1..=MAX_PAGE).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("limit must be between 1 and {MAX_PAGE}"),
        );
    }
    let after = match param::<u64>(&q, "after") {
        Ok(a) => a,
        Err(e) => return e,
    };
    // Sorted by id by the adapter; ids are never reused, so a cursor
    // never skips or repeats a connection that stays open.
    let all = state.handle.connections();
    let total = all.len();
    let mut page: Vec<_> = all
        .into_iter()
        .filter(|(id, _)| after.map_or(true, |a| id.0 > a))
        .take(limit + 1)
        .collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|(id, _)| id.0)
    } else {
        None
    };
    Json(ConnectionsJson {
        connections: connections_json(&state, page),
        next,
        total,
    })
    .into_response()
}

fn parse_id(id: &str) -> Result<SessionId, Response> {
    id.parse().map(SessionId).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("a connection id is a non-negative integer, not {id:?}"),
        )
    })
}

/// `GET /api/v1/connections/{id}`.
pub(super) async fn connection(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e,
    };
    match state.handle.connection_stats(id) {
        Some(c) => Json(connections_json(&state, vec![(id, c)]).remove(0)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no connection {id}"),
        ),
    }
}

/// The refusal of a control request, or `None` to go ahead.
fn authorize(state: &Shared, headers: &HeaderMap) -> Option<Response> {
    match auth::check(state.token.as_ref(), headers) {
        Ok(()) => None,
        Err(r @ auth::Refused::Disabled) => Some(error(
            r.status(),
            "forbidden",
            "control routes are disabled: start tincan with --http-token to enable them",
        )),
        Err(r @ auth::Refused::Unauthorized) => Some(error(
            r.status(),
            "unauthorized",
            "missing or wrong bearer token (Authorization: Bearer TOKEN)",
        )),
    }
}

/// `POST /api/v1/connections/{id}/close`.
pub(super) async fn close_connection(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = authorize(&state, &headers) {
        return refused;
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e,
    };
    if state.handle.close_connection(id, "closed by the operator") {
        tracing::info!(%id, "connection closed through the HTTP API");
        Json(serde_json::json!({ "id": id.0, "closed": true })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no connection {id}"),
        )
    }
}

/// The optional body of a reconnect request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconnectBody {
    /// Where the client should go; absent: where it is.
    #[serde(rename = "tcUrl")]
    tc_url: Option<String>,
    /// Told to the client with the request.
    description: Option<String>,
}

/// The description of a reconnect request the operator did not describe.
const RECONNECT_REQUESTED: &str = "reconnect requested by the operator";

/// `POST /api/v1/connections/{id}/reconnect`: asks a client that announced
/// Enhanced RTMP reconnect support to reconnect, to the body's `tcUrl`
/// when given (draining one node into another without dropping anyone).
/// A client that did not announce it gets nothing: 409, so the operator
/// knows to close it instead.
pub(super) async fn reconnect_connection(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = authorize(&state, &headers) {
        return refused;
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let body: ReconnectBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReconnectBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the body is a JSON object with optional tcUrl and description: {e}"),
                )
            }
        }
    };
    if state.handle.connection_stats(id).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no connection {id}"),
        );
    }
    let description = body.description.as_deref().unwrap_or(RECONNECT_REQUESTED);
    if state
        .handle
        .request_reconnect(id, body.tc_url.as_deref(), description)
    {
        tracing::info!(%id, tc_url = body.tc_url.as_deref().unwrap_or(""), "reconnect requested through the HTTP API");
        Json(serde_json::json!({ "id": id.0, "requested": true, "tcUrl": body.tc_url }))
            .into_response()
    } else {
        error(
            StatusCode::CONFLICT,
            "not_capable",
            format!("connection {id} did not announce Enhanced RTMP reconnect support (capsEx) or is not a client connection; close it instead"),
        )
    }
}

/// `POST /api/v1/streams/{app}/{name}/close`: ends the publish. The
/// publisher is told `NetStream.Publish.Denied` with
/// [`PUBLISH_ENDED`] and keeps its connection (it may publish again, or
/// leave); its players get the usual statuses once the republish grace
/// passes.
pub(super) async fn close_stream(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    if let Some(refused) = authorize(&state, &headers) {
        return refused;
    }
    match state.handle.end_publish(&app, &name, PUBLISH_ENDED) {
        Some(id) => {
            tracing::info!(%id, app, name, "publish ended through the HTTP API");
            Json(serde_json::json!({
                "app": app,
                "name": name,
                "publisher": id.0,
                "closed": true,
            }))
            .into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("stream {name:?} of App {app:?} is not published"),
        ),
    }
}

/// The description a publisher ended through the API is given.
const PUBLISH_ENDED: &str = "publish ended by the operator";

/// `GET /api/v1/relays`: push rules, every push target's state, and
/// every pulled stream.
pub(super) async fn relays(State(state): State<Shared>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "push": {
            "rules": state.relays.rules(),
            "targets": state.relays.targets(),
        },
        "pull": state.relays.pulls(),
    }))
}

/// What `POST /api/v1/relays/push` takes: a `[[relay.push]]` entry.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddPush {
    app: String,
    name: Option<String>,
    to: Vec<String>,
    tc_token: Option<String>,
}

/// `POST /api/v1/relays/push`: adds a push rule at run time (it starts
/// at once for live streams it matches; it is not written to the file).
pub(super) async fn add_push(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<AddPush>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(refused) = authorize(&state, &headers) {
        return refused;
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    };
    match crate::relay::config::PushRule::new(
        body.app,
        body.name.as_deref(),
        &body.to,
        body.tc_token,
    ) {
        Ok(rule) => {
            let id = state.relays.add_push(rule);
            (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "bad_request", e),
    }
}

/// `DELETE /api/v1/relays/push/{id}`: removes a push rule (from the file
/// or the API) until restart, and stops its connections.
pub(super) async fn remove_push(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = authorize(&state, &headers) {
        return refused;
    }
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "a rule id is a number",
        );
    };
    if state.relays.remove_push(id) {
        Json(serde_json::json!({ "id": id, "removed": true })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no push rule {id}"),
        )
    }
}

/// Any other path.
pub(super) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}
