//! Lambda entry point: the stack's migrations, invoked by the `Migrations` custom resource in
//! `template.yaml` (`host::migrate_function`).

use shared::{
    config::{Env, LogFormat, Runtime},
    telemetry,
};

use host::migrate_function::MigrateFunction;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), shared::lambda::Error> {
    let env = Env::from_process(Runtime::Lambda)?;
    telemetry::init(LogFormat::from_env(&env)?);
    let function = std::sync::Arc::new(MigrateFunction::from_env(&env)?);
    shared::lambda::run_events(move |invocation| {
        let function = function.clone();
        async move { Ok::<_, shared::lambda::Error>(function.handle(invocation).await?) }
    })
    .await
}
