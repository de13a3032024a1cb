//! The HTTP calls of access control: the Go RTMP server's event callback
//! (an HS256 JWT in the `rtmp-event` header) and the JSON auth hook. Every
//! call has a timeout; secrets and tokens are never logged.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tincan_core::event::Denial;
use tokio::sync::Semaphore;

/// The `start`/`stop` events' claims, as the Go RTMP server signs them.
#[derive(Debug, Serialize)]
struct Claims<'a> {
    sub: &'a str,
    event: &'a str,
    channel: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_id: Option<&'a str>,
    client_ip: &'a str,
    exp: u64,
}

/// How long a token is valid (the Go server's 120 s).
const TOKEN_LIFETIME: u64 = 120;

/// The event callback (CALLBACK_URL, JWT_SECRET).
pub struct Callback {
    client: reqwest::Client,
    url: String,
    key: jsonwebtoken::EncodingKey,
    subject: String,
    timeout: Duration,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("Callback").field("url", &self.url).finish()
    }
}

/// A publish the callback accepted: the `stream-id` it named.
pub type StreamId = String;

impl Callback {
    pub fn new(
        client: reqwest::Client,
        url: String,
        secret: &str,
        subject: String,
        timeout: Duration,
    ) -> Self {
        Callback {
            client,
            url,
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            subject,
            timeout,
        }
    }

    fn token(
        &self,
        event: &str,
        channel: &str,
        key: &str,
        stream_id: Option<&str>,
        client_ip: &str,
    ) -> Result<String, String> {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + TOKEN_LIFETIME;
        let claims = Claims {
            sub: &self.subject,
            event,
            channel,
            key,
            stream_id,
            client_ip,
            exp,
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &self.key)
            .map_err(|e| format!("cannot sign the event: {e}"))
    }

    async fn post(&self, token: String) -> Result<reqwest::Response, String> {
        let request = self
            .client
            .post(&self.url)
            .header("rtmp-event", token)
            .header(reqwest::header::CONTENT_LENGTH, 0)
            .timeout(self.timeout);
        request.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {:?}", self.timeout)
            } else {
                // Without the URL's query, in case it holds a secret.
                format!("unreachable ({})", e.without_url())
            }
        })
    }

    /// The `start` event: the stream id of an accepted publish, or the
    /// refusal (with whether the callback answered at all).
    pub async fn start(
        &self,
        channel: &str,
        key: &str,
        client_ip: &str,
    ) -> Result<StreamId, Denial> {
        let token = self
            .token("start", channel, key, None, client_ip)
            .map_err(|e| Denial::policy(&format!("publish refused: {e}")))?;
        match self.post(token).await {
            Ok(res) if res.status() == reqwest::StatusCode::OK => Ok(res
                .headers()
                .get("stream-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()),
            Ok(res) => {
                tracing::info!(
                    channel,
                    status = res.status().as_u16(),
                    "event callback refused a publish"
                );
                Err(Denial::bad_name(&format!(
                    "invalid stream key: the event callback answered {}",
                    res.status().as_u16()
                )))
            }
            Err(e) => {
                tracing::warn!(channel, error = %e, "event callback failed: publish refused");
                Err(Denial::policy(&format!(
                    "publish refused: the event callback is {e}"
                )))
            }
        }
    }

    /// The `stop` event; its answer changes nothing.
    pub async fn stop(&self, channel: &str, key: &str, stream_id: &str, client_ip: &str) {
        let token = match self.token("stop", channel, key, Some(stream_id), client_ip) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "stop event not sent");
                return;
            }
        };
        match self.post(token).await {
            Ok(res) if res.status().is_success() => {}
            Ok(res) => tracing::info!(
                channel,
                status = res.status().as_u16(),
                "stop event answered"
            ),
            Err(e) => tracing::warn!(channel, error = %e, "stop event failed"),
        }
    }
}

/// What the hook is told about a request or an ending.
#[derive(Debug, Clone, Serialize, Default)]
pub struct HookBody {
    pub action: &'static str,
    pub app: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub query: String,
    pub client_ip: Option<String>,
    pub client_addr: Option<String>,
    pub id: u64,
    pub connection_id: String,
    pub tc_url: Option<String>,
    pub flash_ver: Option<String>,
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// The HTTP auth hook.
#[derive(Debug)]
pub struct Hook {
    client: reqwest::Client,
    url: Option<String>,
    notify_url: Option<String>,
    timeout: Duration,
    requests: Arc<Semaphore>,
    notifications: Arc<Semaphore>,
}

/// The longest answer body shown to a client.
const MAX_MESSAGE: usize = 200;

/// The answer's text as a status description: short, printable, one line;
/// JSON answers may carry it as `message`, `reason` or `error`.
pub fn refusal_text(status: u16, body: &[u8]) -> String {
    let fallback = format!("refused by the auth hook ({status})");
    let Ok(text) = std::str::from_utf8(body) else {
        return fallback;
    };
    let text = text.trim();
    let text = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Object(_)) => ["message", "reason", "error"]
            .iter()
            .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_default(),
        Ok(serde_json::Value::String(s)) => s,
        _ => text.to_owned(),
    };
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_MESSAGE || text.chars().any(char::is_control) {
        fallback
    } else {
        text.to_owned()
    }
}

impl Hook {
    pub fn new(
        client: reqwest::Client,
        url: Option<String>,
        notify_url: Option<String>,
        timeout: Duration,
        max_pending: usize,
    ) -> Self {
        Hook {
            client,
            url,
            notify_url,
            timeout,
            requests: Arc::new(Semaphore::new(max_pending)),
            notifications: Arc::new(Semaphore::new(max_pending)),
        }
    }

    /// Asks the hook about a request: `Ok` on 2xx.
    pub async fn ask(&self, body: &HookBody, kind: fn(&str) -> Denial) -> Result<(), Denial> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        let Ok(_permit) = self.requests.clone().try_acquire_owned() else {
            tracing::warn!(action = body.action, "auth hook busy: request refused");
            return Err(Denial::policy("auth hook busy, try again later"));
        };
        let res = self
            .client
            .post(url)
            .json(body)
            .timeout(self.timeout)
            .send()
            .await;
        let res = match res {
            Ok(res) => res,
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("did not answer within {:?}", self.timeout)
                } else {
                    format!("is unreachable ({})", e.without_url())
                };
                tracing::warn!(action = body.action, error = %why, "auth hook failed: request refused");
                return Err(Denial::policy(&format!("refused: the auth hook {why}")));
            }
        };
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        // At most a little of the body: a refusal's text is short.
        let body_bytes = tokio::time::timeout(self.timeout, read_limited(res, 4096))
            .await
            .unwrap_or_default();
        let text = refusal_text(status.as_u16(), &body_bytes);
        tracing::info!(action = body.action, status = status.as_u16(), reason = %text, "auth hook refused");
        Err(kind(&text))
    }

    /// Tells the notification URL about an ending, in a task of its own;
    /// dropped (and logged) if too many are in flight.
    pub fn notify(self: &Arc<Self>, body: HookBody) {
        let Some(url) = self.notify_url.clone() else {
            return;
        };
        let Ok(permit) = self.notifications.clone().try_acquire_owned() else {
            tracing::warn!(action = body.action, "hook notifications busy: one dropped");
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let res = this
                .client
                .post(url)
                .json(&body)
                .timeout(this.timeout)
                .send()
                .await;
            if let Err(e) = res {
                tracing::debug!(action = body.action, error = %e.without_url(), "hook notification failed");
            }
        });
    }
}

async fn read_limited(mut res: reqwest::Response, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        out.extend_from_slice(&chunk);
        if out.len() > max {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::refusal_text;

    #[test]
    fn refusal_texts_are_short_and_printable() {
        assert_eq!(refusal_text(403, b"banned until 5pm"), "banned until 5pm");
        assert_eq!(
            refusal_text(403, br#"{"message":"no such key"}"#),
            "no such key"
        );
        assert_eq!(refusal_text(403, br#"{"error":"expired"}"#), "expired");
        assert_eq!(refusal_text(500, b""), "refused by the auth hook (500)");
        assert_eq!(
            refusal_text(401, b"two\nlines"),
            "refused by the auth hook (401)"
        );
        assert_eq!(
            refusal_text(401, &[0xff, 0xfe]),
            "refused by the auth hook (401)"
        );
        let long = "x".repeat(500);
        assert_eq!(
            refusal_text(401, long.as_bytes()),
            "refused by the auth hook (401)"
        );
    }
}
