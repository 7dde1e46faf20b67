//! What verifying an access token costs, in full and when `auth::verified_tokens` remembers
//! it: `cargo run --release -p shared --example bench_jwt`. Prints ns per verification over
//! 200 000 distinct tokens (each verified in full once, and remembered), then 200 000 repeats
//! of one token, in three rounds.
#![allow(clippy::print_stdout)]

use std::{hint::black_box, time::Instant};

use shared::{
    auth::jwt::JwtKeys,
    config::{AuthSettings, Env, Runtime},
};

const TOKENS: usize = 200_000;

fn main() -> anyhow::Result<()> {
    let env = Env::from_lookup(Runtime::Host, |name| {
        (name == "JWT_SECRET").then(|| "bench-only-jwt-secret-bench-only-jwt-secret".to_owned())
    })?;
    let settings = AuthSettings::from_env(&env)?;
    let issuer = JwtKeys::new(&settings)?;
    let tokens = (0..TOKENS)
        .map(|_| issuer.issue(uuid::Uuid::now_v7()))
        .collect::<Result<Vec<_>, _>>()?;
    for round in 1..=3 {
        // Fresh keys: nothing remembered yet.
        let keys = JwtKeys::new(&settings)?;
        let started = Instant::now();
        for token in &tokens {
            black_box(keys.verify(token)?);
        }
        let full = started.elapsed().as_nanos() as f64 / TOKENS as f64;
        let started = Instant::now();
        for _ in 0..TOKENS {
            black_box(keys.verify(&tokens[0])?);
        }
        let remembered = started.elapsed().as_nanos() as f64 / TOKENS as f64;
        println!(
            "round {round}: verified in full {full:.0} ns per token, remembered {remembered:.0} ns ({:.1}× less)",
            full / remembered
        );
    }
    Ok(())
}
