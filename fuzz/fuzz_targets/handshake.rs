//! Handshake: server and client machines fed arbitrary bytes in arbitrary
//! splits, with timer events in between, never panic, never consume more
//! than they are given, and stay failed once failed.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tincan_core::entropy::SeededEntropy;
use tincan_core::handshake::{ClientHandshake, HandshakeConfig, HandshakeError, ServerHandshake};

#[derive(Arbitrary, Debug)]
enum Step {
    Bytes(Vec<u8>),
    Timeout { after_ms: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    client_side: bool,
    seed: u64,
    steps: Vec<Step>,
}

/// The shape both handshake machines share, so one driver fuzzes both.
trait Machine {
    fn input(&mut self, b: &[u8]) -> Result<usize, HandshakeError>;
    fn timeout(&mut self, now: Instant) -> Result<(), HandshakeError>;
    fn drain(&mut self);
    fn deadline(&self) -> Option<Instant>;
}

macro_rules! machine {
    ($t:ty) => {
        impl Machine for $t {
            fn input(&mut self, b: &[u8]) -> Result<usize, HandshakeError> {
                self.handle_input(b)
            }
            fn timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
                self.handle_timeout(now)
            }
            fn drain(&mut self) {
                while self.poll_transmit().is_some() {}
            }
            fn deadline(&self) -> Option<Instant> {
                self.poll_timeout()
            }
        }
    };
}
machine!(ClientHandshake);
machine!(ServerHandshake);

fn drive(hs: &mut dyn Machine, start: Instant, steps: Vec<Step>) {
    let mut now = start;
    for step in steps {
        hs.drain();
        match step {
            Step::Bytes(b) => match hs.input(&b) {
                Ok(used) => assert!(used <= b.len()),
                Err(e) => {
                    assert_eq!(hs.input(&b), Err(e), "errors are sticky");
                    return;
                }
            },
            Step::Timeout { after_ms } => {
                now += Duration::from_millis(u64::from(after_ms) * 16);
                if hs.timeout(now).is_err() {
                    assert!(hs.deadline().is_none());
                    return;
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let config = HandshakeConfig::default();
    let mut entropy = SeededEntropy::new(input.seed);
    if input.client_side {
        drive(
            &mut ClientHandshake::new(start, config, &mut entropy),
            start,
            input.steps,
        );
    } else {
        drive(
            &mut ServerHandshake::new(start, config, &mut entropy),
            start,
            input.steps,
        );
    }
});
