//! `rtmp://` and `rtmps://` URLs of relay destinations and origins, split
//! the way FFmpeg and OBS split them: the first path segment is the App,
//! the rest is the stream name, and a `?query` travels with the name
//! (where platforms and CDNs take per-stream tokens).

use std::fmt;

/// A parsed relay URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmps://`: dial TLS.
    pub tls: bool,
    /// The host, as written (a name or an address; IPv6 without brackets).
    pub host: String,
    /// The port (1935 for `rtmp://`, 443 for `rtmps://` unless given).
    pub port: u16,
    /// The remote App.
    pub app: String,
    /// The remote stream name, if the URL has one (a push without one
    /// uses the local name, as nginx-rtmp's `push` does).
    pub stream: Option<String>,
    /// The query, without `?`.
    pub query: Option<String>,
}

impl RtmpUrl {
    /// Parses `rtmp[s]://host[:port]/app[/stream][?query]`.
    pub fn parse(url: &str) -> Result<RtmpUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("rtmp://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("rtmps://") {
            (true, r)
        } else {
            return Err("a relay URL starts with rtmp:// or rtmps://".into());
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_owned()).filter(|q| !q.is_empty())),
            None => (rest, None),
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or("a relay URL names an App: rtmp://host/app")?;
        let default_port = if tls { 443 } else { 1935 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
                None if after.is_empty() => default_port,
                None => return Err("junk after the IPv6 host".into()),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_owned(),
                    p.parse().map_err(|_| format!("bad port {p:?}"))?,
                ),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err("a relay URL names a host".into());
        }
        let (app, stream) = match path.split_once('/') {
            Some((app, stream)) => (app, Some(stream.to_owned()).filter(|s| !s.is_empty())),
            None => (path, None),
        };
        if app.is_empty() {
            return Err("a relay URL names an App: rtmp://host/app".into());
        }
        Ok(RtmpUrl {
            tls,
            host,
            port,
            app: app.to_owned(),
            stream,
            query,
        })
    }

    /// `host:port` for the dialer.
    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `tcUrl` sent in `connect`.
    pub fn tc_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}/{}", self.port, self.app)
    }
}

/// Shown in logs and the API: the stream name (a platform's stream key)
/// is cut to its first four characters and the query (tokens) hidden.
impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.tc_url())?;
        if let Some(s) = &self.stream {
            if s.chars().count() > 8 {
                let head: String = s.chars().take(4).collect();
                write!(f, "/{head}…")?;
            } else {
                write!(f, "/{s}")?;
            }
        }
        if self.query.is_some() {
            f.write_str("?…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::RtmpUrl;

    #[test]
    fn a_url_splits_into_app_stream_and_query() {
        let u = RtmpUrl::parse("rtmp://a.example:1936/live2/key/x?token=t").unwrap();
        assert_eq!(u.target(), "a.example:1936");
        assert_eq!(u.app, "live2");
        assert_eq!(u.stream.as_deref(), Some("key/x"));
        assert_eq!(u.query.as_deref(), Some("token=t"));
        assert_eq!(u.tc_url(), "rtmp://a.example:1936/live2");
    }

    #[test]
    fn rtmps_defaults_to_port_443_and_rtmp_to_1935() {
        assert_eq!(RtmpUrl::parse("rtmps://h/app").unwrap().port, 443);
        assert_eq!(RtmpUrl::parse("rtmp://h/app").unwrap().port, 1935);
        assert_eq!(
            RtmpUrl::parse("rtmp://[::1]/app").unwrap().target(),
            "[::1]:1935"
        );
    }

    #[test]
    fn a_url_without_scheme_or_app_is_refused() {
        assert!(RtmpUrl::parse("http://h/app").is_err());
        assert!(RtmpUrl::parse("rtmp://h").is_err());
        assert!(RtmpUrl::parse("rtmp://h/").is_err());
        assert!(RtmpUrl::parse("rtmp://h:x/app").is_err());
    }

    #[test]
    fn a_displayed_url_hides_the_stream_key_and_query() {
        let u = RtmpUrl::parse("rtmp://h/app/supersecretkey?token=t").unwrap();
        assert_eq!(u.to_string(), "rtmp://h:1935/app/supe…?…");
    }
}
