//! The conformance suite, run against the smol runtime.

use tincan_tests::conformance::{Control, Ready, Running, Runtime, ServerConfig, EPHEMERAL};

/// smol, driven by `smol::block_on` on the server's own thread.
struct Smol;

struct SmolControl(tincan_smol::Handle);

impl Control for SmolControl {
    fn shutdown(&self) {
        self.0.shutdown();
    }
    fn stop(&self) {
        self.0.stop();
    }
}

impl Runtime for Smol {
    const NAME: &'static str = "smol";

    fn start(config: ServerConfig) -> Running {
        Running::spawn(Self::NAME, move |ready: Ready| {
            let server = tincan_smol::Server::bind(&[EPHEMERAL], config)?;
            ready.ready(server.local_addrs()[0], SmolControl(server.handle()));
            smol::block_on(server.run())
        })
    }
}

tincan_tests::conformance_suite!(Smol);
