//! RTMPS: the TLS listener's certificate (`[tls]`, `--tls-listen`,
//! `--tls-cert`, `--tls-key`).
//!
//! The certificate chain and key are PEM files, parsed with
//! rustls-pki-types. The acceptor's rustls configuration asks
//! [`CertStore`] for the certificate at every handshake; the store holds it
//! behind a lock as an `Arc`, swapped whole when the files change, so a
//! reload never touches a live connection (its TLS session keeps the keys
//! it was made with) and every new handshake sees the new certificate.
//!
//! The files are read again on `SIGHUP` (through the [`Reloader`]: a new
//! path in the file is applied and reported like any live setting, and the
//! same paths are re-read on every reload) and when they change (their
//! metadata is polled every [`POLL`], which follows Let's Encrypt's
//! symlinks and needs no watcher dependency; a change is read once it has
//! held for a whole poll, so a pair copied in place is not read
//! half-written). A new pair that does not load (unreadable, not PEM, a
//! key that does not match the certificate) keeps the certificate in force
//! and logs why, without key material.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use clap::FromArgMatches;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tincan_tokio::tokio_rustls::TlsAcceptor;

use crate::config::args::TlsArgs;
use crate::config::reload::Reloader;

/// How often the certificate's files are checked for a change.
pub const POLL: Duration = Duration::from_secs(2);

/// What made the store look at its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The periodic check: only files whose metadata changed are read.
    Poll,
    /// A `SIGHUP`: the files are read whatever their metadata says.
    Reload,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trigger::Poll => "files changed",
            Trigger::Reload => "SIGHUP",
        })
    }
}

/// What identifies a file's version without reading it: the target's (a
/// symlink is followed) modification time, size and inode.
type Stamp = Option<[(SystemTime, u64, u64); 2]>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| Ok((m.modified()?, m.len(), m.ino())))
            .ok()
    };
    Some([one(cert)?, one(key)?])
}

/// The files in force and the last attempt at reading them.
#[derive(Debug)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    /// Their metadata when last read.
    stamp: Stamp,
    /// Their metadata at the last poll: a change is read only once it has
    /// held for a whole poll, so a pair being copied in place (certificate
    /// first, key a moment later) is not read half-written.
    seen: Stamp,
    /// The SHA-256 of the contents last tried (both files), so an
    /// unchanged pair is not loaded, or refused, twice.
    digest: [u8; 32],
    /// Why the contents last tried were refused, if they were.
    refused: Option<String>,
}

/// The RTMPS certificate in force, swapped atomically on reload: rustls
/// asks it for the certificate at every handshake.
pub struct CertStore {
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    files: Mutex<Files>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("CertStore")
            .field("cert", &files.cert)
            .field("key", &files.key)
            .finish()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The contents of a certificate chain and key file, read at once.
struct Pair {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Pair {
    fn read(cert: &Path, key: &Path) -> Result<Pair, String> {
        let read =
            |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        Ok(Pair {
            cert: read(cert)?,
            key: read(key)?,
        })
    }

    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update((self.cert.len() as u64).to_be_bytes());
        h.update(&self.cert);
        h.update(&self.key);
        h.finalize().into()
    }
}

/// The certificate chain and key in `pair`, checked to belong together.
/// Errors name the files, never their contents.
fn parse(
    provider: &CryptoProvider,
    pair: &Pair,
    cert: &Path,
    key: &Path,
) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(&pair.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: no certificate (no CERTIFICATE section)",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(&pair.key).map_err(|e| {
        // The parser's own messages may quote a line of the file: say
        // what is wrong without it.
        let why = match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no private key in it (a PKCS#8, PKCS#1 or SEC1 PEM section)"
            }
            _ => "not a valid PEM private key",
        };
        format!("{}: {why}", key.display())
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
            "the private key in {} does not match the certificate in {}",
            key.display(),
            cert.display()
        ),
        e => format!("{} / {}: {e}", cert.display(), key.display()),
    })
}

/// The certificate's SHA-256 fingerprint as `openssl x509 -fingerprint
/// -sha256` prints it, to tell in the log which certificate is in force.
fn fingerprint(key: &CertifiedKey) -> String {
    let Some(leaf) = key.cert.first() else {
        return String::new();
    };
    Sha256::digest(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl CertStore {
    /// Loads the pair at start: an error here stops the server.
    pub fn load(provider: Arc<CryptoProvider>, cert: &Path, key: &Path) -> Result<Self, String> {
        let stamp = stamp(cert, key);
        let pair = Pair::read(cert, key)?;
        let loaded = parse(&provider, &pair, cert, key)?;
        tracing::info!(
            cert = %cert.display(),
            fingerprint = %fingerprint(&loaded),
            "TLS certificate loaded"
        );
        Ok(CertStore {
            provider,
            current: RwLock::new(Arc::new(loaded)),
            files: Mutex::new(Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
                stamp,
                seen: stamp,
                digest: pair.digest(),
                refused: None,
            }),
        })
    }

    /// The certificate in force.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn swap(&self, new: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
    }

    /// Switches to the pair at new paths (a reload changed `tls.cert` or
    /// `tls.key`). On an error the pair in force stays, and so do its
    /// paths; the reload reports why.
    fn switch(&self, cert: &Path, key: &Path) -> Result<(), String> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = stamp(cert, key);
        let pair = Pair::read(cert, key)?;
        let loaded = parse(&self.provider, &pair, cert, key)?;
        tracing::info!(
            cert = %cert.display(),
            fingerprint = %fingerprint(&loaded),
            "TLS certificate reloaded from new paths"
        );
        self.swap(loaded);
        *files = Files {
            cert: cert.to_owned(),
            key: key.to_owned(),
            stamp,
            seen: stamp,
            digest: pair.digest(),
            refused: None,
        };
        Ok(())
    }

    /// Reads the files in force again (all of them on a reload, only
    /// changed ones on a poll) and swaps in a new pair that loads; a pair
    /// that does not keeps the one in force, and the log says why.
    fn check(&self, trigger: Trigger) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = stamp(&files.cert, &files.key);
        if trigger == Trigger::Poll {
            let settled = stamp == files.seen;
            files.seen = stamp;
            if stamp == files.stamp || !settled {
                return;
            }
        }
        files.stamp = stamp;
        files.seen = stamp;
        let pair = match Pair::read(&files.cert, &files.key) {
            Ok(pair) => pair,
            Err(why) => {
                // A file mid-replacement, or gone: the next change of
                // its metadata tries again.
                tracing::error!(
                    %trigger, error = %why,
                    "TLS certificate not reloaded: the one in force stays"
                );
                return;
            }
        };
        let digest = pair.digest();
        if digest == files.digest {
            match (&files.refused, trigger) {
                (Some(why), Trigger::Reload) => tracing::warn!(
                    error = %why,
                    "TLS certificate files unchanged since they were refused: the one in force stays"
                ),
                (None, Trigger::Reload) => tracing::info!("TLS certificate unchanged"),
                _ => {}
            }
            return;
        }
        files.digest = digest;
        match parse(&self.provider, &pair, &files.cert, &files.key) {
            Ok(loaded) => {
                tracing::info!(
                    %trigger,
                    cert = %files.cert.display(),
                    fingerprint = %fingerprint(&loaded),
                    "TLS certificate reloaded"
                );
                files.refused = None;
                self.swap(loaded);
            }
            Err(why) => {
                tracing::error!(
                    %trigger, error = %why,
                    "TLS certificate not reloaded: the one in force stays"
                );
                files.refused = Some(why);
            }
        }
    }
}

/// The RTMPS listener's TLS side: the acceptor for
/// `tincan_tokio::Server::listen_tls` and the certificate it serves.
pub struct Tls {
    /// Accepts RTMPS connections with the certificate in force.
    pub acceptor: TlsAcceptor,
    store: Arc<CertStore>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("store", &self.store).finish()
    }
}

/// rustls with the aws-lc-rs provider, TLS 1.3 and 1.2, its default
/// cipher suites (AEAD with forward secrecy only: AES-GCM and
/// ChaCha20-Poly1305 over ECDHE, X25519MLKEM768 preferred), no client
/// certificates.
fn server_config(store: Arc<CertStore>) -> Result<rustls::ServerConfig, String> {
    let config = rustls::ServerConfig::builder_with_provider(store.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    Ok(config)
}

impl Tls {
    /// The TLS side of `args`, if RTMPS or `wss://` (`wss`) is listened
    /// for: `Ok(None)` without `--tls-listen` and `--wss-listen`; an error (the server does not start)
    /// without a certificate or key, or with a pair that does not load.
    pub fn from_args(args: &TlsArgs, wss: bool) -> Result<Option<Tls>, String> {
        if args.tls_listen.is_empty() && !wss {
            if args.tls_cert.is_some() || args.tls_key.is_some() {
                tracing::warn!(
                    "tls.cert or tls.key is set without tls.listen or ws.wss_listen: \
                     no TLS listener"
                );
            }
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
            return Err(
                "tls.listen and ws.wss_listen need a certificate chain and its key: give \
                 --tls-cert and --tls-key (tls.cert and tls.key in the file, SSL_CERT and \
                 SSL_KEY)"
                    .into(),
            );
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let store = Arc::new(CertStore::load(provider, cert, key)?);
        let acceptor = TlsAcceptor::from(Arc::new(server_config(store.clone())?));
        Ok(Some(Tls { acceptor, store }))
    }

    /// Reloads the certificate from now on: on every reload (`SIGHUP`),
    /// from new paths if they changed, and whenever its files change.
    /// Call inside the tokio runtime.
    pub fn watch(&self, reloader: &Arc<Reloader>) {
        let store = self.store.clone();
        reloader.apply_live(&["tls.cert", "tls.key"], move |loaded| {
            let args = TlsArgs::from_arg_matches(&loaded.matches).map_err(|e| e.to_string())?;
            match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => store.switch(cert, key),
                _ => Err("RTMPS needs tls.cert and tls.key".into()),
            }
        });
        // Every successful reload, with or without new paths: the files
        // may have been rewritten in place.
        let mut reloads = reloader.subscribe();
        let store = self.store.clone();
        tokio::spawn(async move {
            while reloads.changed().await.is_ok() {
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || store.check(Trigger::Reload)).await;
            }
        });
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(POLL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || store.check(Trigger::Poll)).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_missing_or_empty_pair_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = write(dir.path(), "c.pem", "");
        let key = write(dir.path(), "k.pem", "");
        let e = CertStore::load(provider(), &cert, &key).unwrap_err();
        assert!(e.contains("c.pem") && e.contains("no certificate"), "{e}");
        let e = CertStore::load(provider(), &dir.path().join("none.pem"), &key).unwrap_err();
        assert!(e.contains("cannot read") && e.contains("none.pem"), "{e}");
    }

    #[test]
    fn a_malformed_key_is_described_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let cert = write(
            dir.path(),
            "c.pem",
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        );
        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA";
        let key = write(
            dir.path(),
            "k.pem",
            &format!("-----BEGIN PRIVATE KEY-----\n{secret}!!\n-----END PRIVATE KEY-----\n"),
        );
        let e = CertStore::load(provider(), &cert, &key).unwrap_err();
        assert!(e.contains("k.pem"), "{e}");
        assert!(!e.contains(secret), "{e}");
    }
}
