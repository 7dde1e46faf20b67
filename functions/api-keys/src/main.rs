//! Lambda entry point: the `api-keys` routes behind the shared middleware chain.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(fn_api_keys::router()).await
}
