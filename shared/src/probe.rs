//! `host healthcheck` and `worker healthcheck`: one HTTP GET of the process's own readiness
//! endpoint, for container healthchecks (Docker Compose) in an image with no shell and no
//! curl. Written here rather than with an HTTP client: it is one request to loopback whose
//! status line is all that matters, and neither the host nor the worker needs a client for
//! anything else.

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr} did not answer within {0:?}", timeout)]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr} answered something that is not HTTP: {line:?}")]
    NotHttp { addr: SocketAddr, line: String },
    #[error("GET {path} answered {status}")]
    Status { path: String, status: u16 },
}

/// Where to connect for a server listening on `listen`: an unspecified address (`0.0.0.0`,
/// `::`) means every interface, so loopback.
pub fn local_target(listen: SocketAddr) -> SocketAddr {
    let mut target = listen;
    if listen.ip().is_unspecified() {
        target.set_ip(match listen {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    target
}

/// `GET path` on the server listening on `listen`; `Ok` with the status when it is 2xx.
pub async fn check(listen: SocketAddr, path: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let addr = local_target(listen);
    let status = tokio::time::timeout(timeout, status_of(addr, path))
        .await
        .map_err(|_| ProbeError::Timeout { addr, timeout })??;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(ProbeError::Status {
            path: path.to_owned(),
            status,
        })
    }
}

async fn status_of(addr: SocketAddr, path: &str) -> Result<u16, ProbeError> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| ProbeError::Connect { addr, source })?;
    let io = |source| ProbeError::Io { addr, source };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    // The status line is in the first bytes; read until its end (or 1 KiB).
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    // "HTTP/1.1 200 OK"
    let mut parts = line.split(' ');
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(status))) if version.starts_with("HTTP/") => Ok(status),
        _ => Err(ProbeError::NotHttp {
            addr,
            line: line.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve(answer: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_2xx_passes_and_anything_else_names_the_status() {
        let ok = serve("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        assert_eq!(
            check(ok, "/ready", Duration::from_secs(5)).await.unwrap(),
            200
        );
        let down = serve("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let e = check(down, "/ready", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "GET /ready answered 503");
        let garbage = serve("SSH-2.0-OpenSSH\r\n").await;
        assert!(matches!(
            check(garbage, "/ready", Duration::from_secs(5)).await,
            Err(ProbeError::NotHttp { .. })
        ));
    }

    #[tokio::test]
    async fn an_unspecified_listen_address_is_probed_on_loopback() {
        let ok = serve("HTTP/1.1 204 No Content\r\n\r\n").await;
        let listen = SocketAddr::from(([0, 0, 0, 0], ok.port()));
        assert_eq!(local_target(listen), ok);
        assert_eq!(
            check(listen, "/", Duration::from_secs(5)).await.unwrap(),
            204
        );
        // Nothing listening: the error says where it tried.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let e = check(addr, "/", Duration::from_secs(5)).await.unwrap_err();
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}
