//! RTMPS for relays: the TLS client settings of every `rtmps://`
//! destination and origin.
//!
//! Certificates are verified against Mozilla's root store as the
//! `webpki-roots` crate ships it, plus an optional private CA file (for
//! origins and edges of one's own, with certificates from an internal
//! CA). Mozilla's roots rather than the system's: the answer is the same
//! on every machine, including containers that carry no CA bundle, and a
//! relay to a public platform (YouTube, Twitch) needs nothing more. An
//! operator who must trust what the system trusts points `ca_file` at the
//! system bundle.
//!
//! `insecure_skip_verify` turns verification off entirely (self-signed
//! test setups); it is named to be seen in a review and logged as a
//! warning at start.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// `[relay.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayTls {
    /// PEM file of CA certificates trusted besides Mozilla's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate. Never for production.
    pub insecure_skip_verify: bool,
}

/// The TLS client configuration relays dial `rtmps://` with.
pub fn client_config(settings: &RelayTls) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    if settings.insecure_skip_verify {
        tracing::warn!(
            "relay.tls.insecure_skip_verify is on: RTMPS relays accept ANY certificate \
             and can be intercepted; never use it in production"
        );
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &settings.ca_file {
        let added = add_pem(&mut roots, path)?;
        tracing::info!(file = %path.display(), certificates = added, "relay CA file loaded");
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

fn add_pem(roots: &mut RootCertStore, path: &Path) -> Result<usize, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&text) {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(added)
}

/// Accepts every certificate, still checking that the handshake's
/// signatures are made with the presented key (so the session is at
/// least encrypted to whoever answered).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
