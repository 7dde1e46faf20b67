//! PostgreSQL settings: `DATABASE_URL` (with its `sslmode` and `sslrootcert`), `DB_POOL_MAX`,
//! `SLOW_QUERY_MS`.
//!
//! tokio-postgres parses the connection string itself but knows only `sslmode=disable|prefer|
//! require` and rejects `sslrootcert` as an unknown option, so [`split_tls_params`] reads those
//! two parameters (with libpq's values and defaults) and hands the rest over unchanged.

use std::{borrow::Cow, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, Env, Runtime};

/// What `Db` needs: where the database is, how many connections to hold, what is slow.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Holds the password of the database role, hence secret.
    url: SecretString,
    /// Upper bound of pooled connections; Lambda defaults to 2 because every warm container
    /// holds its own pool and PostgreSQL's `max_connections` is shared by all of them.
    pub pool_max: usize,
    /// Operations slower than this are logged as warnings with their name.
    pub slow_query: Duration,
}

impl DatabaseSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let url = env.require(
            "DATABASE_URL",
            " (e.g. postgres://user:pass@127.0.0.1:5432/basalt; scripts/dev sets one up)",
        )?;
        // Checked here so that a mistyped sslmode stops the process at start-up, naming the
        // variable; the URL itself is never part of the message (it holds the password).
        split_tls_params(&url).map_err(|reason| ConfigError::InvalidSecret {
            name: "DATABASE_URL",
            reason,
        })?;
        let default_pool = match env.runtime {
            Runtime::Host => 16,
            Runtime::Lambda => 2,
        };
        Ok(Self {
            url: url.into(),
            pool_max: env.positive_or("DB_POOL_MAX", default_pool)?,
            slow_query: Duration::from_millis(env.parse_or("SLOW_QUERY_MS", 500u64)?),
        })
    }

    /// The database URL, for the one place that connects.
    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }
}

/// libpq's `sslmode` values. Certificates are verified only by the last two, and by `prefer`
/// and `require` when `sslrootcert` names a file (as libpq does when it finds a root file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it, else plain (libpq's default).
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS with a certificate chaining to a trusted root; any host name.
    VerifyCa,
    /// TLS with a certificate chaining to a trusted root and naming the host.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where trusted roots come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// No `sslrootcert`, or libpq's `sslrootcert=system`: the platform's trust store.
    Platform,
    /// `sslrootcert=<path>`: only the CA certificates in that PEM file.
    File(PathBuf),
}

/// The TLS part of a PostgreSQL connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTls {
    pub mode: SslMode,
    pub roots: RootCerts,
}

impl PostgresTls {
    /// Whether the server's certificate is checked against [`PostgresTls::roots`]: libpq
    /// verifies under `verify-*`, and under `prefer`/`require` when given a root file.
    pub fn verifies_chain(&self) -> bool {
        match self.mode {
            SslMode::Disable => false,
            SslMode::Prefer | SslMode::Require => matches!(self.roots, RootCerts::File(_)),
            SslMode::VerifyCa | SslMode::VerifyFull => true,
        }
    }
}

/// Splits `sslmode` and `sslrootcert` off a connection string, in either of libpq's forms
/// (`postgres://…?sslmode=verify-full&sslrootcert=/ca.pem` or `host=… sslmode=…`), and returns
/// the rest for tokio-postgres. An error says what is wrong without repeating the string.
pub fn split_tls_params(conn: &str) -> Result<(String, PostgresTls), String> {
    let (rest, mode, root) = match url_query(conn) {
        Some((base, query)) => split_url_query(base, query)?,
        None if conn.starts_with("postgres://") || conn.starts_with("postgresql://") => {
            (conn.to_owned(), None, None)
        }
        None => split_key_values(conn)?,
    };
    tls_params(mode.as_deref(), root.as_deref()).map(|tls| (rest, tls))
}

/// libpq's rules for the two values, `sslrootcert=system` included (PostgreSQL 16).
fn tls_params(mode: Option<&str>, root: Option<&str>) -> Result<PostgresTls, String> {
    let roots = match root {
        None | Some("system") => RootCerts::Platform,
        Some("") => return Err("sslrootcert is empty".into()),
        Some(path) => RootCerts::File(PathBuf::from(path)),
    };
    let system = root == Some("system");
    let mode = match mode {
        // libpq: "system" makes verify-full the default, and a weaker mode an error.
        None if system => SslMode::VerifyFull,
        None => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("prefer") => SslMode::Prefer,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => {
            return Err(format!(
                "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    if system && mode != SslMode::VerifyFull {
        return Err(format!(
            "sslrootcert=system requires sslmode=verify-full, not {}",
            mode.as_str()
        ));
    }
    Ok(PostgresTls { mode, roots })
}

/// The URL form's base and query, split where tokio-postgres splits them: the query starts at
/// the first `?` after the credentials (which end at the first `@`).
fn url_query(conn: &str) -> Option<(&str, &str)> {
    let after_scheme = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| conn.strip_prefix(p).map(|_| p.len()))?;
    let creds_end = conn[after_scheme..]
        .find('@')
        .map_or(after_scheme, |i| after_scheme + i + 1);
    let q = creds_end + conn[creds_end..].find('?')?;
    Some((&conn[..q], &conn[q + 1..]))
}

type Split = (String, Option<String>, Option<String>);

fn split_url_query(base: &str, query: &str) -> Result<Split, String> {
    let decode = |s: &str, what: &str| -> Result<String, String> {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(Cow::into_owned)
            .map_err(|_| format!("{what} is not valid UTF-8 once percent-decoded"))
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for param in query.split('&') {
        // A parameter without `=` is left for tokio-postgres to report.
        let key = param.split_once('=').map(|(k, v)| (decode(k, "a key"), v));
        match key {
            Some((Ok(k), v)) if k == "sslmode" => mode = Some(decode(v, "sslmode")?),
            Some((Ok(k), v)) if k == "sslrootcert" => root = Some(decode(v, "sslrootcert")?),
            _ => kept.push(param),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, root))
}

/// The `key=value` form, tokenised as tokio-postgres does (values may be `'quoted'`, `\`
/// escapes the next character); the other pairs are written back quoted.
fn split_key_values(conn: &str) -> Result<Split, String> {
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=')).collect();
        if key.is_empty() {
            if chars.peek().is_some() {
                return Err("a parameter has no name".into());
            }
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("parameter {key:?} has no `=`"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        let mut closed = !quoted;
        while let Some(c) = chars.next_if(|c| quoted || !c.is_whitespace()) {
            match c {
                '\'' if quoted => {
                    closed = true;
                    break;
                }
                '\\' => value.extend(chars.next()),
                c => value.push(c),
            }
        }
        if !closed {
            return Err(format!("the value of {key:?} has no closing quote"));
        }
        match key.as_str() {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => {
                let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
                kept.push(format!("{key}='{escaped}'"));
            }
        }
    }
    Ok((kept.join(" "), mode, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(conn: &str) -> (String, PostgresTls) {
        split_tls_params(conn).unwrap()
    }

    fn tls(mode: SslMode, roots: RootCerts) -> PostgresTls {
        PostgresTls { mode, roots }
    }

    #[test]
    fn libpq_defaults_apply_when_the_url_says_nothing() {
        let url = "postgres://u:p@db.example.com:5432/app";
        assert_eq!(
            split(url),
            (url.to_owned(), tls(SslMode::Prefer, RootCerts::Platform))
        );
        // `system` means the platform's roots, and makes verify-full the default (libpq 16).
        let (_, t) = split("postgres://db/app?sslrootcert=system");
        assert_eq!(t, tls(SslMode::VerifyFull, RootCerts::Platform));
    }

    #[test]
    fn the_url_form_loses_only_the_tls_parameters() {
        let (rest, t) = split(
            "postgresql://u:p%3Fw@db:5432/app?application_name=x&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca%20bundle.pem&connect_timeout=3",
        );
        assert_eq!(
            rest,
            "postgresql://u:p%3Fw@db:5432/app?application_name=x&connect_timeout=3"
        );
        assert_eq!(
            t,
            tls(
                SslMode::VerifyFull,
                RootCerts::File("/etc/ca bundle.pem".into())
            )
        );
        let (rest, t) = split("postgres://db/app?sslmode=disable");
        assert_eq!(rest, "postgres://db/app");
        assert_eq!(t.mode, SslMode::Disable);
        // A `?` in the (unencoded) password is not the query, as tokio-postgres reads it.
        let (rest, t) = split("postgres://u:pa?ss@db/app?sslmode=require");
        assert_eq!(rest, "postgres://u:pa?ss@db/app");
        assert_eq!(t.mode, SslMode::Require);
    }

    #[test]
    fn the_key_value_form_loses_only_the_tls_parameters() {
        let (rest, t) = split(
            r"host=db  port = 5432 password='it\'s' sslmode=verify-ca sslrootcert='/a b/ca.pem' user=x\ y",
        );
        // Re-quoted: tokio-postgres reads back exactly the values it would have read.
        assert_eq!(rest, r"host='db' port='5432' password='it\'s' user='x y'");
        assert_eq!(
            t,
            tls(SslMode::VerifyCa, RootCerts::File("/a b/ca.pem".into()))
        );
        let pg: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(pg.get_user(), Some("x y"));
        assert_eq!(pg.get_password(), Some(&b"it's"[..]));
        assert!(split_tls_params("host='db").unwrap_err().contains("quote"));
    }

    #[test]
    fn prefer_and_require_verify_only_with_a_root_file() {
        let file = RootCerts::File("/ca.pem".into());
        assert!(!tls(SslMode::Require, RootCerts::Platform).verifies_chain());
        assert!(tls(SslMode::Require, file.clone()).verifies_chain());
        assert!(tls(SslMode::Prefer, file.clone()).verifies_chain());
        assert!(!tls(SslMode::Disable, file).verifies_chain());
        assert!(tls(SslMode::VerifyCa, RootCerts::Platform).verifies_chain());
    }

    #[test]
    fn invalid_tls_parameters_are_refused_without_printing_the_url() {
        for (conn, expected) in [
            (
                "postgres://u:hunter2@db/app?sslmode=verify",
                "sslmode=\"verify\"",
            ),
            (
                "postgres://u:hunter2@db/app?sslmode=allow",
                "sslmode=\"allow\"",
            ),
            (
                "postgres://u:hunter2@db/app?sslrootcert=system&sslmode=require",
                "verify-full",
            ),
            ("postgres://u:hunter2@db/app?sslrootcert=", "empty"),
            (
                "host=db password=hunter2 sslmode=VERIFY-FULL",
                "VERIFY-FULL",
            ),
        ] {
            let err = split_tls_params(conn).unwrap_err();
            assert!(err.contains(expected), "{conn}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
