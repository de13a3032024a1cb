//! Shared helpers for tincan's cross-runtime conformance, simulation and
//! interop tests.

#![forbid(unsafe_code)]
