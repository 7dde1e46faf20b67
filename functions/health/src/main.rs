//! Lambda entry point: the `health` routes behind the shared middleware chain.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(fn_health::router().merge(fn_health::docs_router())).await
}
