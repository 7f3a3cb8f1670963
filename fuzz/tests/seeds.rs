//! The seed corpora in `seeds/<target>/` are the ones `hype_fuzz::seeds`
//! makes: this test fails when they differ, and `HYPE_BLESS=1` rewrites
//! them (as the runtime's golden tests do). Run it with
//! `cargo test --manifest-path fuzz/Cargo.toml` (stable or nightly).

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn seeds_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let bless = std::env::var_os("HYPE_BLESS").is_some();
    let seeds = hype_fuzz::seeds::all();
    let mut stale = Vec::new();
    let mut names = BTreeSet::new();
    for seed in &seeds {
        let path = root.join(seed.target).join(&seed.name);
        assert!(
            names.insert(path.clone()),
            "two seeds named {}",
            path.display()
        );
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &seed.bytes).unwrap();
        } else if std::fs::read(&path).ok().as_ref() != Some(&seed.bytes) {
            stale.push(path.display().to_string());
        }
    }
    // Files no seed makes.
    for dir in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if !names.contains(&path) {
                if bless {
                    std::fs::remove_file(&path).unwrap();
                } else {
                    stale.push(format!("{} (made by no seed)", path.display()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "seeds differ from hype_fuzz::seeds (HYPE_BLESS=1 rewrites them): {stale:#?}"
    );
}

#[test]
fn the_golden_seed_is_the_protocol_example() {
    assert_eq!(
        hype_runtime::wire::encode_call(&hype_fuzz::golden_call()).unwrap(),
        hype_fuzz::seeds::golden_call_bytes()
    );
}

#[test]
fn hand_written_deep_values_are_their_encodings() {
    use std::collections::BTreeMap;

    use hype_fuzz::seeds::{nested_branch_bytes, nested_tree_bytes};
    use hype_fuzz::{Branch, Tree};
    use hype_runtime::wire::encode_value;

    let mut branch = Branch {
        value: 0,
        children: vec![],
        named: BTreeMap::new(),
    };
    let (mut list, mut boxed, mut maybe) = (Tree::Leaf, Tree::Leaf, Tree::Leaf);
    for _ in 0..3 {
        branch = Branch {
            value: 1,
            children: vec![branch],
            named: BTreeMap::new(),
        };
        list = Tree::List(vec![list]);
        boxed = Tree::Boxed(Box::new(boxed));
        maybe = Tree::Maybe(Some(Box::new(maybe)));
    }
    let tree = |t: &Tree| encode_value("t", "value", t).unwrap();
    assert_eq!(
        encode_value("t", "value", &branch).unwrap(),
        nested_branch_bytes(3)
    );
    assert_eq!(tree(&list), nested_tree_bytes(3, "List"));
    assert_eq!(tree(&boxed), nested_tree_bytes(3, "Boxed"));
    assert_eq!(tree(&maybe), nested_tree_bytes(3, "Maybe"));
}

/// The `value` target's verdict on its seeds, on stable: `bad-*` seeds are
/// refused by every type, the others decode as one of them. Holds the two
/// findings fixed: `bad-maybe-10000-deep` must be an error, not a stack
/// overflow.
#[test]
fn value_seeds_get_the_targets_verdict() {
    // Seeds nest up to the limit (1024), and an unoptimised build's frames
    // are several times a release build's: give the check the main
    // thread's 8 MiB and more, as the fuzz targets (release) have.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(check_value_seeds)
        .unwrap()
        .join()
        .unwrap();
}

fn check_value_seeds() {
    use std::collections::BTreeMap;

    use hype_fuzz::{AddArgs, Branch, Tree, TreeArgs, check_value};
    use hype_runtime::Bytes;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/value");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let decoded = [
            check_value::<Tree>(&data, false),
            check_value::<TreeArgs>(&data, false),
            check_value::<Branch>(&data, true),
            check_value::<AddArgs>(&data, true),
            check_value::<Result<i64, String>>(&data, true),
            check_value::<()>(&data, true),
            check_value::<Bytes>(&data, true),
            check_value::<Vec<Option<Box<Tree>>>>(&data, false),
            check_value::<BTreeMap<String, Vec<(u8, Option<String>)>>>(&data, true),
        ];
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            decoded.contains(&true),
            !name.starts_with("bad-"),
            "seed {name}"
        );
        seen += 1;
    }
    assert!(seen >= 10, "{seen} value seeds");
}

/// The root store's blob URIs are readable locations again (the
/// `staging_uri` finding, fixed in `staging::blob_uri`).
#[test]
fn the_root_store_gives_readable_blob_uris() {
    let hex = "ab".repeat(32);
    let root = hype_runtime::LocalStaging::from_uri("file:///").unwrap();
    let blob = hype_runtime::__tools::fuzzing::blob_uri(hype_runtime::Staging::location(&root), &hex);
    assert_eq!(blob, format!("file:///blobs/sha256/{hex}"));
    assert!(hype_runtime::LocalStaging::from_uri(&blob).is_ok());
    assert_eq!(
        hype_runtime::__tools::fuzzing::digest_in_uri(&blob),
        Some(hex.as_str())
    );
}

#[test]
fn worker_frames_seeds_get_the_targets_verdict() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/worker_frames");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let bad = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("bad-");
        assert_eq!(
            hype_fuzz::check_frames(&data),
            !bad,
            "{} got the wrong verdict",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 7, "{seen} seeds");
}
