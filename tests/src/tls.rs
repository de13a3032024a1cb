//! RTMPS test helpers: certificates made by the tests themselves (rcgen: a
//! test CA and leaf certificates for `localhost` and `127.0.0.1`), written
//! where the server reads them, and a TLS client that reports which
//! certificate the server presented.

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion};

/// A certificate authority made for one test: the server's certificates
/// are signed by it, and the test's client trusts it alone.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCa")
    }
}

/// A leaf certificate and its key, as PEM (what the server reads) and the
/// certificate as DER (what a client sees).
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A new CA with a fresh key.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "tincan test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// A certificate for `localhost` and `127.0.0.1` with common name
    /// `name` and serial number `serial`, and a fresh key.
    pub fn leaf(&self, name: &str, serial: u64) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(serial.into());
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// The CA's certificate, PEM (a CA file to trust).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA's certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }
}

/// Writes `contents` to `path` as a whole: a new file renamed over the old
/// one, as certbot's renewals appear.
pub fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).expect("create temp file");
    f.write_all(contents).expect("write temp file");
    f.sync_all().expect("sync temp file");
    std::fs::rename(&tmp, path).expect("rename over the old file");
}

/// Writes `leaf`'s certificate and key to `cert` and `key`, each whole.
pub fn install(leaf: &Leaf, cert: &Path, key: &Path) {
    replace_file(cert, leaf.cert_pem.as_bytes());
    replace_file(key, leaf.key_pem.as_bytes());
}

/// What a TLS handshake with the server showed.
#[derive(Debug, Clone)]
pub struct Presented {
    /// The server's end-entity certificate, DER.
    pub der: Vec<u8>,
    /// The TLS version negotiated (`TLSv1_3`, `TLSv1_2`).
    pub version: String,
    /// The cipher suite negotiated.
    pub suite: String,
}

fn client_config(ca: &TestCa, versions: &[&'static SupportedProtocolVersion]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.der()))
        .expect("the test CA is a valid root");
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A full TLS handshake with `127.0.0.1:port` as `localhost`, verified
/// against `ca`, with any of `versions`: what the server presented.
pub fn handshake_with(
    ca: &TestCa,
    port: u16,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Presented, String> {
    let (_tcp, conn) = connect_tls(ca, port, versions)?;
    presented(&conn)
}

/// What the server presented in `conn`'s completed handshake.
pub fn presented(conn: &ClientConnection) -> Result<Presented, String> {
    let der = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate presented")?
        .to_vec();
    Ok(Presented {
        der,
        version: format!("{:?}", conn.protocol_version().ok_or("no version")?),
        suite: format!(
            "{:?}",
            conn.negotiated_cipher_suite().ok_or("no suite")?.suite()
        ),
    })
}

/// A TCP connection to `127.0.0.1:port` with a completed TLS handshake, as
/// [`handshake_with`] makes it, kept open (e.g. to hold a connection slot).
pub fn connect_tls(
    ca: &TestCa,
    port: u16,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<(TcpStream, ClientConnection), String> {
    let mut tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("a DNS name");
    let mut conn = ClientConnection::new(Arc::new(client_config(ca, versions)), name)
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok((tcp, conn))
}

/// [`handshake_with`] with TLS 1.3 or 1.2, whichever the server prefers.
pub fn handshake(ca: &TestCa, port: u16) -> Result<Presented, String> {
    handshake_with(ca, port, rustls::ALL_VERSIONS)
}

/// The first bytes a TLS client sends: a complete ClientHello record.
pub fn client_hello(ca: &TestCa) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("a DNS name");
    let mut conn = ClientConnection::new(Arc::new(client_config(ca, rustls::ALL_VERSIONS)), name)
        .expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write to a Vec");
    }
    out
}
