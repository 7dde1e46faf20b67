//! The host's connections over raw sockets: a client trickling its request head is cut off
//! after `HEADER_READ_TIMEOUT_SECONDS` while others are served, at `MAX_CONNECTIONS` a new
//! connection waits until another closes, and shutdown lets an in-flight request finish.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use crate::helpers::{TestApp, spawn_app_with};

const GET_HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: basalt.test\r\n\r\n";

fn addr(app: &TestApp) -> &str {
    app.base.strip_prefix("http://").unwrap()
}

/// Reads until the server closes the connection (EOF or a reset) and returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response (head, then a `Content-Length` body) off a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        let Some(head_end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length = text[..head_end]
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        if received.len() >= head_end + 4 + length {
            return text;
        }
    }
}

/// A connection that has been served once and stays open (keep-alive), holding its slot.
async fn served_connection(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(addr(app)).await.unwrap();
    stream.write_all(GET_HEALTH).await.unwrap();
    let response = timeout(Duration::from_secs(5), read_response(&mut stream))
        .await
        .expect("no response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    stream
}

#[tokio::test]
async fn a_client_trickling_its_request_head_is_disconnected_while_others_are_served() {
    let app = spawn_app_with(|mut c| {
        c.http.header_read_timeout = Duration::from_secs(1);
        c
    })
    .await;
    let (mut reader, mut writer) = TcpStream::connect(addr(&app)).await.unwrap().into_split();
    let started = Instant::now();
    // A head that never ends, one byte every 300 ms: each byte arrives well within any
    // per-read timeout, so only a deadline on the whole head stops it.
    let trickle = tokio::spawn(async move {
        let head = b"GET /health HTTP/1.1\r\nHost: basalt.test\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    // Meanwhile other connections are served as usual.
    served_connection(&app).await;

    let mut buf = [0u8; 1024];
    let closed = timeout(Duration::from_secs(5), async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    trickle.abort();
    assert!(
        closed.is_ok(),
        "a trickling client still holds its connection after {elapsed:?}"
    );
    // Cut off by the deadline, not refused at once.
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");

    // The server is still fine. A new connection: one kept alive from before would race the
    // server closing it, idle for as long as the header timeout (1 s here).
    served_connection(&app).await;
}

#[tokio::test]
async fn at_max_connections_a_new_connection_waits_until_one_closes() {
    let app = spawn_app_with(|mut c| {
        c.http.max_connections = 2;
        c
    })
    .await;
    // Two connections the server has certainly accepted: each answered a request.
    let first = served_connection(&app).await;
    let mut second = served_connection(&app).await;

    // The kernel completes a third handshake (the listen backlog), but the host does not
    // accept it while both slots are taken.
    let mut third = TcpStream::connect(addr(&app)).await.unwrap();
    third.write_all(GET_HEALTH).await.unwrap();
    let mut buf = [0u8; 64];
    let early = timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "served beyond MAX_CONNECTIONS=2: {early:?} {:?}",
        String::from_utf8_lossy(&buf)
    );

    // A slot frees when a connection closes; the waiting one is served.
    drop(first);
    let response = timeout(Duration::from_secs(5), read_response(&mut third))
        .await
        .expect("the waiting connection was not served after another closed");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Kept-alive connections keep working at the cap.
    second.write_all(GET_HEALTH).await.unwrap();
    let response = timeout(Duration::from_secs(5), read_response(&mut second))
        .await
        .expect("no response on a kept-alive connection");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_the_request_in_flight_finish() {
    let state = shared::testing::state().await;
    let app = host::Application::build(state).await.unwrap();
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    // A request in its handler when shutdown begins: hyper sends `100 Continue` only once the
    // handler starts reading the body, which is held back until after the signal.
    let body = br#"{"email": "drain@example.com", "password": "long enough"}"#;
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/auth/register HTTP/1.1\r\nHost: basalt.test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    let mut buf = [0u8; 256];
    while !interim.ends_with(b"\r\n\r\n") {
        let n = timeout(Duration::from_secs(5), in_flight.read(&mut buf))
            .await
            .expect("no 100 Continue")
            .unwrap();
        assert!(n > 0, "closed before 100 Continue");
        interim.extend_from_slice(&buf[..n]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{interim:?}");
    stop.send(()).unwrap();

    // New connections are refused once the listener is gone.
    let refused = timeout(Duration::from_secs(5), async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "still accepting after shutdown");
    assert!(
        !server.is_finished(),
        "stopped before the request in flight"
    );

    in_flight.write_all(body).await.unwrap();
    let response = String::from_utf8(
        timeout(Duration::from_secs(5), read_until_closed(&mut in_flight))
            .await
            .expect("the request in flight was not answered"),
    )
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(
        response.to_lowercase().contains("connection: close"),
        "{response}"
    );
    timeout(Duration::from_secs(5), server)
        .await
        .expect("run_until did not return after the last connection closed")
        .unwrap()
        .unwrap();
}
