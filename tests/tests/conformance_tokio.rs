//! The conformance suite, run against the tokio runtime.

use std::sync::Arc;

use tincan_tests::conformance::{Control, Ready, Running, Runtime, ServerConfig, EPHEMERAL};

/// tokio on a current-thread runtime of its own.
struct Tokio;

struct TokioControl(Arc<tokio::sync::Notify>);

impl Control for TokioControl {
    fn shutdown(&self) {
        self.0.notify_one();
    }
    fn stop(&self) {
        self.0.notify_one();
    }
}

impl Runtime for Tokio {
    const NAME: &'static str = "tokio";

    fn start(config: ServerConfig) -> Running {
        Running::spawn(Self::NAME, move |ready: Ready| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listeners = tincan_tokio::bind(&[EPHEMERAL]).await?;
                let addr = listeners[0].local_addr()?;
                let stop = Arc::new(tokio::sync::Notify::new());
                ready.ready(addr, TokioControl(stop.clone()));
                let config = tincan_tokio::ServerConfig {
                    session: config.session,
                    broker: config.broker,
                    shutdown_flush: None,
                };
                tincan_tokio::serve(listeners, config, async move { stop.notified().await }).await
            })
        })
    }
}

tincan_tests::conformance_suite!(Tokio);
