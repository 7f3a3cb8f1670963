//! A `Result` return type: the user's error comes back typed.
#![deny(warnings)]

use hype::RemoteFn;
use serde::{Deserialize, Serialize};

/// Why a number did not parse.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct ParseFailure {
    input: String,
}

#[hype::remote]
fn parse(n: String) -> Result<u64, ParseFailure> {
    n.parse().map_err(|_| ParseFailure { input: n.clone() })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(parse("42".into()).run_here().await.unwrap(), Ok(42));
    assert_eq!(
        parse("x".into()).run_here().await.unwrap(),
        Err(ParseFailure { input: "x".into() })
    );
    assert_eq!(
        ParseArgs::SIGNATURE,
        hype::wire::fnv1a64(b"hype-sig-v2(n:String)->Result<u64,ParseFailure>")
    );
}
