//! `#[hype::main]` on a plain `main` with a return type.
#![deny(warnings)]

#[hype::remote]
fn double(n: u32) -> u32 {
    n * 2
}

#[hype::main]
fn main() -> Result<(), std::num::ParseIntError> {
    let n: u32 = "21".parse()?;
    assert_eq!(double(n).into_args().n, 21);
    Ok(())
}
