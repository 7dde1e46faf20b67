//! Rate limiting against real Redis: exact budgets under concurrency, one budget per principal
//! and endpoint, IP limits before auth, and the in-memory fallback through a Redis outage.

use reqwest::Method;
use serde_json::json;
use shared::testing;
use uuid::Uuid;

use crate::helpers::{all_logs, header, spawn_app_with, with_redis};

async fn redis_keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn exactly_n_requests_pass_then_429_with_rate_limit_headers() {
    let app = spawn_app_with(with_redis(5)).await;
    let user = app.user().await;
    for i in 0..5 {
        let r = app.get("/v1/items", &user.token).await;
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(header(&r, "ratelimit-limit"), "5");
        assert_eq!(header(&r, "ratelimit-remaining"), (4 - i).to_string());
        let reset: u64 = header(&r, "ratelimit-reset").parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
    }
    let r = app.get("/v1/items", &user.token).await;
    r.assert_problem(429);
    assert_eq!(header(&r, "ratelimit-remaining"), "0");
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The decision was Redis's: the limiter's key is there, named by principal and endpoint.
    let keys = redis_keys(
        &testing::redis_url(),
        &app.state.config.rate_limit.redis_key_prefix,
    )
    .await;
    let expected = format!(
        "{}:rl:{{user:{}|GET /v1/items}}",
        app.state.config.rate_limit.redis_key_prefix, user.id
    );
    assert!(keys.contains(&expected), "{keys:?}");
    assert_eq!(app.state.limiter.fallback_decisions(), 0);
}

#[tokio::test]
async fn concurrent_requests_admit_exactly_the_budget() {
    let app = spawn_app_with(with_redis(10)).await;
    let user = app.user().await;
    let client = app.http.clone();
    let url = format!("{}/v1/items", app.base);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.clone(), user.token.clone());
            tokio::spawn(async move {
                client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap().as_u16() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (10, 10));
}

#[tokio::test]
async fn budgets_are_independent_per_user_and_per_endpoint() {
    let app = spawn_app_with(with_redis(3)).await;
    let alice = app.user().await;
    let bob = app.user().await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/items", &alice.token).await.status, 200);
    }
    app.get("/v1/items", &alice.token).await.assert_problem(429);
    // Bob's budget is his own; Alice's other endpoints have theirs.
    assert_eq!(app.get("/v1/items", &bob.token).await.status, 200);
    assert_eq!(
        app.post("/v1/items", &alice.token, json!({"title": "x"}))
            .await
            .status,
        201
    );
    // One budget per route template, whatever the id.
    let id = Uuid::now_v7();
    for _ in 0..3 {
        app.get(&format!("/v1/items/{id}"), &alice.token)
            .await
            .assert_problem(404);
    }
    app.get(&format!("/v1/items/{}", Uuid::now_v7()), &alice.token)
        .await
        .assert_problem(429);
    // An API key counts against its user's budget once it has authenticated here: many keys
    // of one user do not multiply the user's budget. Its first request counts against the
    // client's IP like any unproven credential.
    let created = app
        .post("/v1/api-keys", &alice.token, json!({"name": "k"}))
        .await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    let prefix = created.body["prefix"].as_str().unwrap().to_owned();
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    let redis_prefix = &app.state.config.rate_limit.redis_key_prefix;
    let r = app.get("/v1/items", &key).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "ratelimit-remaining"), "2", "the IP's budget");
    let keys = redis_keys(&testing::redis_url(), redis_prefix).await;
    assert!(
        keys.iter()
            .any(|k| k.contains("ip:127.0.0.1|GET /v1/items")),
        "{keys:?}"
    );
    // Now verified: Alice's own budget for this endpoint, which her JWT already spent.
    app.get("/v1/items", &key).await.assert_problem(429);
    assert!(
        !redis_keys(&testing::redis_url(), redis_prefix)
            .await
            .iter()
            .any(|k| k.contains(&format!("key:{prefix}"))),
        "no budget of the key's own"
    );
    // The prefix is public (key lists show it): the same prefix with another secret proves
    // nothing, so it spends the IP's budget (now 1 of 3 left), not the key owner's.
    let forged = format!("bsk_{prefix}_{}", "A".repeat(40));
    let r = app.get("/v1/items", &forged).await;
    r.assert_problem(401);
    assert_eq!(header(&r, "ratelimit-remaining"), "1");
    // A revoked key is forgotten by the limiter at once: its next request counts against the
    // IP again (and is refused by auth), not against Alice's spent budget.
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{key_id}"), &alice.token)
            .await
            .status,
        204
    );
    let r = app.get("/v1/items", &key).await;
    r.assert_problem(401);
    assert_eq!(header(&r, "ratelimit-remaining"), "0");
}

#[tokio::test]
async fn anonymous_floods_are_limited_by_ip_before_auth_runs() {
    let app = spawn_app_with(with_redis(4)).await;
    // Protected route, no credentials: 401 until the IP's budget is spent, then 429.
    for _ in 0..4 {
        app.send(Method::GET, "/v1/items", None, None)
            .await
            .assert_problem(401);
    }
    let r = app.send(Method::GET, "/v1/items", None, None).await;
    r.assert_problem(429);
    // Invalid tokens count against the IP too: they prove no identity. So do well-formed API
    // keys that never authenticated: made-up prefixes would otherwise each get a fresh budget.
    app.get("/v1/items", "forged.jwt.token")
        .await
        .assert_problem(429);
    for _ in 0..3 {
        app.get("/v1/items", &made_up_api_key())
            .await
            .assert_problem(429);
    }
    // Sign-in has the stricter auth budget (3 per minute here): brute force stops at the edge.
    for _ in 0..3 {
        app.token("victim@example.com", "guess-1234")
            .await
            .assert_problem(401);
    }
    app.token("victim@example.com", "guess-5678")
        .await
        .assert_problem(429);
    let keys = redis_keys(
        &testing::redis_url(),
        &app.state.config.rate_limit.redis_key_prefix,
    )
    .await;
    assert!(
        keys.iter()
            .any(|k| k.contains("ip:127.0.0.1|POST /v1/auth/token")),
        "{keys:?}"
    );
}

/// A well-formed API key (`bsk_<12 lower-case>_<40 alphanumerics>`) that was never issued.
fn made_up_api_key() -> String {
    let hex = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    format!("bsk_{}_{}", &hex[..12], &hex[12..52])
}

/// A Redis server of the test's own, to kill and restart.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is needed (scripts/test installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_outage_falls_back_to_memory_and_redis_is_used_again_when_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = OwnRedis::start(port);
    let url = redis.url();
    let url2 = url.clone();
    let app = spawn_app_with(move |mut c| {
        c.rate_limit.redis_url = Some(url2.into());
        c.rate_limit.redis_key_prefix = testing::redis_key_prefix();
        c.rate_limit.limits.default = "3/60".parse().unwrap();
        c
    })
    .await;
    let prefix = app.state.config.rate_limit.redis_key_prefix.clone();
    let alice = app.user().await;
    assert_eq!(app.get("/v1/items", &alice.token).await.status, 200);
    let keys = redis_keys(&url, &prefix).await;
    assert_eq!(
        keys.iter().filter(|k| k.contains("GET /v1/items")).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        app.send(Method::GET, "/ready", None, None).await.body["redis"],
        "ok"
    );

    redis.kill();
    // No 5xx, and limiting is still enforced: in memory, with a fresh window.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.get("/v1/items", &alice.token).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(
        app.state.limiter.outages(),
        1,
        "one outage, however many failed calls"
    );
    assert!(app.state.limiter.fallback_decisions() >= 5);
    let warnings = all_logs()
        .lines()
        .filter(|l| l.contains("Redis unavailable"))
        .count();
    assert!(warnings >= 1);
    let r = app.send(Method::GET, "/ready", None, None).await;
    assert_eq!(
        (r.status.as_u16(), r.body["redis"].as_str()),
        (200, Some("unavailable"))
    );

    // Redis returns (empty): after the retry pause, decisions are Redis's again.
    let _redis = OwnRedis::start(port);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let bob = app.user().await;
    let mut back = false;
    for _ in 0..20 {
        assert_eq!(app.get("/v1/users/me", &bob.token).await.status, 200);
        if redis_keys(&url, &prefix)
            .await
            .iter()
            .any(|k| k.contains(&format!("user:{}|GET /v1/users/me", bob.id)))
        {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(back, "Redis was not used again after it came back");
    assert_eq!(app.state.limiter.outages(), 1);
}

/// Sign-in and registration are public: the limiter ignores credentials presented there, so
/// one account's token (or each account it registers) buys no fresh sign-in budget.
#[tokio::test]
async fn credentials_do_not_buy_public_routes_a_fresh_budget() {
    let app = spawn_app_with(with_redis(100)).await;
    let alice = app.user().await;
    let bob = app.user().await;
    let attempt = |token: Option<String>| {
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/v1/auth/token",
                token.as_deref(),
                Some(json!({"email": "victim@example.com", "password": "guess-1234"})),
            )
            .await
        }
    };
    // `user()` signed both in once: 1 of the IP's 3 sign-in attempts is left.
    attempt(Some(alice.token.clone())).await.assert_problem(401);
    attempt(Some(bob.token.clone())).await.assert_problem(429);
    attempt(None).await.assert_problem(429);
    let keys = redis_keys(
        &testing::redis_url(),
        &app.state.config.rate_limit.redis_key_prefix,
    )
    .await;
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("|POST /v1/auth/token") && k.contains("user:")),
        "{keys:?}"
    );
}

/// The client address as a trusted proxy reports it.
async fn from(
    app: &crate::helpers::TestApp,
    ip: &str,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<serde_json::Value>,
) -> crate::helpers::Reply {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .header("x-forwarded-for", ip);
    if let Some(token) = auth {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    crate::helpers::TestApp::reply(req.send().await.unwrap()).await
}

fn behind_proxy(c: shared::config::Config) -> shared::config::Config {
    let mut c = with_redis(3)(c);
    c.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    c
}

#[tokio::test]
async fn sign_in_has_a_budget_per_account_whatever_the_address() {
    let app = spawn_app_with(|c| {
        let mut c = behind_proxy(c);
        c.rate_limit.limits.account = "2/600".parse().unwrap();
        c
    })
    .await;
    let guess = |ip: &'static str, email: &'static str| {
        let app = &app;
        async move {
            from(
                app,
                ip,
                Method::POST,
                "/v1/auth/token",
                None,
                Some(json!({"email": email, "password": "guess-1234"})),
            )
            .await
        }
    };
    // A botnet: every guess from another address, each well within its address's budget.
    guess("198.51.100.1", "victim@example.com")
        .await
        .assert_problem(401);
    guess("198.51.100.2", "Victim@Example.com")
        .await
        .assert_problem(401);
    let r = guess("198.51.100.3", " VICTIM@example.com ").await;
    r.assert_problem(429);
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
    // Another account is not affected, from the same addresses.
    guess("198.51.100.3", "other@example.com")
        .await
        .assert_problem(401);
}

#[tokio::test]
async fn ipv6_clients_count_per_64_and_methods_cannot_mint_keys() {
    let app = spawn_app_with(behind_proxy).await;
    let anonymous = |ip: &'static str| {
        let app = &app;
        async move { from(app, ip, Method::GET, "/v1/items", None, None).await }
    };
    // Three addresses of one /64 share its budget of 3; another /64 has its own.
    anonymous("2001:db8:1:2::1").await.assert_problem(401);
    anonymous("2001:db8:1:2::2").await.assert_problem(401);
    anonymous("2001:db8:1:2:ffff::3").await.assert_problem(401);
    anonymous("2001:db8:1:2::4").await.assert_problem(429);
    anonymous("2001:db8:1:3::1").await.assert_problem(401);
    // IPv4-mapped is the IPv4 client.
    anonymous("198.51.100.9").await.assert_problem(401);
    anonymous("::ffff:198.51.100.9").await.assert_problem(401);
    anonymous("198.51.100.9").await.assert_problem(401);
    anonymous("::ffff:198.51.100.9").await.assert_problem(429);
    // HEAD counts as GET.
    let user = app.user().await;
    for _ in 0..2 {
        let r = app
            .send(Method::HEAD, "/v1/items", Some(&user.token), None)
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(app.get("/v1/items", &user.token).await.status, 200);
    app.get("/v1/items", &user.token).await.assert_problem(429);
    // Made-up method tokens share one endpoint name: no key per token.
    for method in ["FOO", "BAR", "BAZ", "QUUX"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        from(&app, "192.0.2.77", method, "/v1/items", None, None).await;
    }
    let keys = redis_keys(
        &testing::redis_url(),
        &app.state.config.rate_limit.redis_key_prefix,
    )
    .await;
    let from_77: Vec<_> = keys
        .iter()
        .filter(|k| k.contains("ip:192.0.2.77|"))
        .collect();
    assert_eq!(from_77.len(), 1, "{from_77:?}");
    assert!(from_77[0].contains("|OTHER "), "{from_77:?}");
    assert!(keys.iter().all(|k| !k.contains("|HEAD ")), "{keys:?}");
}
