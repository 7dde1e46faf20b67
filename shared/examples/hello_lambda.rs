//! Cold-start baseline for `scripts/bench-lambda`: the smallest `lambda_http` function (one
//! fixed response, no config, no pool, no middleware), built with the same profile as the
//! real functions, so their init time is reported as a ratio to this.
#![allow(clippy::disallowed_methods)] // lambda_http::run directly: this is the baseline

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
