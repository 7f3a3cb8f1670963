//! Remote functions the integration tests call, in several modules, and
//! helpers shared by the tests.
//!
//! A libtest harness cannot dispatch `hype-run` (its `main` is libtest's),
//! so the tests run calls in the `hype-test-worker` binary of this package,
//! which links these functions and is built with `#[hype::main]`.

use std::path::Path;
use std::time::Duration;

use hype::ByteBuf;
use serde::{Deserialize, Serialize};

/// The backends, from the runtime: `hype` is built without features in the
/// tests' workspace build (see `tests/Cargo.toml`), so its re-exports of
/// them are not there; these are the same types.
pub mod backends {
    pub use hype_runtime::{
        ContainerEngineCluster, DockerCluster, GcsStaging, KubeCluster, google_cloud_auth,
    };
}

pub mod docker_image;
pub mod fault_proxy;
pub mod http_faults;

pub mod gcs_server;
pub mod gke_server;

pub mod kube_double;
pub mod rbac;
pub mod spans;

/// The image name the tests and benchmarks give their pods and
/// containers (`RunEnvironment::new(IMAGE)`): the Kubernetes test double
/// maps it to the `hype-test-worker` binary (`KubeletOptions::image`, or
/// to the Docker image built from it with `KubeletOptions::docker_image`),
/// so the worker is "baked into the image" and nothing is shipped. One
/// name for every test, so a test never depends on which name it picked;
/// with the double's in-process executor the name is only a label.
pub const IMAGE: &str = "hype-test-worker:1";

/// The image name of the shipping tests and benchmarks: an image that
/// holds only the generic launcher (`hype-launcher`, no remote functions),
/// so every call must ship the executable that has them.
pub const LAUNCHER_IMAGE: &str = "hype-launcher-only:1";

/// Call from a binary's `main` so the linker keeps this crate's
/// registrations even when nothing else of it is used.
pub fn link() {}

/// Functions whose `#[hype::remote(…)]` attribute gives them defaults
/// (issue 22 §2), which calls' environments may override key by key.
pub mod defaults {
    /// Sleeps `seconds`; its `timeout = "1500ms"` stops it sooner.
    #[hype::remote(timeout = "1500ms")]
    pub fn sleep_bounded(seconds: u64) {
        std::thread::sleep(std::time::Duration::from_secs(seconds));
    }

    /// [`crate::process::killed_once`] with `retries = 2`: lost once, then
    /// run again without the environment asking for retries.
    #[hype::remote(retries = 2)]
    pub fn killed_once_retried(marker: String) -> u32 {
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .is_ok()
        {
            // SAFETY: kill(2) of this process; no memory is involved.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
        7
    }

    /// Adds two numbers in a pod with 2 cpus, 4Gi, one L4 GPU, on Spot.
    #[hype::remote(cpu = "2", memory = "4Gi", gpu = "nvidia-l4:1", spot)]
    pub fn add_on_gpu(a: i64, b: i64) -> i64 {
        a + b
    }
}

/// Arithmetic and text, sync and async.
pub mod math {
    /// Adds two numbers.
    #[hype::remote]
    pub fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    /// Counts whitespace-separated words.
    #[hype::remote]
    pub fn word_count(text: String) -> usize {
        text.split_whitespace().count()
    }

    /// Adds after yielding to the runtime, to exercise `async fn`.
    #[hype::remote]
    pub async fn add_later(a: i64, b: i64) -> i64 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let task = tokio::spawn(async move { a + b });
        task.await.expect("spawned task")
    }
}

/// Bytes in and out, for staging.
pub mod bytes {
    use hype::ByteBuf;

    /// Returns its argument reversed.
    #[hype::remote]
    pub fn reverse(data: ByteBuf) -> ByteBuf {
        let mut data = data.into_vec();
        data.reverse();
        ByteBuf::from(data)
    }

    /// Returns `len` bytes counting up from `seed`.
    #[hype::remote]
    pub fn make(len: usize, seed: u8) -> ByteBuf {
        ByteBuf::from(
            (0..len)
                .map(|i| seed.wrapping_add(i as u8))
                .collect::<Vec<u8>>(),
        )
    }
}

/// For the fan-out tests: calls that say when they ran.
pub mod fanout {
    /// When a call ran, in nanoseconds since the Unix epoch (one clock for
    /// every backend on this machine), and the process it ran in.
    #[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
    pub struct Ran {
        /// The call's index, as given.
        pub index: u64,
        /// When its body started.
        pub start_ns: u128,
        /// When its body ended.
        pub end_ns: u128,
        /// The process it ran in.
        pub pid: u32,
    }

    fn now_ns() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }

    /// Writes its process ID into `dir` (when not empty), sleeps `millis`
    /// ms and says when it ran; panics instead when `fail` is set, after
    /// the same sleep.
    #[hype::remote]
    pub fn timed(index: u64, millis: u64, fail: bool, dir: String) -> Ran {
        let start_ns = now_ns();
        let pid = std::process::id();
        if !dir.is_empty() {
            let _ = std::fs::write(std::path::Path::new(&dir).join(pid.to_string()), "");
        }
        std::thread::sleep(std::time::Duration::from_millis(millis));
        if fail {
            panic!("call {index} fails as asked");
        }
        Ran {
            index,
            start_ns,
            end_ns: now_ns(),
            pid,
        }
    }

    /// The most intervals that overlap at one instant.
    pub fn max_overlap(ran: &[Ran]) -> usize {
        let mut edges: Vec<(u128, i32)> = ran
            .iter()
            .flat_map(|r| [(r.start_ns, 1), (r.end_ns, -1)])
            .collect();
        // Ends before starts at the same instant: touching is not overlap.
        edges.sort();
        let (mut now, mut most) = (0i32, 0i32);
        for (_, step) in edges {
            now += step;
            most = most.max(now);
        }
        most as usize
    }
}

/// For the log tests: calls that write to stdout and stderr.
pub mod output {
    /// Writes `lines` numbered lines to stdout and to stderr (`{tag} out
    /// {i}`, `{tag} err {i}`), pausing `pause_ms` halfway; with `crash`,
    /// then writes `{tag} last words` and aborts, writing no outcome.
    #[hype::remote]
    pub fn chatter(tag: String, lines: u32, pause_ms: u64, crash: bool) -> u32 {
        for i in 0..lines {
            println!("{tag} out {i}");
            eprintln!("{tag} err {i}");
            if i == lines / 2 {
                std::thread::sleep(std::time::Duration::from_millis(pause_ms));
            }
        }
        if crash {
            eprintln!("{tag} last words");
            std::process::abort();
        }
        lines
    }

    /// Writes one line of `tag` and `len` bytes of `z` to stdout.
    #[hype::remote]
    pub fn long_line(tag: String, len: usize) {
        println!("{tag}{}", "z".repeat(len));
    }
}

/// The remote output lines the caller emitted as `tracing` events (target
/// `hype::remote`), captured for the whole test process.
pub mod captured {
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

    static LINES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

    struct Capture;

    #[derive(Default)]
    struct Fields {
        execution_id: String,
        message: String,
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "execution_id" {
                self.execution_id = value.to_owned();
            }
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "message" => self.message = format!("{value:?}"),
                "execution_id" => self.execution_id = format!("{value:?}"),
                _ => {}
            }
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if event.metadata().target() != "hype::remote" {
                return;
            }
            let mut fields = Fields::default();
            event.record(&mut fields);
            LINES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((fields.execution_id, fields.message));
        }
    }

    /// Installs the capture (once per process).
    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(Capture);
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        });
    }

    /// The captured lines of execution `execution_id`, in order.
    pub fn lines_of(execution_id: &str) -> Vec<String> {
        LINES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(id, _)| id == execution_id)
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// The captured lines that start with `tag`, with their execution IDs,
    /// in the order they came.
    pub fn lines(tag: &str) -> Vec<(String, String)> {
        LINES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, line)| line.starts_with(tag))
            .cloned()
            .collect()
    }
}

/// What the process a call runs in looks like.
pub mod process {
    /// The value of an environment variable in the call's process.
    #[hype::remote]
    pub fn env_var(key: String) -> Option<String> {
        std::env::var(key).ok()
    }

    /// The call's process ID.
    #[hype::remote]
    pub fn pid() -> u32 {
        std::process::id()
    }

    /// Writes its PID (and the PID of a grandchild `sleep` it starts) to
    /// `dir`, then waits for the grandchild: for timeout and cancellation tests.
    #[hype::remote]
    pub fn sleep_with_grandchild(dir: String, seconds: u64) {
        let mut child = std::process::Command::new("sleep")
            .arg(seconds.to_string())
            .spawn()
            .expect("spawn sleep");
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{}", std::process::id())),
            format!("{} {}", std::process::id(), child.id()),
        )
        .expect("write pid file");
        let _ = child.wait();
    }

    /// Kills its own process with `signal` the first time (when `marker`
    /// does not exist yet, which it then creates) and returns 7 after
    /// that: an execution lost once, as to the OOM killer or a node.
    #[hype::remote]
    pub fn killed_once(marker: String, signal: i32) -> u32 {
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .is_ok()
        {
            // SAFETY: kill(2) of this process; no memory is involved.
            unsafe {
                libc::kill(libc::getpid(), signal);
            }
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
        7
    }

    /// Writes a line to stderr and exits without an outcome.
    #[hype::remote]
    pub fn exit_abruptly(code: i32) {
        eprintln!("about to exit with {code} on purpose");
        std::process::exit(code);
    }

    /// Reports `uri` as where its outcome is (as a broken or hostile
    /// `hype-run` could), after writing there a valid outcome of
    /// `math::add` returning 3 when `write` is set, and exits without
    /// writing an outcome of its own.
    #[hype::remote]
    pub fn report_outcome_at(uri: String, write: bool) {
        if write {
            let path = uri.strip_prefix("file://").expect("a file:// URI");
            let value = hype::wire::encode_value("f", "result", &3i64).expect("encode");
            let envelope = hype::wire::OutcomeEnvelope::new(
                "hype_tests::math::add",
                std::env::var("HYPE_EXECUTION_ID").unwrap_or_default(),
                hype::wire::Outcome::Returned(hype::wire::Payload::Inline(value.into())),
            );
            std::fs::write(path, hype::wire::encode_outcome(&envelope).expect("encode"))
                .expect("write the outcome");
        }
        let message = std::env::var("HYPE_TERMINATION_MESSAGE_PATH").expect("a message path");
        std::fs::write(message, &uri).expect("write the termination message");
        std::process::exit(0);
    }

    /// Registers itself in `dir` and waits until `n` calls have, so the
    /// test passes only if `n` calls run at the same time. Bounded by 20 s.
    #[hype::remote]
    pub fn rendezvous(dir: String, n: usize) -> Result<usize, String> {
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join(std::process::id().to_string()), b"").map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let seen = std::fs::read_dir(&dir).map_err(|e| e.to_string())?.count();
            if seen >= n {
                return Ok(seen);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("only {seen} of {n} calls arrived"));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Failures: typed errors and panics.
pub mod failures {
    use serde::{Deserialize, Serialize};

    /// Why a string is not a number, as a typed error.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ParseFailure {
        /// The input.
        pub input: String,
        /// The parser's reason.
        pub reason: String,
    }

    /// Parses a number, or says why not.
    #[hype::remote]
    pub fn parse(text: String) -> Result<u64, ParseFailure> {
        text.trim()
            .parse()
            .map_err(|err: std::num::ParseIntError| ParseFailure {
                input: text.clone(),
                reason: err.to_string(),
            })
    }

    /// Panics with `message`.
    #[hype::remote]
    pub fn explode(message: String) -> u8 {
        panic!("{message}");
    }

    /// Panics with a message too long for a termination message.
    #[hype::remote]
    pub fn explode_at_length(len: usize) -> u8 {
        panic!("{}", "x".repeat(len));
    }
}

/// Secrets and volumes, read through `hype::mount_path`.
pub mod files {
    /// Reads a file at a container path.
    #[hype::remote]
    pub fn read(path: String) -> Result<String, String> {
        let local = hype::mount_path(&path);
        std::fs::read_to_string(&local).map_err(|e| format!("{}: {e}", local.display()))
    }

    /// Writes a file at a container path.
    #[hype::remote]
    pub fn write(path: String, contents: String) -> Result<(), String> {
        let local = hype::mount_path(&path);
        std::fs::write(&local, contents).map_err(|e| format!("{}: {e}", local.display()))
    }
}

/// For the container runners' tests: memory, time and mounts, with
/// nothing but the standard library (the test image has no shell).
pub mod containers {
    /// Allocates and touches `mib` MiB, then returns how many pages it
    /// touched: a memory limit below that gets the call OOM-killed.
    #[hype::remote]
    pub fn allocate(mib: usize) -> u64 {
        const PAGE: usize = 4096;
        let mut blocks = Vec::with_capacity(mib);
        for _ in 0..mib {
            let mut block = vec![0u8; 1 << 20];
            for i in (0..block.len()).step_by(PAGE) {
                block[i] = 1;
            }
            blocks.push(std::hint::black_box(block));
        }
        blocks
            .iter()
            .map(|b| b.iter().step_by(PAGE).map(|&x| u64::from(x)).sum::<u64>())
            .sum()
    }

    /// Sleeps for `millis` milliseconds.
    #[hype::remote]
    pub fn sleep(millis: u64) -> u64 {
        std::thread::sleep(std::time::Duration::from_millis(millis));
        millis
    }

    /// Reads `read`, then tries to create `write`: what a read-only mount
    /// allows and refuses.
    #[hype::remote]
    pub fn read_and_try_write(
        read: String,
        write: String,
    ) -> (Result<String, String>, Result<(), String>) {
        let local = hype::mount_path(&read);
        let contents =
            std::fs::read_to_string(&local).map_err(|e| format!("{}: {e}", local.display()));
        let local = hype::mount_path(&write);
        let written = std::fs::write(&local, b"reader was here")
            .map_err(|e| format!("{}: {e}", local.display()));
        (contents, written)
    }
}

/// For warm workers' isolation tests: what one call could leave behind for
/// the next if they shared a process.
pub mod isolation {
    use std::sync::atomic::{AtomicU64, Ordering};

    static COUNTER: AtomicU64 = AtomicU64::new(0);

    /// Adds one to a process-wide counter and gives its new value: 1 in a
    /// fresh process.
    #[hype::remote]
    pub fn bump_counter() -> u64 {
        COUNTER.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Allocates and touches `mib` MiB and never frees them; gives the
    /// bytes leaked.
    #[hype::remote]
    pub fn leak(mib: usize) -> usize {
        let block = vec![1u8; mib << 20];
        let len = std::hint::black_box(&block).len();
        std::mem::forget(block);
        len
    }

    static GLOBAL: AtomicU64 = AtomicU64::new(0);

    /// Sets a global to `value` and gives what it held: 0 in a fresh
    /// process.
    #[hype::remote]
    pub fn swap_global(value: u64) -> u64 {
        GLOBAL.swap(value, Ordering::SeqCst)
    }

    /// Prints `tag` on stdout and on stderr, then gives its execution ID.
    #[hype::remote]
    pub fn say(tag: String) -> String {
        println!("{tag} says out");
        eprintln!("{tag} says err");
        std::env::var("HYPE_EXECUTION_ID").unwrap_or_default()
    }

    /// Appends `tag` to the file `path` (one line per run), sleeps
    /// `millis` ms printing a line every 20 ms, and gives `tag`: a call run
    /// twice leaves two lines.
    #[hype::remote]
    pub fn mark(path: String, tag: String, millis: u64) -> String {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(file, "{tag}");
        }
        let mut waited = 0;
        while waited < millis {
            println!("{tag} tick {waited}");
            std::thread::sleep(std::time::Duration::from_millis(20));
            waited += 20;
        }
        tag
    }
}

/// A function with an explicit ID.
#[hype::remote(name = "hype-tests/renamed")]
pub fn renamed() -> String {
    "renamed".to_owned()
}

/// A struct argument and result, to check user types cross the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
}

/// Mirrors a point.
#[hype::remote]
pub fn mirror(p: Point) -> Point {
    Point { x: -p.x, y: -p.y }
}

/// Echoes bytes (for the payload tests).
#[hype::remote]
pub fn echo(data: ByteBuf) -> ByteBuf {
    data
}

/// Waits until `done()` or `bound` passes; says which. Async, so the
/// runtime it is awaited on goes on serving (a test double's server in the
/// same runtime, say) while it waits.
pub async fn wait_until(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a process exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}
