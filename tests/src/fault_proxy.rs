//! A TCP proxy on `127.0.0.1` in front of a test server that can make the
//! server unreachable: while it is down, every open connection is cut and
//! every new one is closed as soon as it is accepted, as when the network
//! to an API server fails. Up again, it forwards bytes both ways.
//!
//! Tests point their client at [`FaultProxy::url`] instead of the
//! server's URL; [`FaultProxy::down_for`] takes the server away for a
//! while.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    task: JoinHandle<()>,
}

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
        let task = tokio::spawn(serve(listener, target, down.clone(), refused.clone()));
        FaultProxy {
            url,
            down,
            refused,
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
        self.down();
        let down = self.down.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            down.send_replace(false);
        });
    }

    /// How many connections were refused while down.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    down: watch::Sender<bool>,
    refused: Arc<AtomicUsize>,
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
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let (mut client, mut server) = (client, server);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.wait_for(|down| *down) => {}
            }
        });
    }
}
