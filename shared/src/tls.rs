//! TLS for the connections Basalt opens: rustls (ring provider) for PostgreSQL, with libpq's
//! `sslmode` semantics, and the crypto provider the redis crate's `rediss://` uses.
//!
//! [`postgres`] turns a connection string into a tokio-postgres `Config` and a
//! [`PgConnector`] (tokio-postgres-rustls underneath). The rustls client configuration is
//! built once per connector, on the first TLS handshake, not per connection, and not at all
//! when no TLS is negotiated (`sslmode=disable`, or `prefer` against a server without TLS):
//! a Lambda cold start pays nothing for it before the first query, and loading the platform's
//! roots is only done for `verify-ca`/`verify-full` without `sslrootcert`. A `sslrootcert`
//! file is read when the connector is made, so a missing or unreadable file stops start-up.
//!
//! What is verified (libpq's rules): `verify-full` checks the chain and that the certificate
//! names the host (`host`, also when `hostaddr` is what is dialled); `verify-ca` checks the
//! chain only; `prefer` and `require` check the chain when `sslrootcert` names a file, and
//! otherwise nothing (they then only encrypt: a man in the middle is not detected). `prefer`
//! falls back to plain TCP when the server declines TLS (tokio-postgres's rule); a handshake
//! that fails is an error, never a reason to go plain, so a refused certificate is not
//! quietly downgraded to an unencrypted session.

use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    str::FromStr,
    sync::{Arc, OnceLock},
};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        verify_server_cert_signed_by_trust_anchor,
    },
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
    server::ParsedCertificate,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::database::{PostgresTls, RootCerts, SslMode, split_tls_params};

/// The process's rustls crypto provider: ring, installed as the process default if nothing
/// else installed one first (the redis crate builds its client configuration from the
/// default, and would panic at connect time if it could not pick one).
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    // Losing a race to another installer is fine: that one is the default then.
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// A PostgreSQL connection string as tokio-postgres needs it: its `Config` (TLS parameters
/// applied) and the connector for its `sslmode`. Errors never repeat the string (it may hold
/// a password).
pub fn postgres(conn: &str) -> Result<(tokio_postgres::Config, PgConnector), String> {
    let (rest, tls) = split_tls_params(conn)?;
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| e.to_string())?;
    config.ssl_mode(match tls.mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    Ok((config, PgConnector::new(&tls)?))
}

/// How a server certificate is checked.
#[derive(Debug)]
enum Verify {
    Nothing,
    Chain(Roots),
    ChainAndName(Roots),
}

#[derive(Debug)]
enum Roots {
    /// From `sslrootcert`, read when the connector was made.
    Given(Arc<RootCertStore>),
    /// The platform's trust store, loaded on the first handshake.
    Platform,
}

/// tokio-postgres's `MakeTlsConnect` for one connection string. Cheap to clone: every clone
/// shares the one rustls configuration, built on first use.
#[derive(Clone)]
pub struct PgConnector(Arc<Lazy>);

struct Lazy {
    verify: Verify,
    /// Says in handshake errors what the certificate was checked against.
    policy: String,
    built: OnceLock<Result<MakeRustlsConnect, String>>,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnector")
            .field("verify", &self.0.verify)
            .field("built", &self.0.built.get().is_some())
            .finish()
    }
}

impl PgConnector {
    /// Reads the `sslrootcert` file if there is one; builds nothing else yet.
    pub fn new(tls: &PostgresTls) -> Result<Self, String> {
        let roots = || -> Result<Roots, String> {
            Ok(match &tls.roots {
                RootCerts::Platform => Roots::Platform,
                RootCerts::File(path) => Roots::Given(Arc::new(read_roots(path)?)),
            })
        };
        let verify = match tls.mode {
            SslMode::VerifyFull => Verify::ChainAndName(roots()?),
            _ if tls.verifies_chain() => Verify::Chain(roots()?),
            _ => Verify::Nothing,
        };
        let trusted = match &tls.roots {
            RootCerts::File(path) => format!("sslrootcert {}", path.display()),
            RootCerts::Platform => "the platform's root certificates".to_owned(),
        };
        let policy = match verify {
            Verify::Nothing => format!("sslmode={}, no certificate check", tls.mode.as_str()),
            Verify::Chain(_) => format!(
                "sslmode={}: the certificate must chain to {trusted}",
                tls.mode.as_str()
            ),
            Verify::ChainAndName(_) => format!(
                "sslmode={}: the certificate must chain to {trusted} and name the host",
                tls.mode.as_str()
            ),
        };
        Ok(Self(Arc::new(Lazy {
            verify,
            policy,
            built: OnceLock::new(),
        })))
    }

    fn made(&self) -> Result<MakeRustlsConnect, String> {
        self.0
            .built
            .get_or_init(|| client_config(&self.0.verify).map(MakeRustlsConnect::new))
            .clone()
    }
}

/// The CA certificates of a PEM file; at least one, or the file is useless as a root.
fn read_roots(path: &std::path::Path) -> Result<RootCertStore, String> {
    let what = || format!("sslrootcert {}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", what()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{}: no usable CA certificate in the file", what()));
    }
    Ok(roots)
}

fn platform_roots() -> Result<Arc<RootCertStore>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "no root certificates found in the platform's store ({}); set sslrootcert",
            errors.join("; ")
        ));
    }
    Ok(Arc::new(roots))
}

fn client_config(verify: &Verify) -> Result<ClientConfig, String> {
    let provider = provider();
    let load = |roots: &Roots| match roots {
        Roots::Given(given) => Ok(given.clone()),
        Roots::Platform => platform_roots(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = match verify {
        Verify::ChainAndName(roots) => builder
            .with_root_certificates(load(roots)?)
            .with_no_client_auth(),
        Verify::Chain(roots) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly {
                roots: load(roots)?,
                provider,
            }))
            .with_no_client_auth(),
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
            .with_no_client_auth(),
    };
    // PostgreSQL 17 requires this ALPN for `sslnegotiation=direct`; older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

impl<S> MakeTlsConnect<S> for PgConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = PgTlsConnect;
    type Error = Infallible;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<PgTlsConnect, Infallible> {
        // Called before every connection attempt, TLS or not: only remember the host here.
        Ok(PgTlsConnect {
            connector: self.clone(),
            hostname: hostname.to_owned(),
        })
    }
}

/// One TLS handshake with one host.
pub struct PgTlsConnect {
    connector: PgConnector,
    hostname: String,
}

type Handshake<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type Error = io::Error;
    type Future = Handshake<Self::Stream>;

    fn connect(self, stream: S) -> Self::Future {
        let policy = self.connector.0.policy.clone();
        let mut made = match self.connector.made() {
            Ok(made) => made,
            Err(e) => {
                let e = io::Error::other(format!("{e} ({policy})"));
                return Box::pin(std::future::ready(Err(e)));
            }
        };
        let Ok(tls) =
            <MakeRustlsConnect as MakeTlsConnect<S>>::make_tls_connect(&mut made, &self.hostname);
        let handshake = tls.connect(stream);
        Box::pin(async move {
            // rustls says what is wrong with the certificate ("invalid peer certificate:
            // UnknownIssuer"); add what it was checked against, so the fix is obvious.
            handshake
                .await
                .map_err(|e| io::Error::new(e.kind(), HandshakeFailed { cause: e, policy }))
        })
    }
}

/// A failed handshake and the policy it was checked against. The cause stays reachable as the
/// error's source, so callers can tell rustls's refusal of a certificate (permanent) from a
/// connection that broke mid-handshake (worth retrying).
#[derive(Debug)]
struct HandshakeFailed {
    cause: io::Error,
    policy: String,
}

impl std::fmt::Display for HandshakeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.cause, self.policy)
    }
}

impl std::error::Error for HandshakeFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// `verify-ca` (and `prefer`/`require` with a root file): the chain is checked, the name not.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `prefer`/`require` without a root file: encryption only, as libpq does. The handshake
/// signatures are still checked, so the server holds the key of the certificate it sent.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    //! Against the test PostgreSQL, which `scripts/test` starts with TLS on and a certificate
    //! for `localhost` only, signed by a throwaway CA (`testing::tls_ca`).

    use std::time::Duration;

    use super::*;
    use crate::{
        db::{Db, DbError},
        testing,
    };

    /// A fresh test database reached at `host` with these TLS parameters.
    async fn db_at(host: &str, params: &str) -> (String, Db) {
        let url = testing::tls_url(&testing::create_database().await, host, params);
        let db = Db::connect_lazy(&url, 1, Duration::from_secs(5)).unwrap();
        (url, db)
    }

    /// The error and its causes on one line, as `host migrate` and the request log print them
    /// (tokio-postgres keeps what went wrong in the handshake in the source, not the message).
    fn chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }

    /// Whether the session runs over TLS, as the server sees it.
    async fn encrypted(db: &Db) -> Result<bool, DbError> {
        db.read("test.ssl", |c| async move {
            let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
            Ok(c.query_one(sql, &[]).await?.get(0))
        })
        .await
    }

    #[tokio::test]
    async fn verify_full_with_the_right_ca_connects_and_encrypts() {
        let ca = testing::tls_ca();
        let (url, db) = db_at(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        )
        .await;
        // Migrations run on the same connector as every query.
        db.migrate().await.unwrap();
        assert!(encrypted(&db).await.unwrap());
        // So do the test fixtures' own sessions.
        assert!(testing::backends(&url).await >= 1);
    }

    #[tokio::test]
    async fn a_certificate_from_another_ca_is_refused_with_a_clear_error() {
        let other = testing::other_ca();
        // `require` with a root file verifies the chain, as libpq does.
        for mode in ["verify-full", "verify-ca", "require"] {
            let (_, db) = db_at("localhost", &format!("sslmode={mode}&sslrootcert={other}")).await;
            // What `host migrate` prints, and what `/ready` logs.
            let err = chain(&db.migrate().await.unwrap_err());
            assert!(
                err.contains("invalid peer certificate: UnknownIssuer")
                    && err.contains(&format!(
                        "sslmode={mode}: the certificate must chain to sslrootcert {other}"
                    )),
                "{mode}: {err}"
            );
        }
        // The platform's roots do not know a throwaway CA either.
        let (_, db) = db_at("localhost", "sslmode=verify-full").await;
        let err = chain(&encrypted(&db).await.unwrap_err());
        assert!(err.contains("platform's root certificates"), "{err}");
    }

    #[tokio::test]
    async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
        let ca = testing::tls_ca();
        // The certificate names `localhost`, not the address 127.0.0.1.
        let (_, db) = db_at(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        )
        .await;
        let err = chain(&encrypted(&db).await.unwrap_err());
        assert!(
            err.contains("certificate not valid for name \"127.0.0.1\""),
            "{err}"
        );
        // Dialling an address while verifying a name is what `hostaddr` is for.
        let (_, db) = db_at(
            "localhost",
            &format!("hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
        )
        .await;
        assert!(encrypted(&db).await.unwrap());
        for params in [
            format!("sslmode=verify-ca&sslrootcert={ca}"),
            format!("sslmode=require&sslrootcert={ca}"),
        ] {
            let (_, db) = db_at("127.0.0.1", &params).await;
            assert!(encrypted(&db).await.unwrap(), "{params}");
        }
    }

    #[tokio::test]
    async fn disable_stays_plain_and_prefer_and_require_encrypt_without_verifying() {
        let (_, db) = db_at("127.0.0.1", "sslmode=disable").await;
        assert!(!encrypted(&db).await.unwrap());
        // No sslmode is libpq's `prefer`; neither it nor `require` checks the certificate,
        // here one from a CA nobody trusts, for a name that is not the host's.
        let (_, db) = db_at("127.0.0.1", "application_name=prefer").await;
        assert!(encrypted(&db).await.unwrap());
        let (_, db) = db_at("127.0.0.1", "sslmode=require").await;
        assert!(encrypted(&db).await.unwrap());
    }

    #[tokio::test]
    async fn the_rustls_configuration_is_built_on_the_first_handshake_only() {
        let url = testing::create_database().await;
        let connect = |params: &str| {
            let (config, tls) = postgres(&testing::tls_url(&url, "127.0.0.1", params)).unwrap();
            async move {
                let (client, conn) = config.connect(tls.clone()).await.unwrap();
                drop(client);
                let _ = conn.await;
                tls
            }
        };
        // Nothing negotiated TLS: nothing was built (a Lambda cold start pays nothing).
        let tls = connect("sslmode=disable").await;
        assert!(tls.0.built.get().is_none());
        let tls = connect("sslmode=require").await;
        assert!(tls.0.built.get().is_some_and(Result::is_ok));
    }

    #[test]
    fn an_unusable_root_file_stops_start_up_naming_database_url() {
        let err = Db::connect_lazy(
            "postgres://u:hunter2@db/app?sslmode=verify-full&sslrootcert=/no/such/ca.pem",
            1,
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("DATABASE_URL: sslrootcert /no/such/ca.pem: ") && !err.contains("hunter2"),
            "{err}"
        );
        // Not a PEM file at all: refused as well, rather than failing every handshake.
        let err = Db::connect_lazy(
            &format!(
                "postgres://db/app?sslmode=verify-ca&sslrootcert={}/src/tls.rs",
                env!("CARGO_MANIFEST_DIR")
            ),
            1,
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no usable CA certificate"), "{err}");
    }
}
