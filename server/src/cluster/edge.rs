//! Pull edges fed by the registry: the registry is the first origin
//! source of every pull (newest publish first), the static `[[relay.pull]]`
//! lists come after it, and after each heartbeat's read of the registry a
//! pull whose stream is now published elsewhere (the publisher moved to
//! another origin) re-pulls from there. The relay manager keeps the local
//! stream continuous across the switch (its players stay connected).
//! Players that asked for a stream before any origin announced it wait
//! as they would for a local publisher, and the pull starts for them at
//! the first heartbeat that finds it in the registry.

use std::sync::Arc;

use super::{Origin, Registry};
use crate::relay::config::RelayConfig;
use crate::relay::url::RtmpUrl;
use crate::relay::{self, OriginSource, Relays, StaticOrigins};

/// The registry's origins of a stream, then the static ones.
#[derive(Debug)]
struct RegistryOrigins {
    registry: Arc<Registry>,
    fallback: StaticOrigins,
}

/// Where to pull App `app` from an origin the registry names: its
/// announced `rtmp://HOST:PORT`, the same App and name, with `tc_token`
/// (that of the `[[relay.pull]]` rule covering the stream).
fn pull_origin(origin: &Origin, app: &str, tc_token: Option<String>) -> Option<relay::Origin> {
    // The announced URL was checked (and normalized) by the announcing
    // node; a foreign entry that does not parse is skipped.
    let mut url = RtmpUrl::parse(&format!("{}/-", origin.url)).ok()?;
    url.app = app.to_owned();
    Some(relay::Origin { url, tc_token })
}

impl OriginSource for RegistryOrigins {
    fn origins(&self, app: &str, name: &str) -> Vec<relay::Origin> {
        let token = self.fallback.tc_token(app, name);
        let mut out: Vec<relay::Origin> = self
            .registry
            .candidates(app, name)
            .iter()
            .filter_map(|o| pull_origin(o, app, token.clone()))
            .collect();
        for o in self.fallback.origins(app, name) {
            if !out.iter().any(|r| r.url == o.url) {
                out.push(o);
            }
        }
        out
    }
}

/// Makes the registry the relays' origin source and starts the task that
/// moves pulls to their stream's newest origin.
pub fn start(registry: Arc<Registry>, relays: &Arc<Relays>, config: &RelayConfig) {
    let source = Arc::new(RegistryOrigins {
        registry: registry.clone(),
        fallback: Relays::static_origins(config),
    });
    relays.set_origin_source(source.clone());
    let relays = relays.clone();
    tokio::spawn(async move {
        loop {
            registry.refreshed().await;
            for (app, name, current) in relays.pulled() {
                let newest = registry
                    .mirrored(&app, &name)
                    .first()
                    .and_then(|o| pull_origin(o, &app, None));
                let Some(newest) = newest else {
                    // Not in the registry (or Redis away): the pull's own
                    // failover over what it has goes on.
                    continue;
                };
                if current.as_ref().map(|c| &c.url) != Some(&newest.url) {
                    relays.move_pull(&app, &name, source.origins(&app, &name));
                }
            }
            // Players that asked before any origin announced the stream
            // wait here as for a publisher; once one does, pull it.
            for (app, name) in relays.unfed() {
                if !registry.mirrored(&app, &name).is_empty() {
                    relays.pull_unfed(&app, &name, source.origins(&app, &name));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announced_origin_is_pulled_with_the_local_app() {
        let o = Origin {
            node: "a".into(),
            url: "rtmp://[::1]:1940".into(),
            started_ms: 1,
        };
        let r = pull_origin(&o, "live", None).unwrap();
        assert_eq!(r.url.target(), "[::1]:1940");
        assert_eq!(r.url.app, "live");
        assert_eq!(r.url.stream, None);
        assert_eq!(r.url.tc_url(), "rtmp://[::1]:1940/live");
    }
}
