//! Lambda entry point: the `api-keys` routes behind the shared middleware chain.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(fn_api_keys::router()).await
}
