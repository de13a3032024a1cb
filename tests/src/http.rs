//! A blocking HTTP client for tests of `tincan serve --http-listen`: every
//! answer is returned whole (status, content type, body), 4xx and 5xx
//! included, so a test can assert on refusals as on successes.

use std::time::{Duration, Instant};

use serde_json::Value;

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: String,
    /// The `WWW-Authenticate` header, if any.
    pub www_authenticate: Option<String>,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON, failing the test if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>, url: &str) -> Reply {
    let mut r = r.unwrap_or_else(|e| panic!("{url}: {e}"));
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    Reply {
        status: r.status().as_u16(),
        content_type,
        www_authenticate,
        body: r
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("{url}: body: {e}")),
    }
}

/// `GET url`.
pub fn get(url: &str) -> Reply {
    reply(agent().get(url).call(), url)
}

/// `GET url`, expecting 200 and JSON.
pub fn get_json(url: &str) -> Value {
    let r = get(url);
    assert_eq!(r.status, 200, "GET {url}: {}", r.body);
    assert!(
        r.content_type.starts_with("application/json"),
        "GET {url}: content type {:?}",
        r.content_type
    );
    r.json()
}

/// `POST url` with an empty body and, if given, `Authorization: Bearer
/// token`.
pub fn post(url: &str, token: Option<&str>) -> Reply {
    let mut req = agent().post(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    reply(req.send_empty(), url)
}

/// `POST url` with JSON `body` and, if given, `Authorization: Bearer
/// token`.
pub fn post_json(url: &str, token: Option<&str>, body: &Value) -> Reply {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    reply(req.send(body.to_string().as_str()), url)
}

/// `DELETE url` with, if given, `Authorization: Bearer token`.
pub fn delete(url: &str, token: Option<&str>) -> Reply {
    let mut req = agent().delete(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    reply(req.call(), url)
}

/// Polls `GET url` as JSON until `done` holds for it or `timeout` passes;
/// returns the last answer and whether `done` held.
pub fn poll_json(url: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> (Value, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let r = get(url);
        let v = if r.status == 200 {
            r.json()
        } else {
            Value::Null
        };
        if r.status == 200 && done(&v) {
            return (v, true);
        }
        if Instant::now() >= deadline {
            return (v, false);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
