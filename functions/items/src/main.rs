//! Lambda entry point: the `items` routes behind the shared middleware chain.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(fn_items::router()).await
}
