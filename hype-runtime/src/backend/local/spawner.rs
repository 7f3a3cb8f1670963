//! Starting a local child: on `hype-spawner`, the one thread that forks
//! every child and lives as long as the process (the parent-death signal
//! comes when the forking thread ends; see the module docs of
//! [`super`]), and killing its process group on timeout and cancellation.

use std::time::Duration;

/// How long a call waits for `hype-spawner` to start its child.
const SPAWN_BOUND: Duration = Duration::from_secs(30);

/// A child for `hype-spawner` to start on the runtime of the call that
/// asked, and where to send it.
type SpawnRequest = (
    tokio::process::Command,
    tokio::runtime::Handle,
    tokio::sync::oneshot::Sender<std::io::Result<tokio::process::Child>>,
);

/// Starts `command` on `hype-spawner`, the thread that lives as long as
/// the process (see the module docs), registered with the calling task's
/// runtime. Elsewhere than Linux, where no parent-death signal ties the
/// child to a thread, on the calling thread.
pub(super) async fn spawn(
    mut command: tokio::process::Command,
) -> std::io::Result<tokio::process::Child> {
    if !cfg!(target_os = "linux") {
        return command.spawn();
    }
    static SPAWNER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<SpawnRequest>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("hype-spawner".to_owned())
            .spawn(move || {
                // Never ends: the sender lives in a static.
                while let Ok((mut command, runtime, reply)) = rx.recv() {
                    let _entered = runtime.enter();
                    let spawned = command.spawn();
                    if let Err(Ok(child)) = reply.send(spawned) {
                        // The call went away while its child started: kill
                        // its group before the child can start anything.
                        if let Some(pid) = child.id() {
                            kill_group(pid as i32);
                        }
                    }
                }
            })
            .ok()
            .map(|_| tx)
    });
    let Some(spawner) = spawner else {
        return Err(std::io::Error::other(
            "cannot start the hype-spawner thread that starts local children",
        ));
    };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        std::io::Error::other("a local call must run inside a tokio runtime (with IO enabled)")
    })?;
    let (reply, started) = tokio::sync::oneshot::channel();
    spawner
        .send((command, runtime, reply))
        .map_err(|_| std::io::Error::other("the hype-spawner thread has ended"))?;
    match tokio::time::timeout(SPAWN_BOUND, started).await {
        Ok(Ok(spawned)) => spawned,
        Ok(Err(_)) => Err(std::io::Error::other(
            "the hype-spawner thread dropped the request",
        )),
        Err(_) => Err(std::io::Error::other(format!(
            "the hype-spawner thread did not start the child within {SPAWN_BOUND:?}"
        ))),
    }
}

/// Sends SIGKILL to the process group `pgid`.
fn kill_group(pgid: i32) {
    // The group the runner created for a child (process_group(0)) that
    // has not been reaped yet, so the group ID is still that child's.
    if let Some(pgid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
}

/// Kills a child's process group unless disarmed: on timeout, and when the
/// call's future is dropped mid-run.
pub(super) struct GroupGuard(pub(super) Option<i32>);

impl GroupGuard {
    pub(super) fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
