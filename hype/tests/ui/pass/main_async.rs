//! `#[hype::main]` on `async fn main`: runs on a tokio runtime.
#![deny(warnings)]

#[hype::remote]
async fn double(n: u32) -> u32 {
    n * 2
}

/// The program.
#[hype::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = "21".parse()?;
    let doubled = double(n).run_here().await?;
    assert_eq!(doubled, 42);
    tokio::task::spawn(async {}).await?;
    Ok(())
}
