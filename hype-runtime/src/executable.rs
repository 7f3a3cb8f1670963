//! The program's own executable, shipped with its calls: which file it is,
//! what machine it runs on (read from its ELF header), and its digest,
//! computed once per process on a background thread.
//!
//! The submitter ships the executable to backends whose executions run
//! outside this process tree (Docker, Kubernetes), so an env image needs
//! only a generic `hype-run` launcher and a code change needs no image
//! rebuild. Before it travels, [`Executable::inspect`] checks that it is an
//! ELF executable for Linux on x86_64 or aarch64; anything else (Mach-O, PE,
//! a script, another machine) fails with [`Error::ExecutableNotShippable`],
//! whose message says how to fix it.
//!
//! The digest is a full SHA-256 (ring's assembly, as fast in a debug build
//! as in a release build), also where a launcher asks "is this binary
//! me?": an ELF build ID would be cheaper, but not every linker writes one,
//! it survives `strip` and padding that change the bytes, and the call's
//! digest would need a second identity beside it; at about 1 GB/s a
//! 188 MB debug build hashes in 0.2 s.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::Error;

/// A machine type an executable can be built for, and where calls can go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Arch {
    /// x86_64 (`amd64` to Docker and Kubernetes).
    X86_64,
    /// aarch64 (`arm64` to Docker and Kubernetes).
    Aarch64,
}

impl Arch {
    /// The name Docker and Kubernetes give it (`kubernetes.io/arch`,
    /// `docker version`'s `Arch`): `amd64` or `arm64`.
    pub fn go_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The Rust target of a Linux build for it.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The arch Docker or Kubernetes names (`amd64`, `x86_64`, `arm64`,
    /// `aarch64`), if hype can ship to it.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "amd64" | "x86_64" | "x86-64" => Some(Arch::X86_64),
            "arm64" | "aarch64" | "arm64/v8" => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        })
    }
}

/// What the first bytes of a file say it is: a Linux ELF executable for
/// one of [`Arch`], or why it cannot be shipped.
pub fn identify(header: &[u8]) -> Result<Arch, String> {
    const ELF: &[u8] = b"\x7fELF";
    if !header.starts_with(ELF) {
        let what = match header {
            [0xfe, 0xed, 0xfa, 0xce | 0xcf, ..]
            | [0xce | 0xcf, 0xfa, 0xed, 0xfe, ..]
            | [0xca, 0xfe, 0xba, 0xbe, ..] => "a Mach-O executable (macOS)",
            [b'M', b'Z', ..] => "a PE executable (Windows)",
            [b'#', b'!', ..] => "a script, not a compiled executable",
            [] => "an empty file",
            _ => "not an ELF executable",
        };
        return Err(what.to_owned());
    }
    if header.len() < 20 {
        return Err("a truncated ELF file".to_owned());
    }
    let (class, data, os_abi) = (header[4], header[5], header[7]);
    if data != 1 {
        return Err(
            "a big-endian ELF file; hype ships x86_64 and aarch64 (little-endian)".to_owned(),
        );
    }
    let e_type = u16::from_le_bytes([header[16], header[17]]);
    let e_machine = u16::from_le_bytes([header[18], header[19]]);
    // 0 is System V, which Linux binaries carry; 3 is GNU/Linux.
    if os_abi != 0 && os_abi != 3 {
        return Err(format!(
            "an ELF file for another operating system (OS ABI {os_abi}), not Linux"
        ));
    }
    if e_type != 2 && e_type != 3 {
        let what = match e_type {
            1 => "an object file (.o), not an executable",
            4 => "a core dump, not an executable",
            _ => "an ELF file that is not an executable",
        };
        return Err(what.to_owned());
    }
    let machine = match (class, e_machine) {
        (2, 0x3e) => return Ok(Arch::X86_64),
        (2, 0xb7) => return Ok(Arch::Aarch64),
        (1, 0x03) => "x86 (32-bit)",
        (1, 0x28) => "arm (32-bit)",
        (_, 0xf3) => "riscv",
        (_, 0x15) => "powerpc64",
        (_, 0x16) => "s390x",
        _ => "an unknown machine",
    };
    Err(format!("an ELF executable for {machine}"))
}

/// The digest and size of an executable's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Its length in bytes.
    pub len: u64,
}

/// The executable a submitter ships with its calls: its path, its machine
/// type, and its digest (computed once per process and path, on a
/// background thread started by [`Executable::inspect`]).
#[derive(Debug, Clone)]
pub struct Executable {
    path: PathBuf,
    arch: Arch,
    digest: Arc<OnceLock<Result<Digest, String>>>,
    ready: Arc<tokio::sync::Notify>,
}

impl Executable {
    /// Checks the file at `path` (an ELF executable for Linux on x86_64 or
    /// aarch64) and starts hashing it in the background, unless this
    /// process already has. Fails with [`Error::ExecutableNotShippable`].
    pub fn inspect(path: impl Into<PathBuf>) -> Result<Executable, Error> {
        let path = path.into();
        let not_shippable = |reason: String| Error::ExecutableNotShippable {
            path: path.clone(),
            reason,
        };
        let mut header = Vec::with_capacity(64);
        let mut file = std::fs::File::open(&path)
            .map_err(|err| not_shippable(format!("cannot open it: {err}")))?;
        let metadata = file
            .metadata()
            .map_err(|err| not_shippable(format!("cannot read its metadata: {err}")))?;
        if !metadata.is_file() {
            return Err(not_shippable("it is not a regular file".to_owned()));
        }
        (&mut file)
            .take(64)
            .read_to_end(&mut header)
            .map_err(|err| not_shippable(format!("cannot read it: {err}")))?;
        let arch = identify(&header).map_err(|what| not_shippable(format!("it is {what}")))?;
        let (digest, ready) = hashing(&path);
        Ok(Executable {
            path,
            arch,
            digest,
            ready,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The machine it runs on.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Its digest and length, waiting for the background hash if it has not
    /// finished (the first call's other work overlaps it).
    pub async fn digest(&self) -> Result<Digest, Error> {
        loop {
            let notified = self.ready.notified();
            if let Some(result) = self.digest.get() {
                return result
                    .clone()
                    .map_err(|reason| Error::ExecutableNotShippable {
                        path: self.path.clone(),
                        reason,
                    });
            }
            notified.await;
        }
    }
}

type Hashing = (
    Arc<OnceLock<Result<Digest, String>>>,
    Arc<tokio::sync::Notify>,
);

/// The digest of `path`, hashed once per process on its own thread.
static STARTED: OnceLock<Mutex<HashMap<PathBuf, Hashing>>> = OnceLock::new();

fn hashing(path: &Path) -> Hashing {
    let started = STARTED.get_or_init(Default::default);
    let mut started = started.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hashing) = started.get(path) {
        return hashing.clone();
    }
    let digest: Arc<OnceLock<Result<Digest, String>>> = Arc::default();
    let ready = Arc::new(tokio::sync::Notify::new());
    let (slot, wake, file) = (digest.clone(), ready.clone(), path.to_owned());
    let spawned = std::thread::Builder::new()
        .name("hype-hash-exe".to_owned())
        .spawn(move || {
            let _ = slot.set(hash_file(&file).map_err(|err| format!("cannot hash it: {err}")));
            wake.notify_waiters();
        });
    if let Err(err) = spawned {
        let _ = digest.set(Err(format!("cannot start a thread to hash it: {err}")));
    }
    started.insert(path.to_owned(), (digest.clone(), ready.clone()));
    (digest, ready)
}

/// This process's executable (`std::env::current_exe`), read once.
pub fn current_exe() -> Option<&'static Path> {
    static CURRENT: OnceLock<Option<PathBuf>> = OnceLock::new();
    CURRENT
        .get_or_init(|| std::env::current_exe().ok())
        .as_deref()
}

/// Starts hashing this process's executable in the background, once.
pub fn start_hashing_current() {
    if let Some(path) = current_exe() {
        hashing(path);
    }
}

/// This process's executable's digest, if its hash has finished.
pub fn current_digest_now() -> Option<Digest> {
    let path = current_exe()?;
    let started = STARTED.get()?.lock().unwrap_or_else(|e| e.into_inner());
    let (digest, _) = started.get(path)?;
    digest.get().and_then(|r| r.clone().ok())
}

/// SHA-256 and length of a file, read in chunks so a large executable is
/// never held in memory at once.
pub fn hash_file(path: &Path) -> std::io::Result<Digest> {
    hash_reader(std::fs::File::open(path)?)
}

/// SHA-256 and length of everything `from` reads, in chunks (ring's
/// assembly: as fast in a debug build as in a release build).
pub fn hash_reader(mut from: impl std::io::Read) -> std::io::Result<Digest> {
    let mut hasher = crate::sha256::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(Digest {
        sha256: hasher.finish_hex(),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, os_abi: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1;
        h[6] = 1;
        h[7] = os_abi;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn linux_executables_are_identified_by_machine() {
        assert_eq!(identify(&elf(2, 0, 3, 0x3e)), Ok(Arch::X86_64));
        assert_eq!(identify(&elf(2, 3, 2, 0xb7)), Ok(Arch::Aarch64));
        let riscv = identify(&elf(2, 0, 3, 0xf3)).unwrap_err();
        assert!(riscv.contains("riscv"), "{riscv}");
        let x86 = identify(&elf(1, 0, 2, 0x03)).unwrap_err();
        assert!(x86.contains("32-bit"), "{x86}");
        let object = identify(&elf(2, 0, 1, 0x3e)).unwrap_err();
        assert!(object.contains("object file"), "{object}");
        let freebsd = identify(&elf(2, 9, 2, 0x3e)).unwrap_err();
        assert!(freebsd.contains("not Linux"), "{freebsd}");
        let mut big = elf(2, 0, 2, 0x3e);
        big[5] = 2;
        assert!(identify(&big).unwrap_err().contains("big-endian"));
        assert!(identify(b"\x7fELF\x02").unwrap_err().contains("truncated"));
    }

    #[test]
    fn other_formats_are_named() {
        assert!(
            identify(&[0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1])
                .unwrap_err()
                .contains("Mach-O")
        );
        assert!(
            identify(&[0xca, 0xfe, 0xba, 0xbe])
                .unwrap_err()
                .contains("Mach-O")
        );
        assert!(identify(b"MZ\x90\x00").unwrap_err().contains("PE"));
        assert!(identify(b"#!/bin/sh\n").unwrap_err().contains("script"));
        assert!(identify(b"").unwrap_err().contains("empty"));
        assert!(identify(b"hello").unwrap_err().contains("not an ELF"));
    }

    #[test]
    fn arch_names_round_trip() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            assert_eq!(Arch::from_name(arch.go_name()), Some(arch));
            assert_eq!(Arch::from_name(&arch.to_string()), Some(arch));
        }
        assert_eq!(Arch::from_name("s390x"), None);
    }

    #[tokio::test]
    async fn this_test_binary_is_shippable_and_hashed_once() {
        let exe = std::env::current_exe().unwrap();
        let a = Executable::inspect(&exe).unwrap();
        let b = Executable::inspect(&exe).unwrap();
        assert!(Arc::ptr_eq(&a.digest, &b.digest), "hashed twice");
        let digest = a.digest().await.unwrap();
        assert_eq!(digest, hash_file(&exe).unwrap());
        assert_eq!(digest.len, std::fs::metadata(&exe).unwrap().len());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(a.arch(), Arch::X86_64);
    }

    #[test]
    fn hash_file_is_the_sha256_and_length_of_the_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            hash_file(&path).unwrap(),
            Digest {
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
                len: 3
            }
        );
        assert!(hash_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn unshippable_files_say_why_and_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let err = Executable::inspect(&script).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("script"), "{text}");
        assert!(text.contains("--target x86_64-unknown-linux-gnu"), "{text}");
        assert!(text.contains("HYPE_SHIP_EXECUTABLE=0"), "{text}");
        let err = Executable::inspect(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = Executable::inspect(dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
    }
}
