//! A worker whose registry holds one ID twice: `hype-run` must refuse it.

/// One function with the ID `dup::same`.
#[hype::remote(name = "dup::same")]
fn first() -> u8 {
    1
}

/// Another function with the ID `dup::same`.
#[hype::remote(name = "dup::same")]
fn second() -> u8 {
    2
}

#[hype::main]
fn main() {
    let _ = (first(), second());
    eprintln!("hype-dup-worker: run me as hype-run");
    std::process::exit(2);
}
