//! TLS for connections to PostgreSQL, chosen by `sslmode` as libpq (and so
//! psycopg, and 9.1 through it) chooses it, on rustls:
//!
//! - `disable`: never TLS;
//! - `allow`, `prefer` (the default): TLS when the server offers it, else
//!   plain; the server's certificate is not checked (libpq's `allow` tries
//!   plain first; here it is `prefer`, which differs only in choosing TLS
//!   when both would do);
//! - `require`: TLS or no connection; the certificate is not checked,
//!   unless a root certificate is given (then as `verify-ca`, as libpq);
//! - `verify-ca`: TLS, the certificate signed by a trusted root;
//! - `verify-full`: and issued for the host connected to.
//!
//! Roots come from `sslrootcert` (a PEM file, or `system` for the
//! operating system's store), else `~/.postgresql/root.crt` as in libpq.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The mode `value` names (case as libpq: lower), or None.
    pub fn parse(value: &str) -> Option<SslMode> {
        match value {
            "disable" => Some(SslMode::Disable),
            "allow" | "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    fn wire_mode(self) -> WireMode {
        match self {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        }
    }
}

/// Where TLS material comes from (all optional).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// A PEM file of trusted roots, or `system`.
    pub root_cert: Option<String>,
    /// The client's certificate chain (PEM), for certificate authentication.
    pub client_cert: Option<String>,
    /// The client's private key (PEM).
    pub client_key: Option<String>,
}

/// How connections negotiate TLS: the mode on the wire and the connector
/// (built once, shared by every connection of a pool).
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    files: TlsFiles,
    connector: MakeRustlsConnect,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("mode", &self.mode).finish()
    }
}

impl Tls {
    /// TLS for `mode`, with certificates from `files`; an error says which
    /// file could not be used and why.
    pub fn new(mode: SslMode, files: &TlsFiles) -> Result<Tls, String> {
        let provider = Arc::new(provider());
        let roots = match mode {
            SslMode::Disable | SslMode::Prefer => None,
            SslMode::Require => match files.root_cert.as_deref() {
                Some(given) => Some(load_roots(given)?),
                None => default_root_file().map(|p| load_roots(&p)).transpose()?,
            },
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let given = files.root_cert.clone().or_else(default_root_file);
                match given {
                    Some(given) => Some(load_roots(&given)?),
                    None => {
                        return Err(format!(
                            "sslmode={} needs trusted root certificates: set sslrootcert \
                             (POSTGRES_SSLROOTCERT) to a PEM file or 'system', or put them in \
                             ~/.postgresql/root.crt",
                            mode_name(mode)
                        ))
                    }
                }
            }
        };
        let chain = roots
            .map(|roots| {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("cannot use the root certificates: {e}"))
            })
            .transpose()?;
        let verifier: Arc<dyn ServerCertVerifier> = match chain {
            Some(chain) if mode == SslMode::VerifyFull => chain,
            chain => Arc::new(NameNotChecked {
                provider: provider.clone(),
                chain,
            }),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&files.client_cert, &files.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("cannot read the client certificate {cert:?}: {e}"))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("cannot read the client key {key:?}: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("cannot use the client certificate {cert:?}: {e}"))?
            }
            _ => return Err("sslcert and sslkey must be given together".to_string()),
        };
        Ok(Tls {
            mode,
            files: files.clone(),
            connector: MakeRustlsConnect::new(config),
        })
    }

    /// No TLS at all.
    pub fn disabled() -> Tls {
        Tls::new(SslMode::Disable, &TlsFiles::default())
            .expect("TLS without certificates is always set up")
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// What makes two setups the same: the mode and the files.
    pub fn key(&self) -> String {
        format!("{:?} {:?}", self.mode, self.files)
    }

    pub(super) fn wire_mode(&self) -> WireMode {
        self.mode.wire_mode()
    }

    pub(super) fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }
}

/// ring's suites: it builds with a C compiler alone (aws-lc-rs, which
/// rustls now prefers for its post-quantum key exchange, needs more to
/// build wheels), and PostgreSQL servers offer no post-quantum groups yet.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

fn default_root_file() -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".postgresql").join("root.crt");
    path.is_file().then(|| path.to_string_lossy().into_owned())
}

fn load_roots(source: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if source == "system" {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err("sslrootcert=system: the system has no usable root certificates".into());
        }
        return Ok(roots);
    }
    let path = Path::new(source);
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the root certificates {source:?}: {e}"))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("no usable root certificate in {source:?}"));
    }
    Ok(roots)
}

/// Every mode but `verify-full`: the handshake's signatures are checked
/// (so the session is with the holder of the certificate's key), and, with
/// roots (`verify-ca`, or `require` given roots), the chain must lead to
/// one of them; the name the certificate was issued for is not compared
/// with the host. Without roots (`require`, `prefer`), the certificate is
/// taken as it is.
#[derive(Debug)]
struct NameNotChecked {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for NameNotChecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_libpq_names_them() {
        assert_eq!(SslMode::parse("disable"), Some(SslMode::Disable));
        assert_eq!(SslMode::parse("allow"), Some(SslMode::Prefer));
        assert_eq!(SslMode::parse("prefer"), Some(SslMode::Prefer));
        assert_eq!(SslMode::parse("require"), Some(SslMode::Require));
        assert_eq!(SslMode::parse("verify-ca"), Some(SslMode::VerifyCa));
        assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("VERIFY-FULL"), None);
        assert_eq!(SslMode::parse("on"), None);
    }

    #[test]
    fn verification_needs_roots_and_says_where_to_put_them() {
        let files = TlsFiles {
            root_cert: Some("/nonexistent/root.crt".into()),
            ..TlsFiles::default()
        };
        let error = Tls::new(SslMode::VerifyFull, &files).unwrap_err();
        assert!(error.contains("/nonexistent/root.crt"), "{error}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let files = TlsFiles {
            client_cert: Some("/tmp/cert.pem".into()),
            ..TlsFiles::default()
        };
        let error = Tls::new(SslMode::Require, &files).unwrap_err();
        assert!(error.contains("together"), "{error}");
    }

    #[test]
    fn modes_without_roots_need_no_files() {
        assert_eq!(Tls::disabled().mode(), SslMode::Disable);
        let prefer = Tls::new(SslMode::Prefer, &TlsFiles::default()).unwrap();
        assert_eq!(prefer.wire_mode(), WireMode::Prefer);
    }
}
