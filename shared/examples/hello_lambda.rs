//! Cold-start baseline for `scripts/bench-lambda`: the smallest `lambda_http` function (one
//! fixed response, no config, no pool, no middleware), built with the same profile as the
//! real functions, so their init time is reported as a ratio to this.
#![allow(clippy::disallowed_methods)] // lambda_http::run directly: this is the baseline

use lambda_http::{Body, Error, Request, Response, service_fn};

/// As `cargo lambda new` writes it: `#[tokio::main]`, i.e. a multi-threaded runtime. With
/// `HELLO_CURRENT_THREAD` set it runs on a current-thread runtime instead, like the functions,
/// so the benchmark can also compare like with like.
fn main() -> Result<(), Error> {
    let mut runtime = if std::env::var_os("HELLO_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    runtime
        .enable_all()
        .build()?
        .block_on(lambda_http::run(service_fn(|_req: Request| async {
            Ok::<_, Error>(Response::new(Body::from("hello")))
        })))
}
