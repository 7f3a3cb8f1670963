//! A TCP proxy on `127.0.0.1` in front of a test server that can make the
//! server unreachable: while it is down, every open connection is cut and
//! every new one is closed as soon as it is accepted, as when the network
//! to an API server fails. Up again, it forwards bytes both ways.
//!
//! Tests point their client at [`FaultProxy::url`] instead of the
//! server's URL; [`FaultProxy::down_for`] takes the server away for a
//! while, [`FaultProxy::down_at_next`] at the moment a given request is
//! sent (that request is lost with its connection).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy; dropping it stops it and cuts every connection.
#[derive(Debug)]
pub struct FaultProxy {
    url: String,
    down: watch::Sender<bool>,
    refused: Arc<AtomicUsize>,
    trigger: Trigger,
    task: JoinHandle<()>,
}

/// A request start (`"DELETE /api/v1/…"`) that takes the proxy down, and
/// for how long.
type Trigger = Arc<Mutex<Option<(String, Duration)>>>;

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.down.send_replace(true);
        self.task.abort();
    }
}

impl FaultProxy {
    /// Proxies to `target` (`http://127.0.0.1:PORT`), on the current tokio
    /// runtime. Panics outside a runtime or if it cannot bind: test code.
    pub async fn start(target: &str) -> FaultProxy {
        let target: SocketAddr = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the target is http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy to 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let (down, _) = watch::channel(false);
        let refused = Arc::new(AtomicUsize::new(0));
        let trigger = Trigger::default();
        let task = tokio::spawn(serve(
            listener,
            target,
            down.clone(),
            refused.clone(),
            trigger.clone(),
        ));
        FaultProxy {
            url,
            down,
            refused,
            trigger,
            task,
        }
    }

    /// The proxy's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Cuts every connection and refuses new ones until [`up`](Self::up).
    pub fn down(&self) {
        self.down.send_replace(true);
    }

    /// Forwards again.
    pub fn up(&self) {
        self.down.send_replace(false);
    }

    /// Down now, up again after `duration` (in the background).
    pub fn down_for(&self, duration: Duration) {
        down_for(&self.down, duration);
    }

    /// Down for `duration` from the moment a client sends a request
    /// starting with `request_start` (say `"DELETE /api/v1/namespaces/default/pods/"`),
    /// which is not forwarded. Once.
    pub fn down_at_next(&self, request_start: &str, duration: Duration) {
        *self.trigger.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((request_start.to_owned(), duration));
    }

    /// Whether a [`down_at_next`](Self::down_at_next) trigger is still armed.
    pub fn armed(&self) -> bool {
        self.trigger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// How many connections were refused while down.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

fn down_for(down: &watch::Sender<bool>, duration: Duration) {
    down.send_replace(true);
    let down = down.clone();
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        down.send_replace(false);
    });
}

async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    down: watch::Sender<bool>,
    refused: Arc<AtomicUsize>,
    trigger: Trigger,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *down.borrow() {
            refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        let mut cut = down.subscribe();
        let (down, trigger) = (down.clone(), trigger.clone());
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = forward(client, server, &down, &trigger) => {}
                _ = cut.wait_for(|down| *down) => {}
            }
        });
    }
}

/// Copies both ways; a chunk from the client that starts with the
/// trigger's request takes the proxy down instead of being forwarded.
async fn forward(
    client: TcpStream,
    server: TcpStream,
    down: &watch::Sender<bool>,
    trigger: &Trigger,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let fired = {
                let mut armed = trigger.lock().unwrap_or_else(|p| p.into_inner());
                match armed.as_ref() {
                    Some((start, duration)) if buf[..n].starts_with(start.as_bytes()) => {
                        let duration = *duration;
                        *armed = None;
                        Some(duration)
                    }
                    _ => None,
                }
            };
            if let Some(duration) = fired {
                down_for(down, duration);
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}
