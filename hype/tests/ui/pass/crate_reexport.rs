//! `crate = "…"`: a crate that re-exports hype names it by its own path,
//! and the generated code uses that path instead of `::hype`.
#![deny(warnings)]

/// What a crate wrapping hype would export.
mod reexport {
    pub use hype;
}

use reexport::hype::RemoteFn;

#[reexport::hype::remote(crate = "reexport::hype")]
fn shout(text: String) -> String {
    text.to_uppercase()
}

#[reexport::hype::remote(crate = "reexport::hype", name = "jobs::count")]
async fn count(words: Vec<String>) -> usize {
    words.len()
}

/// Paths in a module: relative to where the attribute is, as any path.
mod jobs {
    #[crate::reexport::hype::remote(crate = "crate::reexport::hype")]
    pub fn twice(n: u32) -> u32 {
        n * 2
    }

    #[crate::reexport::hype::remote(crate = "super::reexport::hype")]
    pub fn thrice(n: u32) -> u32 {
        n * 3
    }
}

/// The default path, written out.
#[hype::remote(crate = "::hype")]
fn unit() {}

#[reexport::hype::main(crate = "reexport::hype")]
async fn main() -> Result<(), reexport::hype::Error> {
    assert_eq!(shout("a".into()).run_here().await?, "A");
    assert_eq!(count(vec!["a".into(), "b".into()]).run_here().await?, 2);
    assert_eq!(jobs::twice(2).run_here().await?, 4);
    assert_eq!(jobs::thrice(2).run_here().await?, 6);
    unit().run_here().await?;
    assert_eq!(CountArgs::ID, "jobs::count");
    let registry = reexport::hype::__private::Registry::global().unwrap();
    let shout_id = concat!(module_path!(), "::shout");
    let twice_id = concat!(module_path!(), "::jobs::twice");
    for id in ["jobs::count", shout_id, twice_id] {
        assert!(registry.get(id).is_some(), "{id} is registered");
    }
    Ok(())
}
