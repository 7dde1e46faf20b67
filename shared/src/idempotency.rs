//! `Idempotency-Key` for POSTs that create something: a repeated request gets the first
//! response again instead of creating a second row.
//!
//! A handler takes its body through [`Idempotent`] (`Idempotent<Json<NewItem>>`) and runs its
//! write through [`Idempotency::write`] instead of `Db::write`. Without the header that is
//! exactly `Db::write`. With it, one transaction:
//!
//! 1. takes a transaction-scoped advisory lock on (user, key) without waiting — held by
//!    another transaction means the same key is in flight: 409 `idempotency-key-in-use`;
//! 2. looks the key up: stored within 24 hours for the same request (hash of method, path and
//!    query, and body) → that response again, with `Idempotent-Replayed: true`, and no work;
//!    for another request → 422 `idempotency-key-reused`; older → deleted and used afresh;
//! 3. runs the handler's work and stores its response (status, the headers the handler set,
//!    the body), then commits both.
//!
//! So a response is stored exactly when the change it reports committed: a crash, a timeout
//! or a failed statement rolls both back and releases the lock, leaving no claim to expire,
//! and a repeat runs the work afresh. An outcome the client cannot know — the connection lost
//! during `COMMIT`, the chain's 408 while `COMMIT` was in flight — is resolved by repeating the
//! request with the same key. Stored: successful (2xx) responses only; a 4xx refused before the
//! work (validation) or a failed write is not stored, because nothing happened — the same
//! rule as Stripe's ("results are only saved if an API endpoint started executing"), minus
//! its stored 500s, which here always rolled back.
//!
//! Keys are scoped to the principal's user (another user's identical key is unrelated). The
//! table holds a hash of the key, not the key, and the body sealed with a key derived from
//! it (an API key's creation response carries the key in clear): a database reader cannot
//! read stored bodies without the client's `Idempotency-Key`.
//!
//! A helper the handler calls rather than a layer of the chain: only inside the handler can
//! the stored response commit in the same transaction as the row it reports, and the work
//! happens once per key only if the lock, the lookup and the write share that transaction.

use std::sync::Arc;

use aide::{
    OperationInput, OperationOutput,
    generate::GenContext,
    openapi::{
        HeaderStyle, Operation, Parameter, ParameterData, ParameterSchemaOrContent,
        Response as DocResponse, SchemaObject,
    },
    operation::add_parameters,
};
use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Request},
    response::{IntoResponse, Response},
};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    db::{Db, PgError, Transaction, TxFuture},
    error::{ApiError, IDEMPOTENCY_KEY_IN_USE, IDEMPOTENCY_KEY_REUSED, problem_response},
    repo::idempotency::{self as repo, NewResponse, StoredResponse},
};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// On a replayed response (as Stripe names it).
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
pub const MAX_KEY_LEN: usize = 255;

/// Expired rows deleted per stored response (see `repo::idempotency::purge_expired`).
const PURGE_BATCH: i64 = 10;
const NONCE_LEN: usize = 12;

/// A request body extractor `E` plus the request's `Idempotency-Key`:
/// `Idempotent(idempotency, Json(body)): Idempotent<Json<NewItem>>`. With a key the body is
/// read once, hashed, then handed to `E`, so `E`'s rejections (400, 413, 415, 422) are
/// unchanged; a malformed key is a 400.
#[derive(Debug)]
pub struct Idempotent<E>(pub Idempotency, pub E);

/// The request's key, if it sent one; [`Idempotency::write`] runs the handler's write under it.
#[derive(Debug)]
pub struct Idempotency(Option<Keyed>);

/// A key as the request presented it, and the request it came with (hashed once the user is
/// known, see [`Secrets::request_hash`]).
#[derive(Clone)]
struct Keyed {
    key: String,
    method: Method,
    uri: Uri,
    body: Bytes,
}

impl std::fmt::Debug for Keyed {
    // The key unlocks the stored body: like a credential, it is not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyed { .. }")
    }
}

/// The header's documented pattern: what [`key_from`] accepts once HTTP has trimmed the value.
const KEY_PATTERN: &str = "^[!-~]([ -~]*[!-~])?$";

/// Validates the header: absent is fine; present must be one value of 1–255 printable ASCII
/// characters.
fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::bad_request(format!(
            "Idempotency-Key must be one value of 1 to {MAX_KEY_LEN} printable ASCII characters"
        ))
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_LEN
        || !bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
        || bytes.first() == Some(&b' ')
        || bytes.last() == Some(&b' ')
    {
        return Err(invalid());
    }
    // Checked above: every byte is printable ASCII.
    Ok(value.to_str().ok().map(str::to_owned))
}

impl<S, E> FromRequest<S> for Idempotent<E>
where
    S: Send + Sync,
    E: FromRequest<S, Rejection = ApiError>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Some(key) = key_from(req.headers())? else {
            return Ok(Self(Idempotency(None), E::from_request(req, state).await?));
        };
        let (parts, body) = req.into_parts();
        // axum's own buffering: the same body limits and the same 413 as `E` would give.
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        let keyed = Keyed {
            key,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            body: bytes.clone(),
        };
        let inner = E::from_request(Request::from_parts(parts, Body::from(bytes)), state).await?;
        Ok(Self(Idempotency(Some(keyed)), inner))
    }
}

/// Derived from the raw key, per user: never stored.
struct Secrets {
    /// The table's `key_hash`.
    key_hash: [u8; 32],
    /// Serialises requests with this key (the advisory lock's id).
    lock_id: i64,
    /// Keys the request hash: a plain hash of a known body shape would let a database reader
    /// test guesses of what it contained (a future body may carry a password).
    request_mac: Hmac<Sha256>,
    /// Seals the stored body.
    cipher: ChaCha20Poly1305,
}

impl Secrets {
    fn derive(user_id: Uuid, key: &str) -> Self {
        let hash = |label: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(label);
            h.update(user_id.as_bytes());
            h.update(key.as_bytes());
            h.finalize().into()
        };
        let key_hash = hash(b"basalt idempotency key hash v1\0");
        let mut lock = [0u8; 8];
        lock.copy_from_slice(&key_hash[..8]);
        // HKDF-SHA256 with the key as input keying material and distinct labels, so
        // `key_hash` (which is stored) says nothing about the other keys.
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(user_id.as_bytes()), key.as_bytes());
        let expand = |label: &[u8]| -> [u8; 32] {
            let mut okm = [0u8; 32];
            hkdf.expand(label, &mut okm)
                .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
            okm
        };
        let sealing_key = expand(b"basalt idempotency response body v1");
        let request_mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&expand(b"basalt idempotency request v1"))
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self {
            key_hash,
            lock_id: i64::from_be_bytes(lock),
            request_mac,
            cipher: ChaCha20Poly1305::new(&sealing_key.into()),
        }
    }

    /// HMAC-SHA256 over method, path, query and body, each length-prefixed so no two
    /// different requests share an input. An empty query counts as none: gateways differ on
    /// whether they leave a bare `?`.
    fn request_hash(&self, method: &Method, uri: &Uri, body: &[u8]) -> [u8; 32] {
        let query = uri.query().unwrap_or_default();
        let mut mac = self.request_mac.clone();
        for part in [
            method.as_str().as_bytes(),
            uri.path().as_bytes(),
            query.as_bytes(),
            body,
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Nonce ‖ ciphertext; the request hash is authenticated with it, so a body cannot be
    /// moved to another row.
    fn seal(&self, request_hash: &[u8], body: &[u8]) -> Option<Vec<u8>> {
        // Random: the same user and key may seal again once their row has expired.
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: body,
                    aad: request_hash,
                },
            )
            .ok()?;
        Some([nonce.as_slice(), &sealed].concat())
    }

    fn open(&self, request_hash: &[u8], stored: &[u8]) -> Result<Vec<u8>, ApiError> {
        let fail = || ApiError::internal(anyhow::anyhow!("a stored response does not open"));
        if stored.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: request_hash,
                },
            )
            .map_err(|_| fail())
    }
}

/// What one attempt of the keyed transaction found or did.
enum Outcome {
    InFlight,
    Reused,
    Replay(StoredResponse),
    /// The work's response, stored.
    Fresh(Response),
    /// The work's response was not a success: passed on, not stored.
    Unstored(Response),
    /// The work's body could not be read back or sealed to store. Handlers build their bodies
    /// in memory, far below ChaCha20-Poly1305's 256 GiB, so this does not happen; if it did,
    /// the work would have committed without a stored response (a repeat would run it again).
    Unstorable(anyhow::Error),
}

/// A handler's response that may be a replay; documented in OpenAPI as `R`.
#[derive(Debug)]
pub struct IdempotentResponse<R> {
    response: Response,
    _documented_as: std::marker::PhantomData<fn() -> R>,
}

impl<R> IdempotentResponse<R> {
    fn new(response: Response) -> Self {
        Self {
            response,
            _documented_as: std::marker::PhantomData,
        }
    }
}

impl<R: IntoResponse> IdempotentResponse<R> {
    /// The response of a request that sent no key (see [`Idempotency::is_keyed`]).
    pub fn unkeyed(response: R) -> Self {
        Self::new(response.into_response())
    }
}

impl<R> IntoResponse for IdempotentResponse<R> {
    fn into_response(self) -> Response {
        self.response
    }
}

impl Idempotency {
    /// Whether the request sent an `Idempotency-Key`. Without one there is nothing to store
    /// beside the change, so a handler whose change is one statement may run it alone
    /// ([`crate::db::Db::write_statement`]: one round trip) instead of through [`Self::write`].
    pub fn is_keyed(&self) -> bool {
        self.0.is_some()
    }

    /// Runs `work` in a transaction as `Db::write` does; with a key, in the same transaction
    /// as the key's lock, lookup and stored response (see the module docs). `work` returns the
    /// success response to store; failures it wants rolled back are its `PgError`s. (A non-2xx
    /// response from `work` is passed on unstored and its transaction commits, so a handler
    /// refuses requests before calling this.)
    pub async fn write<R, F>(
        self,
        db: &Db,
        user_id: Uuid,
        op: &'static str,
        work: F,
    ) -> Result<IdempotentResponse<R>, ApiError>
    where
        R: IntoResponse + Send + 'static,
        F: for<'t> Fn(&'t Transaction<'t>) -> TxFuture<'t, R> + Send + Sync + 'static,
    {
        let Some(keyed) = self.0 else {
            return Ok(IdempotentResponse::new(
                db.write(op, work).await?.into_response(),
            ));
        };
        let secrets = Arc::new(Secrets::derive(user_id, &keyed.key));
        let request_hash = secrets.request_hash(&keyed.method, &keyed.uri, &keyed.body);
        let work = Arc::new(work);
        let outcome = {
            let secrets = secrets.clone();
            db.write(op, move |tx| {
                let (work, secrets) = (work.clone(), secrets.clone());
                Box::pin(async move {
                    keyed_attempt(tx, user_id, &secrets, &request_hash, &*work).await
                })
            })
            .await?
        };
        let response = match outcome {
            Outcome::Fresh(response) | Outcome::Unstored(response) => response,
            Outcome::Replay(stored) => replay(&secrets, &request_hash, stored)?,
            Outcome::InFlight => {
                return Err(ApiError::typed(
                    StatusCode::CONFLICT,
                    IDEMPOTENCY_KEY_IN_USE,
                    "a request with this Idempotency-Key is still being processed; repeat it \
                     once that one has finished to get its response",
                ));
            }
            Outcome::Reused => {
                return Err(ApiError::typed(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    IDEMPOTENCY_KEY_REUSED,
                    "this Idempotency-Key was used in the last 24 hours for a different request \
                     (method, path or body); use a new key for a new request",
                ));
            }
            Outcome::Unstorable(e) => return Err(ApiError::internal(e)),
        };
        Ok(IdempotentResponse::new(response))
    }
}

/// One attempt of the keyed transaction; `Db::write` repeats it whole after a transient
/// failure before `COMMIT`.
async fn keyed_attempt<'t, R, F>(
    tx: &'t Transaction<'t>,
    user_id: Uuid,
    secrets: &Secrets,
    request_hash: &[u8; 32],
    work: &F,
) -> Result<Outcome, PgError>
where
    R: IntoResponse,
    F: for<'x> Fn(&'x Transaction<'x>) -> TxFuture<'x, R>,
{
    if !repo::try_lock(tx, secrets.lock_id).await? {
        return Ok(Outcome::InFlight);
    }
    // Read after the lock: under READ COMMITTED (the default) this statement's snapshot sees
    // whatever the previous holder committed. (Under REPEATABLE READ the snapshot may predate
    // it; then the INSERT below hits the previous row's key and the attempt fails rather than
    // storing twice.)
    if let Some(stored) = repo::find(tx, user_id, &secrets.key_hash).await? {
        if stored.live {
            return Ok(if stored.request_hash == request_hash {
                Outcome::Replay(stored)
            } else {
                Outcome::Reused
            });
        }
        repo::delete(tx, user_id, &secrets.key_hash).await?;
    }
    let response = work(tx).await?.into_response();
    if !response.status().is_success() {
        return Ok(Outcome::Unstored(response));
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return Ok(Outcome::Unstorable(e.into())),
    };
    let Some(sealed) = secrets.seal(request_hash, &body) else {
        return Ok(Outcome::Unstorable(anyhow::anyhow!(
            "sealing a stored response failed"
        )));
    };
    // Every header the handler set (the chain adds its own again on a replay). A value that
    // is not visible ASCII is left out; handlers set none.
    let headers = {
        let pairs: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
    };
    repo::insert(
        tx,
        NewResponse {
            user_id,
            key_hash: &secrets.key_hash,
            request_hash,
            status: parts.status.as_u16() as i16,
            headers: &headers,
            body: &sealed,
        },
    )
    .await?;
    repo::purge_expired(tx, PURGE_BATCH).await?;
    Ok(Outcome::Fresh(Response::from_parts(
        parts,
        Body::from(body),
    )))
}

/// The stored response, as first sent, marked as a replay.
fn replay(
    secrets: &Secrets,
    request_hash: &[u8; 32],
    stored: StoredResponse,
) -> Result<Response, ApiError> {
    let body = secrets.open(request_hash, &stored.body)?;
    let status = u16::try_from(stored.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("stored status {}", stored.status)))?;
    let headers: Vec<(String, String)> = serde_json::from_str(&stored.headers)
        .map_err(|e| ApiError::internal(anyhow::Error::new(e).context("stored headers")))?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(name, value);
        }
    }
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

// --- OpenAPI ----------------------------------------------------------------------------

impl<E: OperationInput> OperationInput for Idempotent<E> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        E::operation_input(ctx, operation);
        // Printable ASCII; no blank at either end (HTTP drops it, so it is not part of the key).
        let schema = schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY_LEN,
            "pattern": KEY_PATTERN,
        });
        add_parameters(
            ctx,
            operation,
            [Parameter::Header {
                parameter_data: ParameterData {
                    name: "Idempotency-Key".into(),
                    description: Some(
                        "A unique value per intended request (e.g. a UUIDv4), 1–255 printable \
                         ASCII characters. Repeating the same request with the same key within \
                         24 hours returns the first response (marked `Idempotent-Replayed: \
                         true`) instead of creating again; the same key with a different \
                         request is 422, while the first is still running 409."
                            .into(),
                    ),
                    required: false,
                    deprecated: None,
                    format: ParameterSchemaOrContent::Schema(SchemaObject {
                        json_schema: schema,
                        example: None,
                        external_docs: None,
                    }),
                    example: None,
                    examples: Default::default(),
                    explode: None,
                    extensions: Default::default(),
                },
                style: HeaderStyle::Simple,
            }],
        );
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        // `E`'s, in order, with the key's failures added to their statuses' descriptions.
        let mut responses = Vec::new();
        for (status, response) in E::inferred_early_responses(ctx, operation) {
            match status {
                Some(400) => responses.extend([
                    (
                        status,
                        problem_response(ctx, "Malformed body or Idempotency-Key"),
                    ),
                    (
                        Some(409),
                        problem_response(
                            ctx,
                            "A request with this Idempotency-Key is still being processed",
                        ),
                    ),
                ]),
                Some(422) => responses.push((
                    status,
                    problem_response(
                        ctx,
                        "Body has invalid or missing fields, or the Idempotency-Key was used \
                         for a different request",
                    ),
                )),
                _ => responses.push((status, response)),
            }
        }
        responses
    }
}

impl<R: OperationOutput> OperationOutput for IdempotentResponse<R> {
    type Inner = R::Inner;

    fn operation_response(ctx: &mut GenContext, operation: &mut Operation) -> Option<DocResponse> {
        R::operation_response(ctx, operation)
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<u16>, DocResponse)> {
        R::inferred_responses(ctx, operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented pattern is the header rule, value by value.
    #[test]
    fn the_documented_key_pattern_is_the_rule() {
        let pattern = regex::Regex::new(KEY_PATTERN).unwrap();
        let long = "k".repeat(MAX_KEY_LEN);
        for value in [
            "a",
            "a b",
            "~!",
            " a",
            "a ",
            " ",
            "a\tb",
            "é",
            "0",
            long.as_str(),
            "-_.:/",
        ] {
            let mut headers = HeaderMap::new();
            let Ok(v) = http::HeaderValue::from_str(value) else {
                continue;
            };
            headers.insert(IDEMPOTENCY_KEY, v);
            assert_eq!(
                key_from(&headers).is_ok(),
                pattern.is_match(value),
                "{value:?}"
            );
        }
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(IDEMPOTENCY_KEY, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn keys_are_one_value_of_1_to_255_printable_ascii_characters() {
        assert_eq!(key_from(&headers(&[])).unwrap(), None);
        for ok in [
            &b"a"[..],
            b"8e03978e-40d5-43e8-bc93-6894a57f9324",
            b"order 42 ~!",
            &[b'k'; 255],
        ] {
            assert_eq!(
                key_from(&headers(&[ok]))
                    .unwrap()
                    .as_deref()
                    .map(str::as_bytes),
                Some(ok)
            );
        }
        for bad in [&b""[..], &[b'k'; 256], b"tab\there", "caf\u{e9}".as_bytes()] {
            let e = key_from(&headers(&[bad])).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let e = key_from(&headers(&[b"a", b"b"])).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "two values");
    }

    #[test]
    fn the_request_hash_covers_method_target_and_body_unambiguously() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let secrets = Secrets::derive(Uuid::now_v7(), "k");
        let hash = |method: &Method, target: &str, body: &[u8]| {
            secrets.request_hash(method, &uri(target), body)
        };
        let base = hash(&Method::POST, "/v1/items", b"{}");
        assert_eq!(base, hash(&Method::POST, "/v1/items", b"{}"));
        assert_eq!(base, hash(&Method::POST, "/v1/items?", b"{}"));
        for other in [
            hash(&Method::PUT, "/v1/items", b"{}"),
            hash(&Method::POST, "/v1/api-keys", b"{}"),
            hash(&Method::POST, "/v1/items?x=1", b"{}"),
            hash(&Method::POST, "/v1/items", b"{ }"),
            // Keyed per user and key: without the Idempotency-Key, a stored hash confirms no
            // guess of what the body held.
            Secrets::derive(Uuid::now_v7(), "k").request_hash(
                &Method::POST,
                &uri("/v1/items"),
                b"{}",
            ),
            Secrets::derive(Uuid::now_v7(), "k2").request_hash(
                &Method::POST,
                &uri("/v1/items"),
                b"{}",
            ),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn sealed_bodies_open_only_with_the_same_user_key_and_request() {
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let secrets = Secrets::derive(alice, "k1");
        let sealed = secrets.seal(&[1; 32], b"bsk_secret").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"bsk_secret"));
        assert_eq!(secrets.open(&[1; 32], &sealed).unwrap(), b"bsk_secret");
        assert!(secrets.open(&[2; 32], &sealed).is_err(), "another request");
        assert!(
            Secrets::derive(alice, "k2")
                .open(&[1; 32], &sealed)
                .is_err()
        );
        assert!(Secrets::derive(bob, "k1").open(&[1; 32], &sealed).is_err());
        assert_ne!(secrets.key_hash, Secrets::derive(bob, "k1").key_hash);
    }
}
