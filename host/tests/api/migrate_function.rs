//! The `migrate` Lambda function through its entry point's handler: CloudFormation
//! custom-resource events (the checked-in ones SAM CLI generates) with a loopback
//! `ResponseURL`, answered as the protocol says — a real database migrated on Create and
//! Update, nothing touched on Delete, a failure answered FAILED with its reason.

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::put};
use host::migrate_function::{AnswerError, MigrateFunction, PHYSICAL_ID};
use serde_json::Value;
use shared::{
    config::{DatabaseSettings, Env, Runtime},
    db::Db,
    lambda::{Invocation, InvocationContext},
    testing,
};

/// What the loopback `ResponseURL` received: each PUT's headers and JSON body.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

/// A loopback stand-in for the presigned S3 URL, answering `status`; its URL with a query
/// like a presigned one.
async fn response_url(status: StatusCode) -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route(
            "/cloudformation/{*key}",
            put(
                move |State(r): State<Received>, headers: HeaderMap, body: Bytes| async move {
                    r.0.lock()
                        .unwrap()
                        .push((headers, serde_json::from_slice(&body).unwrap()));
                    status
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("http://{addr}/cloudformation/stack%7CMigrations%7Cid?X-Amz-Signature=abc"),
        received,
    )
}

/// A checked-in event with `url` as its `ResponseURL` and, when given, another physical id.
fn event(
    file: &str,
    url: &str,
    physical_id: Option<&str>,
) -> Invocation<aws_lambda_events::cloudformation::CloudFormationCustomResourceRequest> {
    let text = match file {
        "create" => include_str!("../../../events/custom-resource/create.json"),
        "update" => include_str!("../../../events/custom-resource/update.json"),
        _ => include_str!("../../../events/custom-resource/delete.json"),
    };
    let mut event: Value = serde_json::from_str(text).unwrap();
    event["ResponseURL"] = url.into();
    if let Some(id) = physical_id {
        event["PhysicalResourceId"] = id.into();
    }
    let mut context = InvocationContext::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    Invocation::new(serde_json::from_value(event).unwrap(), context)
}

fn function(database_url: &str) -> MigrateFunction {
    let url = database_url.to_owned();
    let env = Env::from_lookup(Runtime::Lambda, move |name| {
        (name == "DATABASE_URL").then(|| url.clone())
    })
    .unwrap();
    MigrateFunction::new(Db::new(&DatabaseSettings::from_env(&env).unwrap()).unwrap()).unwrap()
}

async fn applied_versions(database_url: &str) -> i64 {
    let (client, _driver) = testing::connect(database_url).await.unwrap();
    client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0)
}

/// A database URL nothing listens on.
fn unreachable_database() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("postgres://basalt@127.0.0.1:{port}/nowhere?connect_timeout=2")
}

#[tokio::test]
async fn create_migrates_an_empty_database_and_update_finds_it_current() {
    let database_url = testing::create_database().await;
    let function = function(&database_url);
    let (url, received) = response_url(StatusCode::OK).await;

    let response = function.handle(event("create", &url, None)).await.unwrap();
    let puts = received.0.lock().unwrap().clone();
    assert_eq!(puts.len(), 1);
    let (headers, body) = &puts[0];
    // The URL is presigned without a content type: none may be sent.
    assert!(headers.get("content-type").is_none(), "{headers:?}");
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(body["PhysicalResourceId"], PHYSICAL_ID);
    assert_eq!(body["RequestId"], "unique id for this create request");
    assert_eq!(body["LogicalResourceId"], "Migrations");
    assert_eq!(
        body["StackId"],
        "arn:aws:cloudformation:eu-west-1:123456789012:stack/basalt/guid"
    );
    let versions = applied_versions(&database_url).await;
    assert!(versions >= 8, "{versions} migrations applied");
    assert_eq!(body["Data"]["Applied"], versions.to_string());
    assert_eq!(serde_json::to_value(&response).unwrap(), *body);
    let (client, _driver) = testing::connect(&database_url).await.unwrap();
    client
        .query("SELECT id FROM users LIMIT 1", &[])
        .await
        .unwrap();

    let (url, received) = response_url(StatusCode::OK).await;
    function
        .handle(event("update", &url, Some("an-earlier-id")))
        .await
        .unwrap();
    let body = received.0.lock().unwrap()[0].1.clone();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(body["Data"]["Applied"], "0");
    // An update keeps the physical id it is given: a new one would delete the old resource.
    assert_eq!(body["PhysicalResourceId"], "an-earlier-id");
    assert_eq!(body["RequestId"], "unique id for this update request");
    assert_eq!(applied_versions(&database_url).await, versions);
}

#[tokio::test]
async fn a_failed_migration_answers_failed_with_the_error() {
    let function = function(&unreachable_database());
    let (url, received) = response_url(StatusCode::OK).await;
    let response = function.handle(event("create", &url, None)).await.unwrap();
    let body = received.0.lock().unwrap()[0].1.clone();
    assert_eq!(body["Status"], "FAILED", "{body}");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("could not get a database connection"),
        "{reason}"
    );
    assert!(reason.len() <= 1_000);
    assert_eq!(body["PhysicalResourceId"], PHYSICAL_ID);
    assert_eq!(serde_json::to_value(&response).unwrap(), body);
}

#[tokio::test]
async fn delete_answers_success_without_touching_the_database() {
    // Nothing listens at the URL: a Delete that connected would fail.
    let function = function(&unreachable_database());
    let (url, received) = response_url(StatusCode::OK).await;
    function.handle(event("delete", &url, None)).await.unwrap();
    let body = received.0.lock().unwrap()[0].1.clone();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(body["Data"], serde_json::json!({}));
    assert_eq!(body["PhysicalResourceId"], "basalt-migrations");
}

#[tokio::test]
async fn a_refused_response_fails_the_invocation() {
    let function = function(&unreachable_database());
    let (url, received) = response_url(StatusCode::FORBIDDEN).await;
    match function.handle(event("delete", &url, None)).await {
        Err(AnswerError::Refused(status)) => assert_eq!(status, 403),
        other => panic!("{other:?}"),
    }
    assert_eq!(received.0.lock().unwrap().len(), 1);
}
