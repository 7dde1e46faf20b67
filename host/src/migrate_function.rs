//! The `migrate` Lambda function: the stack's database migrations (the same embedded refinery
//! migrations as `host migrate`), run by the CloudFormation custom resource `Migrations` in
//! `template.yaml` whenever the stack is created or the function's code changes, before the
//! functions that need the new schema are updated (they depend on it).
//!
//! It answers through the custom-resource protocol: one PUT of the outcome to the request's
//! presigned `ResponseURL`. A failed migration answers `FAILED` with the error, so the
//! deployment fails (and rolls back) with the reason in its events, instead of the functions
//! starting on an old schema. A `Delete` answers `SUCCESS` without touching the database: a
//! stack's deletion, or the clean-up after a rollback, must never drop data.

use std::{collections::HashMap, time::Duration};

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest as Request,
    CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use shared::{
    config::{DatabaseSettings, Env},
    db::Db,
    lambda::Invocation,
};

/// The resource's physical id: one per stack, never changed by an update (a new id would have
/// CloudFormation delete the old one).
pub const PHYSICAL_ID: &str = "basalt-migrations";

/// CloudFormation refuses responses over 4 096 bytes: the reason is cut well below.
const REASON_LIMIT: usize = 1_000;

/// One container's state: the pool (one connection) and the client for the response.
#[derive(Debug)]
pub struct MigrateFunction {
    db: Db,
    http: reqwest::Client,
}

/// The function's failures that are not the migration's: CloudFormation could not be told.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("could not send the custom resource's response to its ResponseURL: {0}")]
    Send(#[from] reqwest::Error),
    #[error("the custom resource's ResponseURL refused the response: HTTP {0}")]
    Refused(reqwest::StatusCode),
    #[error("a custom-resource request type other than Create, Update and Delete")]
    UnknownRequest,
}

impl MigrateFunction {
    /// From `DATABASE_URL` (and the other database settings).
    pub fn from_env(env: &Env<'_>) -> Result<Self, shared::lambda::Error> {
        let mut database = DatabaseSettings::from_env(env)?;
        // Migrations hold one session (the advisory lock) for the whole run.
        database.pool_max = 1;
        Ok(Self::new(Db::new(&database)?)?)
    }

    pub fn new(db: Db) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { db, http })
    }

    /// One custom-resource request: migrate on `Create` and `Update`, nothing on `Delete`, then
    /// the answer. An error only when the answer could not be delivered (the invocation then
    /// fails, and Lambda's retries of an asynchronous invocation send it again).
    pub async fn handle(&self, invocation: Invocation<Request>) -> Result<Response, AnswerError> {
        let (request, context) = (invocation.payload, invocation.context);
        let (outcome, url, physical_id, stack_id, request_id, logical_id) = match request {
            Request::Create(r) => (
                self.migrate().await.map(Some),
                r.response_url,
                PHYSICAL_ID.to_owned(),
                r.stack_id,
                r.request_id,
                r.logical_resource_id,
            ),
            Request::Update(r) => (
                self.migrate().await.map(Some),
                r.response_url,
                r.physical_resource_id,
                r.stack_id,
                r.request_id,
                r.logical_resource_id,
            ),
            Request::Delete(r) => (
                Ok(None),
                r.response_url,
                r.physical_resource_id,
                r.stack_id,
                r.request_id,
                r.logical_resource_id,
            ),
            _ => return Err(AnswerError::UnknownRequest),
        };
        let mut response = Response::default();
        response.physical_resource_id = physical_id;
        response.stack_id = stack_id;
        response.request_id = request_id;
        response.logical_resource_id = logical_id;
        match outcome {
            Ok(applied) => {
                response.status = Status::Success;
                if let Some(applied) = applied {
                    response.data = HashMap::from([("Applied".to_owned(), applied.to_string())]);
                }
            }
            Err(error) => {
                tracing::error!(invocation = %context.request_id, %error, "migration failed");
                response.status = Status::Failed;
                let mut reason = format!("{error} (log stream {})", context.env_config.log_stream);
                if reason.len() > REASON_LIMIT {
                    let mut end = REASON_LIMIT;
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    reason.truncate(end);
                }
                response.reason = Some(reason);
            }
        }
        self.answer(&url, &response).await?;
        Ok(response)
    }

    /// How many migrations were applied now.
    async fn migrate(&self) -> Result<usize, shared::migrations::MigrationError> {
        let applied = self.db.migrate().await?;
        tracing::info!(applied, "database is up to date");
        Ok(applied)
    }

    /// The PUT the protocol asks for: a JSON body and no content type (the URL is presigned
    /// without one).
    async fn answer(&self, url: &str, response: &Response) -> Result<(), AnswerError> {
        let body = serde_json::to_vec(response).unwrap_or_default();
        let answered = self.http.put(url).body(body).send().await?;
        if !answered.status().is_success() {
            return Err(AnswerError::Refused(answered.status()));
        }
        Ok(())
    }
}
