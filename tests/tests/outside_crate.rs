//! A crate outside the workspace, depending only on `hype` (by path) and
//! `tokio`, defines remote functions in two modules and runs them through
//! the local runner. The test copies `tests/fixtures/outside-crate` to a
//! temporary directory, points its `hype` dependency at this checkout, and
//! runs it with cargo, offline, in its own target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

#[test]
fn an_outside_crate_runs_remote_functions_from_two_modules() {
    let root = workspace_root();
    let fixture = root.join("tests/fixtures/outside-crate");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    for file in ["src/main.rs", "src/text.rs", "src/geometry.rs"] {
        std::fs::copy(fixture.join(file), dir.path().join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(fixture.join("Cargo.toml"))
        .unwrap()
        .replace("../../../hype", &root.join("hype").display().to_string());
    std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    // The workspace's lock file pins the same versions, so the build needs
    // nothing that is not already downloaded.
    std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["run", "--quiet", "--offline"])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", root.join("target/outside-crate"))
        .env_remove("HYPE_CLUSTER")
        .env_remove("HYPE_STAGING")
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "shout: HELLO OUTSIDE WORLD",
            "area: 13.5",
            "ran elsewhere: true"
        ],
        "stderr:\n{stderr}"
    );
}
