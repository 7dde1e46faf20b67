//! Lambda entry point: the `webhooks` routes behind the shared middleware chain.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(fn_webhooks::router()).await
}
