//! The Docker engine and a test image for the Docker runner's tests and
//! benchmark, built without pulling anything (this machine has no
//! registry).
//!
//! The image is `FROM scratch` in spirit: a root filesystem made here, in a
//! tar, and imported with the engine's import API (`docker import`). It
//! holds the worker binary as `/usr/local/bin/hype-run`, the shared
//! libraries `ldd` lists for it and the dynamic loader, plus `/bin/true`
//! (the benchmark's baseline) and its libraries; its `ENTRYPOINT` is
//! `hype-run`. The tag is a hash of the contents, so a rebuilt worker gets
//! a new image and an unchanged one is imported once.
//!
//! Without an engine, [`engine_or_skip`] prints a loud message and the
//! caller skips, unless `HYPE_REQUIRE_DOCKER=1`, which makes it panic.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{CreateImageOptions, ListImagesOptions, RemoveImageOptions};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};

/// The environment variable that makes a missing engine a failure.
pub const REQUIRE_DOCKER: &str = "HYPE_REQUIRE_DOCKER";
/// The repository of test images.
pub const REPOSITORY: &str = "hype-test-worker";
/// Bumped when the recipe changes, so old images are not reused.
const RECIPE: &str = "hype-test-image v1: hype-run + ldd libs + /bin/true; ENTRYPOINT hype-run";

/// Connects to the engine (`DOCKER_HOST` or the default socket) and checks
/// that it answers, negotiating the API version.
pub async fn connect() -> Result<Docker, String> {
    let docker = Docker::connect_with_defaults().map_err(|err| err.to_string())?;
    let docker = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
        .await
        .map_err(|_| "no answer within 5s".to_owned())?
        .map_err(|err| err.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), docker.ping())
        .await
        .map_err(|_| "no answer to ping within 5s".to_owned())?
        .map_err(|err| err.to_string())?;
    Ok(docker)
}

/// Whether `HYPE_REQUIRE_DOCKER=1`.
pub fn docker_required() -> bool {
    std::env::var(REQUIRE_DOCKER).is_ok_and(|v| v == "1")
}

/// The engine, or `None` after a loud message on stderr (the caller skips).
/// Panics instead when `HYPE_REQUIRE_DOCKER=1`.
pub async fn engine_or_skip(what: &str) -> Option<Docker> {
    match connect().await {
        Ok(docker) => Some(docker),
        Err(err) => {
            let host = std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
            if docker_required() {
                panic!(
                    "{what}: no Docker engine answers at {host} ({err}), and {REQUIRE_DOCKER}=1"
                );
            }
            // Straight to the process's stderr: libtest captures
            // `eprintln!` of passing tests, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!! SKIPPED: {what}: no Docker engine answers at {host} ({err}).\n!!!!!!!! Start one (or set DOCKER_HOST); set {REQUIRE_DOCKER}=1 to make this a failure.\n"
            );
            None
        }
    }
}

/// The test image for `worker` (a binary that dispatches `hype-run`),
/// imported into the engine unless an image with the same contents is
/// there already. Returns its tag.
pub async fn worker_image(docker: &Docker, worker: &Path) -> Result<String, String> {
    // One import at a time in this process; the tests run in parallel.
    static BUILT: tokio::sync::Mutex<BTreeMap<PathBuf, String>> =
        tokio::sync::Mutex::const_new(BTreeMap::new());
    let mut built = BUILT.lock().await;
    if let Some(tag) = built.get(worker) {
        return Ok(tag.clone());
    }
    let files = image_files(worker)?;
    let mut hasher = Sha256::new();
    hasher.update(RECIPE.as_bytes());
    for (path, bytes) in &files {
        hasher.update(path.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let digest = hex::encode(hasher.finalize());
    let tag = format!("{REPOSITORY}:{}", &digest[..16]);
    if docker.inspect_image(&tag).await.is_err() {
        let tar = tar_of(&files).map_err(|err| format!("cannot make the image's tar: {err}"))?;
        let options = CreateImageOptions {
            from_src: Some("-".to_owned()),
            repo: Some(REPOSITORY.to_owned()),
            tag: Some(digest[..16].to_owned()),
            changes: vec![
                r#"ENTRYPOINT ["hype-run"]"#.to_owned(),
                "ENV PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
            ],
            ..Default::default()
        };
        let importing = async {
            let mut progress = std::pin::pin!(docker.create_image(
                Some(options),
                Some(bollard::body_full(tar.into())),
                None
            ));
            while let Some(step) = progress.next().await {
                step.map_err(|err| format!("docker import failed: {err}"))?;
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(Duration::from_secs(300), importing)
            .await
            .map_err(|_| "docker import did not finish within 300s".to_owned())??;
        docker
            .inspect_image(&tag)
            .await
            .map_err(|err| format!("imported {tag}, but the engine does not show it: {err}"))?;
    }
    prune_old_images(docker, &tag).await;
    built.insert(worker.to_owned(), tag.clone());
    Ok(tag)
}

/// Removes test images other than `keep` imported more than an hour ago,
/// so rebuilt workers do not pile up images. Images in use stay (the
/// engine refuses to remove them); failures are ignored.
async fn prune_old_images(docker: &Docker, keep: &str) {
    let options = ListImagesOptions {
        filters: Some(HashMap::from([(
            "reference".to_owned(),
            vec![REPOSITORY.to_owned()],
        )])),
        ..Default::default()
    };
    let Ok(images) = docker.list_images(Some(options)).await else {
        return;
    };
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_secs() as i64 - 3600);
    for image in images {
        if image.created > hour_ago || image.repo_tags.iter().any(|t| t == keep) {
            continue;
        }
        for tag in &image.repo_tags {
            let _ = docker
                .remove_image(tag, None::<RemoveImageOptions>, None)
                .await;
        }
    }
}

/// The image's files: path in the image → contents.
fn image_files(worker: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    let read =
        |path: &Path| std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()));
    files.insert("usr/local/bin/hype-run".to_owned(), read(worker)?);
    let true_bin = Path::new("/bin/true");
    files.insert("bin/true".to_owned(), read(true_bin)?);
    for binary in [worker, true_bin] {
        for library in shared_libraries(binary)? {
            let inside = library
                .to_str()
                .ok_or_else(|| format!("{} is not UTF-8", library.display()))?
                .trim_start_matches('/')
                .to_owned();
            files.insert(inside, read(&library)?);
        }
    }
    Ok(files)
}

/// The shared libraries and the loader `ldd` lists for `binary`.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let output = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|err| format!("cannot run ldd: {err}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        return Err(format!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
    // "/lib64/ld-linux-x86-64.so.2 (0x…)"; linux-vdso has no file.
    Ok(text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// A tar of `files` (regular files, 0755) and a world-writable `/tmp`.
fn tar_of(files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut tmp = tar::Header::new_gnu();
    tmp.set_entry_type(tar::EntryType::Directory);
    tmp.set_mode(0o1777);
    tmp.set_size(0);
    tar.append_data(&mut tmp, "tmp/", std::io::empty())?;
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o755);
        header.set_size(bytes.len() as u64);
        tar.append_data(&mut header, path, bytes.as_slice())?;
    }
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lists_the_loader_and_libc_of_true() {
        let libs = shared_libraries(Path::new("/bin/true")).unwrap();
        if libs.is_empty() {
            return; // a static /bin/true needs nothing
        }
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
            "{libs:?}"
        );
        assert!(
            libs.iter()
                .any(|l| l.to_string_lossy().contains("ld-linux")),
            "{libs:?}"
        );
    }
}
