//! API integration tests: the real host on port 0 against a real PostgreSQL, one fresh
//! database per test (see `shared::testing`). Every endpoint, its auth failure, its validation
//! failure, and cross-user isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{AppState, config::Config, testing};
use uuid::Uuid;

struct TestApp {
    base: String,
    http: reqwest::Client,
    state: AppState,
}

/// A signed-up user with a fresh access token.
struct User {
    id: Uuid,
    email: String,
    password: String,
    token: String,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn request_id(&self) -> &str {
        self.headers["x-request-id"].to_str().unwrap()
    }

    /// Asserts an RFC 9457 problem with this status and the response's request id.
    fn assert_problem(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string());
        assert_eq!(self.body["request_id"], self.request_id());
        self
    }
}

async fn spawn_app() -> TestApp {
    spawn_app_with(|c| c).await
}

async fn spawn_app_with(adjust: impl FnOnce(Config) -> Config) -> TestApp {
    capture_logs();
    let state = testing::state_with(adjust).await;
    let app = host::Application::build(state.clone()).await.unwrap();
    let addr = app.local_addr().unwrap();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        state,
    }
}

impl TestApp {
    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::reply(req.send().await.unwrap()).await
    }

    async fn reply(res: reqwest::Response) -> Reply {
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, auth: &str) -> Reply {
        self.send(Method::GET, path, Some(auth), None).await
    }

    async fn post(&self, path: &str, auth: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(auth), Some(body)).await
    }

    async fn patch(&self, path: &str, auth: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(auth), Some(body)).await
    }

    async fn delete(&self, path: &str, auth: &str) -> Reply {
        self.send(Method::DELETE, path, Some(auth), None).await
    }

    async fn token(&self, email: &str, password: &str) -> Reply {
        self.send(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    async fn user(&self) -> User {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let password = "correct horse battery".to_owned();
        let r = self
            .send(
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().parse().unwrap();
        let t = self.token(&email, &password).await;
        assert_eq!(t.status, 200, "{}", t.body);
        User {
            id,
            email,
            password,
            token: t.body["access_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn item(&self, user: &User, title: &str) -> Value {
        let r = self
            .post("/v1/items", &user.token, json!({"title": title}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }
}

/// Every line the process logs, in the production JSON format, for assertions on logging.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    shared::telemetry::init_with_writer(shared::config::LogFormat::Json, || LogWriter);
}

/// The parsed log lines emitted inside the request span of `request_id`, with the span's
/// fields merged into the line (JSON output nests them under `span`).
fn log_lines_for(request_id: &str) -> Vec<Value> {
    let logs = String::from_utf8(LOGS.lock().unwrap().clone()).unwrap();
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["span"]["request_id"] == request_id)
        .map(|mut v| {
            let span = v["span"].as_object().cloned().unwrap_or_default();
            v.as_object_mut().unwrap().extend(span);
            v
        })
        .collect()
}

fn all_logs() -> String {
    String::from_utf8(LOGS.lock().unwrap().clone()).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: Value, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn health_is_public_and_ready_checks_the_database() {
    let app = spawn_app().await;
    let r = app.send(Method::GET, "/health", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"status": "ok"}));
    let r = app.send(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["database"], "ok");
}

#[tokio::test]
async fn register_validates_and_refuses_duplicates_case_insensitively() {
    let app = spawn_app().await;
    let register = |body: Value| app.send(Method::POST, "/v1/auth/register", None, Some(body));

    let r = register(json!({"email": "Ann@Example.com", "password": "long enough"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let keys: Vec<&str> = r
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["created_at", "email", "id", "updated_at"]);
    assert_eq!(
        r.body["id"]
            .as_str()
            .unwrap()
            .parse::<Uuid>()
            .unwrap()
            .get_version_num(),
        7
    );

    register(json!({"email": "ann@example.COM", "password": "long enough"}))
        .await
        .assert_problem(409);

    let r = register(json!({"email": "not-an-email", "password": "short"})).await;
    r.assert_problem(422);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password"]);

    // 73 bytes is refused, not truncated to 72.
    let r = register(json!({"email": "bob@example.com", "password": "a".repeat(73)})).await;
    r.assert_problem(422);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("72")
    );

    // Wrong shape, malformed JSON, wrong content type.
    register(json!({"email": "bob@example.com"}))
        .await
        .assert_problem(422);
    register(json!({"email": "bob@example.com", "password": "long enough", "admin": true}))
        .await
        .assert_problem(422);
    let res = app
        .http
        .post(format!("{}/v1/auth/register", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    TestApp::reply(res).await.assert_problem(400);
    let res = app
        .http
        .post(format!("{}/v1/auth/register", app.base))
        .body("email=a")
        .send()
        .await
        .unwrap();
    TestApp::reply(res).await.assert_problem(415);
}

#[tokio::test]
async fn token_issues_bearer_tokens_and_refuses_bad_credentials_alike() {
    let app = spawn_app().await;
    let user = app.user().await;
    let r = app.token(&user.email.to_uppercase(), &user.password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    assert!(r.body["access_token"].as_str().unwrap().split('.').count() == 3);

    let wrong = app.token(&user.email, "wrong password").await;
    wrong.assert_problem(401);
    let unknown = app.token("nobody@example.com", &user.password).await;
    unknown.assert_problem(401);
    // Same answer whether or not the account exists.
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    app.token(&user.email, &"a".repeat(100))
        .await
        .assert_problem(401);
    app.send(
        Method::POST,
        "/v1/auth/token",
        None,
        Some(json!({"email": 1})),
    )
    .await
    .assert_problem(422);
}

#[tokio::test]
async fn users_me_read_change_and_delete() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;

    let r = app.get("/v1/users/me", &user.token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], user.id.to_string());
    assert_eq!(r.body["email"], user.email);
    assert!(r.body.get("password_hash").is_none());
    app.send(Method::GET, "/v1/users/me", None, None)
        .await
        .assert_problem(401);

    // Changing anything needs the current password, and the right one.
    let r = app
        .patch(
            "/v1/users/me",
            &user.token,
            json!({"password": "new password 1"}),
        )
        .await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "current_password");
    app.patch(
        "/v1/users/me",
        &user.token,
        json!({"password": "new password 1", "current_password": "not it at all"}),
    )
    .await
    .assert_problem(403);
    app.patch(
        "/v1/users/me",
        &user.token,
        json!({"email": other.email, "current_password": user.password}),
    )
    .await
    .assert_problem(409);
    app.patch(
        "/v1/users/me",
        &user.token,
        json!({"password": "short", "current_password": user.password}),
    )
    .await
    .assert_problem(422);

    let new_email = format!("renamed-{}@example.com", Uuid::new_v4().simple());
    let r = app
        .patch(
            "/v1/users/me",
            &user.token,
            json!({"email": new_email, "password": "new password 1", "current_password": user.password}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["email"], new_email);
    app.token(&new_email, &user.password)
        .await
        .assert_problem(401);
    assert_eq!(app.token(&new_email, "new password 1").await.status, 200);

    // Deleting cascades to items and keys, and the still-unexpired token stops working.
    app.item(&user, "doomed").await;
    assert_eq!(
        app.post("/v1/api-keys", &user.token, json!({"name": "ci"}))
            .await
            .status,
        201
    );
    assert_eq!(app.delete("/v1/users/me", &user.token).await.status, 204);
    app.get("/v1/users/me", &user.token)
        .await
        .assert_problem(401);
    app.get("/v1/items", &user.token).await.assert_problem(401);
    let leftovers: i64 = app
        .state
        .db
        .read("test.count", |c| async move {
            let row = c
                .query_one(
                    "SELECT (SELECT count(*) FROM items WHERE user_id = $1) + \
                     (SELECT count(*) FROM api_keys WHERE user_id = $1)",
                    &[&user.id],
                )
                .await?;
            Ok(row.get::<_, i64>(0))
        })
        .await
        .unwrap();
    assert_eq!(leftovers, 0);
    // The other user is untouched.
    assert_eq!(app.get("/v1/users/me", &other.token).await.status, 200);
}

#[tokio::test]
async fn api_keys_are_shown_once_authenticate_and_revoke_immediately() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;

    let r = app
        .post("/v1/api-keys", &user.token, json!({"name": "deploy bot"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let key_id = r.body["id"].as_str().unwrap().to_owned();
    let prefix = r.body["prefix"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("bsk_{prefix}_")));
    let mut keys: Vec<&str> = r
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_at", "id", "key", "name", "prefix"]);

    app.post("/v1/api-keys", &user.token, json!({"name": ""}))
        .await
        .assert_problem(422);
    app.post(
        "/v1/api-keys",
        &user.token,
        json!({"name": "x".repeat(101)}),
    )
    .await
    .assert_problem(422);
    app.send(
        Method::POST,
        "/v1/api-keys",
        None,
        Some(json!({"name": "anon"})),
    )
    .await
    .assert_problem(401);
    app.send(Method::GET, "/v1/api-keys", None, None)
        .await
        .assert_problem(401);

    // The key works in X-API-Key and as a bearer token.
    let res = app
        .http
        .get(format!("{}/v1/users/me", app.base))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(res).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], user.id.to_string());
    assert_eq!(app.get("/v1/users/me", &key).await.status, 200);
    // A key with a valid prefix but a wrong secret is refused.
    let forged = format!(
        "{}{}",
        &key[..key.len() - 1],
        if key.ends_with('a') { 'b' } else { 'a' }
    );
    app.get("/v1/users/me", &forged).await.assert_problem(401);

    let r = app.get("/v1/api-keys", &user.token).await;
    assert_eq!(r.status, 200);
    let listed = &r.body["items"][0];
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["prefix"], prefix);
    assert!(listed.get("key").is_none() && listed.get("key_hash").is_none());
    assert!(
        listed["last_used_at"].is_string(),
        "use was recorded: {listed}"
    );
    assert!(!r.body.to_string().contains(&key[prefix.len() + 5..]));
    assert_eq!(
        app.get("/v1/api-keys", &other.token).await.body["items"],
        json!([])
    );

    // Someone else's key is "not found"; a malformed id is a 400.
    app.delete(&format!("/v1/api-keys/{key_id}"), &other.token)
        .await
        .assert_problem(404);
    app.delete("/v1/api-keys/not-a-uuid", &user.token)
        .await
        .assert_problem(400);
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{key_id}"), &user.token)
            .await
            .status,
        204
    );
    app.get("/v1/users/me", &key).await.assert_problem(401);
    app.delete(&format!("/v1/api-keys/{key_id}"), &user.token)
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn items_crud_with_validation() {
    let app = spawn_app().await;
    let user = app.user().await;

    let r = app
        .post(
            "/v1/items",
            &user.token,
            json!({"title": "  First  ", "description": "d"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["title"], "First");
    let mut keys: Vec<&str> = r
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["created_at", "description", "id", "title", "updated_at"]
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/items/{id}");

    let r = app.get(&path, &user.token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["description"], "d");

    for bad in [
        json!({"title": ""}),
        json!({"title": "   "}),
        json!({"title": "t".repeat(201)}),
        json!({"title": "ok", "description": "d".repeat(10_001)}),
        json!({"description": "no title"}),
        json!({"title": 5}),
    ] {
        app.post("/v1/items", &user.token, bad)
            .await
            .assert_problem(422);
    }
    // Limits are in characters, not bytes.
    assert_eq!(
        app.post("/v1/items", &user.token, json!({"title": "é".repeat(200)}))
            .await
            .status,
        201
    );

    let r = app
        .patch(&path, &user.token, json!({"title": "Renamed"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["title"], "Renamed");
    assert_eq!(r.body["description"], "d");
    app.patch(&path, &user.token, json!({"title": ""}))
        .await
        .assert_problem(422);
    app.patch(&path, &user.token, json!({"colour": "red"}))
        .await
        .assert_problem(422);

    app.get("/v1/items/not-a-uuid", &user.token)
        .await
        .assert_problem(400);
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"title": "x"}))),
        (Method::DELETE, None),
    ] {
        app.send(method, &path, None, body)
            .await
            .assert_problem(401);
    }
    app.send(Method::GET, "/v1/items", None, None)
        .await
        .assert_problem(401);
    app.send(Method::POST, "/v1/items", None, Some(json!({"title": "x"})))
        .await
        .assert_problem(401);

    let r = app.delete(&path, &user.token).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    app.get(&path, &user.token).await.assert_problem(404);
    app.delete(&path, &user.token).await.assert_problem(404);
    app.patch(&path, &user.token, json!({"title": "x"}))
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn items_list_pages_with_an_opaque_keyset_cursor() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(
            app.item(&user, &format!("item {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    created.reverse(); // newest first

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/items?limit=10&cursor={c}"),
            None => "/v1/items?limit=10".to_owned(),
        };
        let r = app.get(&path, &user.token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        for item in r.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(r.body["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    let r = app.get("/v1/items", &user.token).await;
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        20,
        "default limit"
    );
    let r = app.get("/v1/items?limit=100", &user.token).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 25);
    assert!(r.body["next_cursor"].is_null());
    app.get("/v1/items?limit=101", &user.token)
        .await
        .assert_problem(400);
    app.get("/v1/items?limit=0", &user.token)
        .await
        .assert_problem(400);
    app.get("/v1/items?limit=ten", &user.token)
        .await
        .assert_problem(400);
    app.get("/v1/items?cursor=%%%", &user.token)
        .await
        .assert_problem(400);
    app.get("/v1/items?cursor=bm90LWEtdXVpZA", &user.token)
        .await
        .assert_problem(400);
}

#[tokio::test]
async fn another_users_rows_are_not_found() {
    let app = spawn_app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let item = app.item(&alice, "alice's").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());

    app.get(&path, &bob.token).await.assert_problem(404);
    app.patch(&path, &bob.token, json!({"title": "mine now"}))
        .await
        .assert_problem(404);
    app.delete(&path, &bob.token).await.assert_problem(404);
    assert_eq!(
        app.get("/v1/items", &bob.token).await.body["items"],
        json!([])
    );
    // Alice's item is unchanged.
    let r = app.get(&path, &alice.token).await;
    assert_eq!(r.body["title"], "alice's");
    // A cursor pointing into Alice's items shows Bob nothing of hers either.
    let cursor = fn_items::encode_cursor(Uuid::max());
    let r = app
        .get(&format!("/v1/items?cursor={cursor}"), &bob.token)
        .await;
    assert_eq!(r.body["items"], json!([]));
}

#[tokio::test]
async fn jwt_edge_cases_are_all_401() {
    let app = spawn_app().await;
    let user = app.user().await;
    let secret = testing::TEST_JWT_SECRET;
    let sub = user.id.to_string();
    let t = now();
    let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_claims = B64.encode(json!({"sub": sub, "iat": t, "exp": t + 600}).to_string());
    let mut tampered: Vec<String> = user.token.split('.').map(str::to_owned).collect();
    tampered[1] = B64.encode(json!({"sub": Uuid::now_v7(), "iat": t, "exp": t + 600}).to_string());

    let cases = [
        ("alg none", format!("{none_header}.{none_claims}.")),
        (
            "HS512",
            sign(
                json!({"sub": sub, "iat": t, "exp": t + 600}),
                Algorithm::HS512,
                secret,
            ),
        ),
        (
            "expired",
            sign(
                json!({"sub": sub, "iat": t - 1000, "exp": t - 60}),
                Algorithm::HS256,
                secret,
            ),
        ),
        (
            "missing exp",
            sign(json!({"sub": sub, "iat": t}), Algorithm::HS256, secret),
        ),
        (
            "wrong key",
            sign(
                json!({"sub": sub, "iat": t, "exp": t + 600}),
                Algorithm::HS256,
                "a-completely-different-secret-value",
            ),
        ),
        ("tampered", tampered.join(".")),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    // Control: a token we sign the same way is accepted, so the failures below are the edge cases.
    let good = sign(
        json!({"sub": sub, "iat": t, "exp": t + 600}),
        Algorithm::HS256,
        secret,
    );
    assert_eq!(app.get("/v1/users/me", &good).await.status, 200);
    for (name, token) in &cases {
        let r = app.get("/v1/users/me", token).await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        r.assert_problem(401);
        assert_eq!(r.headers["www-authenticate"], "Bearer");
    }
    // User deleted after the token was issued.
    assert_eq!(app.delete("/v1/users/me", &user.token).await.status, 204);
    app.get("/v1/items", &good).await.assert_problem(401);
    // Non-Bearer schemes are refused too.
    let res = app
        .http
        .get(format!("{}/v1/items", app.base))
        .basic_auth("user", Some("pass"))
        .send()
        .await
        .unwrap();
    TestApp::reply(res).await.assert_problem(401);
}

#[tokio::test]
async fn default_deny_request_ids_and_edge_errors() {
    let app = spawn_app().await;
    let user = app.user().await;

    // An unknown route is 401 to strangers (no route discovery) and 404 to users.
    app.send(Method::GET, "/v1/secret-admin", None, None)
        .await
        .assert_problem(401);
    app.get("/v1/secret-admin", &user.token)
        .await
        .assert_problem(404);

    // A sane incoming request id is echoed, in the header and the problem body.
    let res = app
        .http
        .get(format!("{}/v1/items", app.base))
        .header("x-request-id", "trace-abc.123_X")
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(res).await;
    assert_eq!(r.request_id(), "trace-abc.123_X");
    r.assert_problem(401);
    // An unsafe or over-long one is replaced with a fresh UUID.
    for bad in ["has space", "quote\"", &"a".repeat(129)] {
        let res = app
            .http
            .get(format!("{}/health", app.base))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.parse::<Uuid>().is_ok(), "{bad:?} → {id}");
    }
    // Success responses carry one too.
    let r = app.get("/v1/items", &user.token).await;
    assert!(r.request_id().parse::<Uuid>().is_ok());

    // Unsupported methods: 405 with Allow, as problem+json.
    let r = app
        .send(Method::TRACE, "/v1/items", Some(&user.token), None)
        .await;
    r.assert_problem(405);
    let allow = r.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    app.send(Method::PUT, "/health", None, None)
        .await
        .assert_problem(401);

    // Bodies over the limit (1 MiB by default) are refused before the handler.
    let big = json!({"title": "x", "description": "y".repeat(2 * 1024 * 1024)});
    app.post("/v1/items", &user.token, big)
        .await
        .assert_problem(413);

    // The OpenAPI document and docs page are public.
    let r = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    let res = app
        .http
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn openapi_lists_every_route_with_security_and_problem_responses() {
    let app = spawn_app().await;
    let doc = app
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let expected = [
        ("/health", "get"),
        ("/ready", "get"),
        ("/v1/auth/register", "post"),
        ("/v1/auth/token", "post"),
        ("/v1/users/me", "get"),
        ("/v1/users/me", "patch"),
        ("/v1/users/me", "delete"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys/{id}", "delete"),
        ("/v1/items", "get"),
        ("/v1/items", "post"),
        ("/v1/items/{id}", "get"),
        ("/v1/items/{id}", "patch"),
        ("/v1/items/{id}", "delete"),
    ];
    let mut count = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        count += ops.as_object().unwrap().len();
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                expected.contains(&(path.as_str(), method.as_str())),
                "undocumented extra {method} {path}"
            );
            let public = shared::auth::is_public(&method.to_uppercase().parse().unwrap(), path);
            assert_eq!(
                op.get("security").is_none(),
                public,
                "{method} {path}: security"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses
                    .values()
                    .any(|r| r["content"].get("application/problem+json").is_some()),
                "{method} {path} documents no error response"
            );
            if !public {
                assert!(responses.contains_key("401"), "{method} {path}");
            }
        }
    }
    assert_eq!(count, expected.len());
    assert!(doc["paths"]["/v1/items"]["post"]["responses"]["201"].is_object());
    assert!(doc["paths"]["/v1/items/{id}"]["delete"]["responses"]["204"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn requests_survive_terminated_database_connections() {
    let app = spawn_app().await;
    let user = app.user().await;
    app.item(&user, "before").await;
    // Warm several pooled connections, then kill every one of them server-side.
    let t = &user.token;
    let warm = tokio::join!(
        app.get("/v1/items", t),
        app.get("/v1/items", t),
        app.get("/v1/items", t),
        app.get("/v1/items", t)
    );
    for r in [warm.0, warm.1, warm.2, warm.3] {
        assert_eq!(r.status, 200);
    }
    let url = app.state.config.database_url().to_owned();
    assert!(testing::terminate_connections(&url).await >= 1);
    // Reads and writes still succeed: dead connections are retried on fresh ones, not 500s.
    let r = app.get("/v1/items", &user.token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    testing::terminate_connections(&url).await;
    let r = app
        .post("/v1/items", &user.token, json!({"title": "after"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app.get("/v1/items", &user.token).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn every_protected_operation_refuses_anonymous_callers() {
    let app = spawn_app().await;
    let doc = app
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let some_id = Uuid::now_v7().to_string();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", &some_id);
        for method in ops.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            if shared::auth::is_public(&method, path) {
                continue;
            }
            let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
            for token in [None, Some("not-a-token"), Some("bsk_short")] {
                let r = app
                    .send(method.clone(), &concrete, token, body.clone())
                    .await;
                assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.body);
                r.assert_problem(401);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 11);
}

#[tokio::test]
async fn api_key_use_is_recorded_at_most_once_a_minute() {
    let app = spawn_app().await;
    let user = app.user().await;
    let key = app
        .post("/v1/api-keys", &user.token, json!({"name": "k"}))
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let last_used = || async {
        app.get("/v1/api-keys", &user.token).await.body["items"][0]["last_used_at"].clone()
    };
    assert!(last_used().await.is_null());
    assert_eq!(app.get("/v1/users/me", &key).await.status, 200);
    let first = last_used().await;
    assert!(first.is_string());
    assert_eq!(app.get("/v1/users/me", &key).await.status, 200);
    assert_eq!(
        last_used().await,
        first,
        "a second use within a minute writes nothing"
    );
}

#[tokio::test]
async fn server_errors_do_not_leak_sql_or_internals() {
    let app = spawn_app().await;
    let user = app.user().await;
    app.state
        .db
        .read("test.break_schema", |c| async move {
            c.batch_execute("ALTER TABLE items RENAME TO items_gone")
                .await
        })
        .await
        .unwrap();
    let r = app.get("/v1/items", &user.token).await;
    r.assert_problem(500);
    let text = r.body.to_string();
    for leak in ["items", "relation", "SELECT", "postgres", "42P01"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
}

#[tokio::test]
async fn malformed_ids_are_400_on_every_item_route() {
    let app = spawn_app().await;
    let user = app.user().await;
    app.get("/v1/items/123", &user.token)
        .await
        .assert_problem(400);
    app.patch("/v1/items/123", &user.token, json!({"title": "x"}))
        .await
        .assert_problem(400);
    app.delete("/v1/items/123", &user.token)
        .await
        .assert_problem(400);
}

// --- The middleware chain: rate limiting, CORS, request logging (real Redis) --------------

fn with_redis(requests: u32) -> impl FnOnce(Config) -> Config {
    move |mut c| {
        c.redis_url = Some(testing::redis_url().into());
        c.redis_key_prefix = testing::redis_key_prefix();
        c.rate_limits.default = format!("{requests}/60").parse().unwrap();
        c.rate_limits.auth = "3/60".parse().unwrap();
        c
    }
}

async fn redis_keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
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
    let keys = redis_keys(&testing::redis_url(), &app.state.config.redis_key_prefix).await;
    let expected = format!(
        "{}:rl:{{user:{}|GET /v1/items}}",
        app.state.config.redis_key_prefix, user.id
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
    // An API key is its own principal (its public prefix) once it has authenticated here; its
    // first request counts against the client's IP like any unproven credential.
    let created = app
        .post("/v1/api-keys", &alice.token, json!({"name": "k"}))
        .await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    let prefix = created.body["prefix"].as_str().unwrap().to_owned();
    let redis_prefix = &app.state.config.redis_key_prefix;
    assert_eq!(app.get("/v1/items", &key).await.status, 200);
    let keys = redis_keys(&testing::redis_url(), redis_prefix).await;
    assert!(
        keys.iter()
            .any(|k| k.contains("ip:127.0.0.1|GET /v1/items")),
        "{keys:?}"
    );
    // The prefix is public (key lists show it): the same prefix with another secret proves
    // nothing, so it spends the IP's budget (now 1 of 3 left), not the key owner's.
    let forged = format!("bsk_{prefix}_{}", "A".repeat(40));
    let r = app.get("/v1/items", &forged).await;
    r.assert_problem(401);
    assert_eq!(header(&r, "ratelimit-remaining"), "1");
    for _ in 0..3 {
        assert_eq!(app.get("/v1/items", &key).await.status, 200);
    }
    app.get("/v1/items", &key).await.assert_problem(429);
    let keys = redis_keys(&testing::redis_url(), redis_prefix).await;
    assert!(
        keys.iter()
            .any(|k| k.contains(&format!("key:{prefix}|GET /v1/items"))),
        "{keys:?}"
    );
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
    let keys = redis_keys(&testing::redis_url(), &app.state.config.redis_key_prefix).await;
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
        c.redis_url = Some(url2.into());
        c.redis_key_prefix = testing::redis_key_prefix();
        c.rate_limits.default = "3/60".parse().unwrap();
        c
    })
    .await;
    let prefix = app.state.config.redis_key_prefix.clone();
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

#[tokio::test]
async fn cors_preflight_is_answered_before_auth_and_only_for_listed_origins() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}/v1/items", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let res = preflight("http://localhost:5173").await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert!(h.contains_key("x-request-id"));

    let res = preflight("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // Actual requests: exposed headers for the listed origin, nothing for others.
    let user = app.user().await;
    let get_from = |origin: &'static str| {
        app.http
            .get(format!("{}/v1/items", app.base))
            .bearer_auth(&user.token)
            .header("origin", origin)
            .send()
    };
    let res = get_from("http://localhost:5173").await.unwrap();
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "x-request-id",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
    ] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
    let res = get_from("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_429_carries_cors_headers_and_the_request_id() {
    let app = spawn_app_with(with_redis(1)).await;
    let user = app.user().await;
    let send = || {
        app.http
            .get(format!("{}/v1/items", app.base))
            .bearer_auth(&user.token)
            .header("origin", "http://localhost:5173")
            .header("x-request-id", "order-test-429")
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    let r = TestApp::reply(send().await.unwrap()).await;
    r.assert_problem(429);
    assert_eq!(r.request_id(), "order-test-429");
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "http://localhost:5173"
    );
    assert!(header(&r, "retry-after").parse::<u64>().is_ok());
}

#[tokio::test]
async fn one_log_line_per_request_with_route_status_principal_and_no_secrets() {
    let app = spawn_app().await;
    let user = app.user().await;
    let item = app.item(&user, "logged").await;
    let key = app
        .post("/v1/api-keys", &user.token, json!({"name": "k"}))
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // A 401 carries the request id and is logged with status 401.
    let res = app
        .http
        .get(format!("{}/v1/items", app.base))
        .header("x-request-id", "log-test-401")
        .header("cookie", "session=cookie-secret-value")
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(res).await;
    r.assert_problem(401);
    let lines = log_lines_for("log-test-401");
    let request_lines: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(request_lines.len(), 1, "{lines:?}");
    assert_eq!(request_lines[0]["status"], 401);
    assert_eq!(request_lines[0]["method"], "GET");
    assert_eq!(request_lines[0]["route"], "/v1/items");

    // A success through an API key: route template (not the raw path), principal, duration.
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let res = app
        .http
        .get(format!("{}{path}", app.base))
        .header("x-api-key", &key)
        .header("x-request-id", "log-test-200")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let lines = log_lines_for("log-test-200");
    let line = lines.iter().find(|l| l["message"] == "request").unwrap();
    assert_eq!(line["route"], "/v1/items/{id}");
    assert_eq!(line["status"], 200);
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    let principal = line["principal"].as_str().unwrap();
    assert!(principal.starts_with(&user.id.to_string()), "{principal}");
    assert_eq!(
        lines.iter().filter(|l| l["message"] == "request").count(),
        1
    );

    // A login and a password change put secrets in headers and bodies: none reach the logs.
    let res = app
        .http
        .patch(format!("{}/v1/users/me", app.base))
        .bearer_auth(&user.token)
        .header("x-request-id", "log-test-secrets")
        .json(&json!({"password": "brand-new-secret-pw", "current_password": user.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(log_lines_for("log-test-secrets").len(), 1);
    let logs = all_logs();
    let key_secret = key.rsplit('_').next().unwrap();
    for secret in [
        user.token.as_str(),
        key.as_str(),
        key_secret,
        user.password.as_str(),
        "brand-new-secret-pw",
        "cookie-secret-value",
        testing::TEST_JWT_SECRET,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}

#[tokio::test]
async fn a_user_deleted_by_another_replica_is_locked_out_within_the_cache_ttl() {
    let app = spawn_app().await;
    let user = app.user().await;
    assert_eq!(app.get("/v1/items", &user.token).await.status, 200);
    // Another replica deletes the account: this process learns of it only from the database.
    let id = user.id;
    app.state
        .db
        .read("test.delete_elsewhere", |c| async move {
            c.execute("DELETE FROM users WHERE id = $1", &[&id]).await
        })
        .await
        .unwrap();
    tokio::time::sleep(shared::auth::known_users::TTL + std::time::Duration::from_millis(100))
        .await;
    app.get("/v1/items", &user.token).await.assert_problem(401);
}

#[test]
fn the_checked_in_openapi_json_matches_the_code() {
    // The Lambda health function serves this file, and the frontend's typed client is
    // generated from it: it must never drift from what the code describes.
    let (_, generated) = host::routes();
    let generated = serde_json::to_value(&*generated).unwrap();
    let checked_in: Value = serde_json::from_str(fn_health::OPENAPI_JSON).unwrap();
    assert!(
        generated == checked_in,
        "openapi.json is stale: run `cargo run -p host -- openapi > openapi.json`"
    );
}

/// The events behind the README's `cargo lambda invoke` examples: HTTP API events made from the
/// SAM CLI sample by changing only method, path, headers and body, checked in under
/// `events/invoke/`, and answered as the README says when replayed in its order through each
/// function's Lambda entry point. `BASALT_UPDATE_EVENTS=1` rewrites the files.
#[tokio::test]
async fn the_checked_in_invoke_events_are_current_and_answer_as_documented() {
    const TOKEN: &str = "REPLACE_WITH_TOKEN";
    let credentials =
        json!({"email": "dev@example.com", "password": "correct horse battery staple"});
    let call = |method, uri: &str| {
        let mut call = testing::Call::new(method, uri);
        call.headers.clear(); // each invocation gets its own request id
        call
    };
    type RouterFn = fn() -> axum::Router<AppState>;
    let cases: Vec<(&str, RouterFn, testing::Call, u16)> = vec![
        (
            "health-ready",
            fn_health::router,
            call("GET", "/ready"),
            200,
        ),
        (
            "auth-register",
            fn_auth::router,
            call("POST", "/v1/auth/register").json(credentials.clone()),
            201,
        ),
        (
            "auth-token",
            fn_auth::router,
            call("POST", "/v1/auth/token").json(credentials),
            200,
        ),
        (
            "users-me",
            fn_users::router,
            call("GET", "/v1/users/me").bearer(TOKEN),
            200,
        ),
        (
            "api-keys-create",
            fn_api_keys::router,
            call("POST", "/v1/api-keys")
                .bearer(TOKEN)
                .json(json!({"name": "laptop"})),
            201,
        ),
        (
            "items-create",
            fn_items::router,
            call("POST", "/v1/items").bearer(TOKEN).json(
                json!({"title": "first item", "description": "created by cargo lambda invoke"}),
            ),
            201,
        ),
        (
            "items-list",
            fn_items::router,
            call("GET", "/v1/items?limit=10").bearer(TOKEN),
            200,
        ),
    ];

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/invoke");
    let update = std::env::var_os("BASALT_UPDATE_EVENTS").is_some();
    let state = testing::state().await;
    let mut token = None;
    for (name, router, call, status) in cases {
        let event = testing::http_api_event(&call, "$default");
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&event).unwrap() + "\n";
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == text,
            "events/invoke/{name}.json is stale: run `BASALT_UPDATE_EVENTS=1 scripts/test -p host invoke_events`"
        );
        let app = || shared::http::app(router(), state.clone());
        if checked_in.contains(TOKEN) {
            // As the README shows it: without a real token the function denies the call...
            let r = testing::via_lambda(app(), event).await;
            assert_eq!(r.status, 401, "{name} without a token: {}", r.body);
        }
        // ...and with the token from `auth-token` substituted, it answers as documented.
        let substituted = checked_in.replace(TOKEN, token.as_deref().unwrap_or(TOKEN));
        let r = testing::via_lambda(app(), serde_json::from_str(&substituted).unwrap()).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert!(r.request_id.is_some(), "{name} echoes a request id");
        if name == "auth-token" {
            token = Some(r.body["access_token"].as_str().unwrap().to_owned());
        }
    }
}
