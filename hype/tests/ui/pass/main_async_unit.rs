//! `#[hype::main]` on `async fn main()` without a return type.
#![deny(warnings)]

#[hype::main]
async fn main() {
    tokio::task::yield_now().await;
}
