//! The conformance suite, run against the tokio runtime.

use tincan_tests::conformance::{Control, Ready, Running, Runtime, ServerConfig, EPHEMERAL};

/// tokio on a current-thread runtime built in the server's own thread.
struct Tokio;

struct TokioControl(tincan_tokio::Handle);

impl Control for TokioControl {
    fn shutdown(&self) {
        self.0.shutdown();
    }
    fn stop(&self) {
        self.0.stop();
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
                let server = tincan_tokio::Server::bind(&[EPHEMERAL], config).await?;
                ready.ready(server.local_addrs()[0], TokioControl(server.handle()));
                server.run().await
            })
        })
    }
}

tincan_tests::conformance_suite!(Tokio);
