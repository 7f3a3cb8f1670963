//! A container program for the Kubernetes test double's `pods/attach` and
//! `pods/exec` tests (no hype inside), run as `hype-test-echo hype-run
//! <mode…>` like every image's executable:
//!
//! - `cat` (or nothing): copies stdin to stdout line by line, each line also
//!   to stderr as `err: <line>`; a line `exit N` exits with code N; exits 0
//!   at the end of stdin.
//! - `raw`: copies stdin to stdout byte for byte (flushing each read),
//!   exits 0 at the end of stdin.
//! - `say WORD… [--exit N]`: prints the words on stdout, `said` on stderr,
//!   and exits with N (default 0).
//! - `sleep`: sleeps until killed.

use std::io::{BufRead, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: &[String] = match args.first() {
        Some(first) if first == "hype-run" => &args[1..],
        _ => &args,
    };
    match args.first().map(String::as_str) {
        None | Some("cat") => cat(),
        Some("raw") => raw(),
        Some("say") => say(&args[1..]),
        Some("sleep") => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        Some(other) => {
            eprintln!("hype-test-echo: unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}

fn cat() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if let Some(code) = line.strip_prefix("exit ") {
            std::process::exit(code.trim().parse().unwrap_or(1));
        }
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
        eprintln!("err: {line}");
    }
}

fn raw() {
    use std::io::Read;
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut buffer = [0u8; 8192];
    loop {
        match stdin.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stdout
                    .write_all(&buffer[..n])
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn say(args: &[String]) {
    let mut words = Vec::new();
    let mut code = 0;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--exit" {
            code = rest.next().and_then(|c| c.parse().ok()).unwrap_or(1);
        } else {
            words.push(arg.as_str());
        }
    }
    println!("{}", words.join(" "));
    eprintln!("said");
    std::process::exit(code);
}
