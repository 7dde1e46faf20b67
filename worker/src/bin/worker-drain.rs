//! Lambda entry point: the scheduled worker (`worker::scheduled`), drained each minute by an
//! EventBridge schedule (`template.yaml`'s `WorkerDrainFunction`).

use std::sync::Arc;

use shared::{
    config::{Env, LogFormat, Runtime},
    telemetry,
};
use worker::scheduled::Scheduled;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), shared::lambda::Error> {
    let env = Env::from_process(Runtime::Lambda)?;
    telemetry::init(LogFormat::from_env(&env)?);
    // Once per container, outside the handler: the pool and the HTTP client.
    let function = Arc::new(Scheduled::from_env(&env)?);
    shared::lambda::run_events(move |invocation| {
        let function = function.clone();
        async move { function.handle(invocation).await }
    })
    .await
}
