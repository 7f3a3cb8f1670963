//! The Kubernetes test double, started by hand, for programs that take a
//! kubeconfig (the e2e target, `hype`, your own): `hype-test-kube-double
//! DIR IMAGE EXECUTABLE` serves the double on 127.0.0.1 with pods as
//! processes, image `IMAGE` running `EXECUTABLE` (the launcher `hype-run`, or
//! `hype-launcher`, to exercise shipping), writes `DIR/kubeconfig`, prints
//! the `HYPE_E2E_*` variables that point the e2e target at it, and serves
//! until `DIR/stop` exists (or 3 hours pass), then shuts down (its pods'
//! processes with it).
//!
//! The double is not a Kubernetes: what passes against it is not a
//! result on a real cluster.

use std::path::PathBuf;
use std::time::Duration;

use hype_tests::kube_double::{KubeTestServer, KubeletOptions};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, image, executable] = args.as_slice() else {
        eprintln!("usage: hype-test-kube-double DIR IMAGE EXECUTABLE");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create DIR");
    let server = KubeTestServer::start(KubeletOptions::new().image(image, executable));
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(server.url())).expect("write the kubeconfig");
    println!("export HYPE_E2E_KUBECONFIG={}", kubeconfig.display());
    println!("export HYPE_E2E_IMAGE={image}");
    println!(
        "export HYPE_E2E_STAGING=file://{}",
        server.staging_dir().display()
    );
    println!(
        "# the double serves {} until {} exists",
        server.url(),
        dir.join("stop").display()
    );
    let stop = dir.join("stop");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3 * 3600);
    while !stop.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.shutdown().await;
    println!("# stopped");
}
