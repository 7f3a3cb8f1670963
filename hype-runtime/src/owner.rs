//! Who owns what hype creates: this process, named so that another process
//! (the next submitter, `hype gc`) can tell whether the owner still lives.
//!
//! An [`Owner`] is the host name, the process ID, the process's start time
//! (clock ticks since boot, from `/proc/<pid>/stat`) and the first 8
//! characters of the kernel's boot ID. PID and start time together name
//! one process even after its PID is reused; the boot ID tells a process
//! of an earlier boot (all dead) from one of this boot. Its text form,
//! `<pid>.<start>.<boot>@<host>`, goes into labels; [`Owner::tag`] (no
//! host) into the names of local temporary directories.
//!
//! [`Owner::liveness`] answers from `/proc` on Linux and from `kill(pid, 0)`
//! elsewhere (no start time there: PID reuse is not detected). An owner on
//! another host is [`Liveness::Unknown`]: only a heartbeat (a Kubernetes
//! Lease) can tell about it.

use std::fmt;
use std::sync::OnceLock;

/// One process: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    host: String,
    pid: u32,
    start: u64,
    boot: String,
}

/// Whether an [`Owner`] still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The process runs.
    Alive,
    /// The process is gone (or its PID now names another process).
    Dead,
    /// It ran on another host: this process cannot tell.
    Unknown,
}

impl Owner {
    /// This process.
    pub fn current() -> &'static Owner {
        static CURRENT: OnceLock<Owner> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let pid = std::process::id();
            Owner {
                host: host_name(),
                pid,
                start: start_time(pid).unwrap_or(0),
                boot: boot_id(),
            }
        })
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The host name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `<pid>.<start>.<boot>`: the owner on this host, for file names.
    pub fn tag(&self) -> String {
        format!("{}.{}.{}", self.pid, self.start, self.boot)
    }

    /// Reads a [`Owner::tag`] back, as an owner on this host.
    pub fn parse_tag(tag: &str) -> Option<Owner> {
        let mut parts = tag.splitn(3, '.');
        let pid = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        let boot = parts.next()?;
        if boot.is_empty() || !boot.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        Some(Owner {
            host: Owner::current().host.clone(),
            pid,
            start,
            boot: boot.to_owned(),
        })
    }

    /// Reads the text form (`<pid>.<start>.<boot>@<host>`) back.
    pub fn parse(text: &str) -> Option<Owner> {
        let (tag, host) = text.split_once('@')?;
        if host.is_empty() {
            return None;
        }
        let mut owner = Owner::parse_tag(tag)?;
        owner.host = host.to_owned();
        Some(owner)
    }

    /// Whether the owner ran on this host since its last boot: only then
    /// does [`Owner::liveness`] answer [`Liveness::Dead`] from seeing the
    /// process gone, rather than from another boot ID (an earlier boot of
    /// this host, or another machine of the same host name).
    pub fn on_this_boot(&self) -> bool {
        let me = Owner::current();
        self.host == me.host && self.boot == me.boot
    }

    /// Whether the owner still runs, as far as this process can tell.
    pub fn liveness(&self) -> Liveness {
        let me = Owner::current();
        if self.host != me.host {
            return Liveness::Unknown;
        }
        if self.boot != me.boot {
            return Liveness::Dead;
        }
        if self.pid == me.pid {
            return if self.start == me.start {
                Liveness::Alive
            } else {
                Liveness::Dead
            };
        }
        if cfg!(target_os = "linux") {
            match start_time(self.pid) {
                Some(start) if start == self.start => Liveness::Alive,
                _ => Liveness::Dead,
            }
        } else {
            let Some(pid) = i32::try_from(self.pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            else {
                return Liveness::Dead;
            };
            // Signal 0 only checks that the process exists; one of another
            // user's exists too.
            let exists = match rustix::process::test_kill_process(pid) {
                Ok(()) => true,
                Err(err) => err == rustix::io::Errno::PERM,
            };
            if exists {
                Liveness::Alive
            } else {
                Liveness::Dead
            }
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.tag(), self.host)
    }
}

/// The host name (uname's node name, which gethostname reads), `localhost`
/// if it has none.
fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        // `@` and `.` separate the parts of the text form.
        name.replace('@', "_")
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The first 8 characters of the boot ID, `0` where there is none.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| {
            id.trim()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(8)
                .collect::<String>()
        })
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "0".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_round_trips() {
        let me = Owner::current();
        assert_eq!(me.liveness(), Liveness::Alive);
        assert_eq!(Owner::parse(&me.to_string()).as_ref(), Some(me));
        assert_eq!(Owner::parse_tag(&me.tag()).as_ref(), Some(me));
    }

    #[test]
    fn an_exited_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_time(pid);
        child.wait().unwrap();
        let owner = Owner {
            pid,
            start: start.unwrap_or(1),
            ..Owner::current().clone()
        };
        assert_eq!(owner.liveness(), Liveness::Dead);
    }

    #[test]
    fn another_start_time_or_boot_is_dead_another_host_unknown() {
        let me = Owner::current();
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(reused.liveness(), Liveness::Dead);
        let earlier_boot = Owner {
            boot: "00000000".to_owned(),
            ..me.clone()
        };
        assert_eq!(earlier_boot.liveness(), Liveness::Dead);
        assert!(me.on_this_boot() && reused.on_this_boot());
        assert!(!earlier_boot.on_this_boot());
        let elsewhere = Owner {
            host: format!("{}-other", me.host),
            ..me.clone()
        };
        assert_eq!(elsewhere.liveness(), Liveness::Unknown);
        assert!(!elsewhere.on_this_boot());
    }

    #[test]
    fn bad_texts_are_refused() {
        for text in [
            "",
            "1.2.abc",
            "x.2.abc@h",
            "1.2.@h",
            "1.2.a-b@h",
            "1.2.abc@",
        ] {
            assert_eq!(Owner::parse(text), None, "{text:?}");
        }
    }
}
