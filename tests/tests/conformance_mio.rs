//! The conformance suite, run against the mio runtime.

use tincan_tests::conformance::{Control, Ready, Running, Runtime, ServerConfig, EPHEMERAL};

/// mio's blocking event loop on the server's own thread.
struct Mio;

struct MioControl(tincan_mio::Handle);

impl Control for MioControl {
    fn shutdown(&self) {
        self.0.shutdown();
    }
    fn stop(&self) {
        self.0.stop();
    }
}

impl Runtime for Mio {
    const NAME: &'static str = "mio";

    fn start(config: ServerConfig) -> Running {
        Running::spawn(Self::NAME, move |ready: Ready| {
            let server = tincan_mio::Server::bind(&[EPHEMERAL], config)?;
            ready.ready(server.local_addrs()[0], MioControl(server.handle()));
            server.run()
        })
    }
}

tincan_tests::conformance_suite!(Mio);
