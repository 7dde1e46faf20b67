//! What the tests share: the host spawned on port 0 (`spawn_app`), a client for it, signed-up
//! users, the captured JSON logs, and the Redis-backed configuration for the middleware chain.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{AppState, config::Config, testing};
use uuid::Uuid;

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) state: AppState,
}

/// A signed-up user with a fresh access token.
pub(crate) struct User {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) token: String,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn request_id(&self) -> &str {
        self.headers["x-request-id"].to_str().unwrap()
    }

    /// The body's field names, sorted: what a response shows, and nothing more.
    pub(crate) fn fields(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .body
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    /// Asserts an RFC 9457 problem with this status and the response's request id.
    pub(crate) fn assert_problem(&self, status: u16) -> &Self {
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

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|c| c).await
}

pub(crate) async fn spawn_app_with(adjust: impl FnOnce(Config) -> Config) -> TestApp {
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
    pub(crate) async fn send(
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

    pub(crate) async fn reply(res: reqwest::Response) -> Reply {
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

    pub(crate) async fn get(&self, path: &str, auth: &str) -> Reply {
        self.send(Method::GET, path, Some(auth), None).await
    }

    pub(crate) async fn post(&self, path: &str, auth: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(auth), Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, auth: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(auth), Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str, auth: &str) -> Reply {
        self.send(Method::DELETE, path, Some(auth), None).await
    }

    pub(crate) async fn token(&self, email: &str, password: &str) -> Reply {
        self.send(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    pub(crate) async fn user(&self) -> User {
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

    pub(crate) async fn item(&self, user: &User, title: &str) -> Value {
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

pub(crate) fn capture_logs() {
    shared::telemetry::init_with_writer(shared::config::LogFormat::Json, || LogWriter);
}

/// The parsed log lines emitted inside the request span of `request_id`, with the span's
/// fields merged into the line (JSON output nests them under `span`).
pub(crate) fn log_lines_for(request_id: &str) -> Vec<Value> {
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

pub(crate) fn all_logs() -> String {
    String::from_utf8(LOGS.lock().unwrap().clone()).unwrap()
}

// --- The middleware chain: rate limiting, CORS, request logging (real Redis) --------------

pub(crate) fn with_redis(requests: u32) -> impl FnOnce(Config) -> Config {
    move |mut c| {
        c.rate_limit.redis_url = Some(testing::redis_url().into());
        c.rate_limit.redis_key_prefix = testing::redis_key_prefix();
        // Exact-count tests need Redis's decision: on a loaded 2-core machine an answer can
        // take longer than the 20 ms default, and the in-memory fallback would decide instead.
        c.rate_limit.redis_timeout = std::time::Duration::from_millis(500);
        c.rate_limit.limits.default = format!("{requests}/60").parse().unwrap();
        c.rate_limit.limits.auth = "3/60".parse().unwrap();
        c
    }
}

pub(crate) fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

// --- Idempotency and unknown outcomes ------------------------------------------------------

impl TestApp {
    /// A POST with an `Idempotency-Key`.
    pub(crate) async fn post_keyed(&self, path: &str, auth: &str, key: &str, body: Value) -> Reply {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(auth)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::reply(res).await
    }

    /// Rows in `table` (a name from this schema), counted in the database itself.
    pub(crate) async fn count(&self, table: &'static str) -> i64 {
        self.state
            .db
            .read("test.count", |c| async move {
                c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
                    .await?
                    .try_get(0)
            })
            .await
            .unwrap()
    }

    /// Makes every `COMMIT` of a transaction that inserted an item sleep `seconds` first (a
    /// deferred constraint trigger runs at COMMIT), so tests can act while it is in flight.
    pub(crate) async fn slow_commits(&self, seconds: f64) {
        let sql = format!(
            "CREATE OR REPLACE FUNCTION test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER test_slow_commit AFTER INSERT ON items \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_slow_commit();"
        );
        self.state
            .db
            .read("test.slow_commits", |c| {
                let sql = sql.clone();
                async move { c.batch_execute(&sql).await }
            })
            .await
            .unwrap();
    }

    pub(crate) async fn fast_commits(&self) {
        self.state
            .db
            .read("test.fast_commits", |c| async move {
                c.batch_execute("DROP TRIGGER test_slow_commit ON items")
                    .await
            })
            .await
            .unwrap();
    }
}
