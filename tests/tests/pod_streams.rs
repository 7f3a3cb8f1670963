//! `pods/attach` and `pods/exec` on the Kubernetes API test double, through
//! kube's `ws` client as a warm worker's submitter will open them: a real
//! WebSocket upgrade, the channel protocol, the container's real processes
//! (`hype-test-echo`). Every wait is bounded; each test ends with no pod
//! process left.

mod common;

use std::time::Duration;

use hype::wire::{FrameDecoder, WorkerEvent, WorkerRequest};
use hype_tests::kube_double::{KubeTestServer, KubeletOptions};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, AttachedProcess, DeleteParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const IMAGE: &str = "hype-test-echo:latest";
const WAIT: Duration = Duration::from_secs(20);

fn start() -> KubeTestServer {
    KubeTestServer::start(KubeletOptions::new().image(IMAGE, env!("CARGO_BIN_EXE_hype-test-echo")))
}

/// A pod of one container `main` running `hype-test-echo hype-run <args>`,
/// with `container` merged into the container.
fn pod(name: &str, args: &[&str], container: serde_json::Value) -> Pod {
    let mut c = json!({"name": "main", "image": IMAGE, "args": args});
    for (k, v) in container.as_object().unwrap() {
        c[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [c]},
    }))
    .unwrap()
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

async fn wait_phase(pods: &Api<Pod>, name: &str, phases: &[&str]) -> Pod {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pod = tokio::time::timeout(WAIT, pods.get(name))
            .await
            .expect("get is bounded")
            .unwrap();
        if phases.contains(&phase(&pod).as_str()) {
            return pod;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod {name} never became {phases:?}: {:#?}",
            pod.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn running(pods: &Api<Pod>, pod: Pod) -> String {
    let name = pod.metadata.name.clone().unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    wait_phase(pods, &name, &["Running"]).await;
    name
}

/// Reads from `reader` until what was read ends with `expected` (bounded).
async fn read_until(reader: &mut (impl AsyncRead + Unpin), expected: &str) -> String {
    let mut got = Vec::new();
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(&got).ends_with(expected) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let n = tokio::time::timeout(left, reader.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "never read {expected:?}; got {:?}",
                    String::from_utf8_lossy(&got)
                )
            })
            .unwrap();
        assert!(
            n > 0,
            "the stream ended before {expected:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(got).unwrap()
}

/// The stream's final status (bounded).
async fn status_of(process: &mut AttachedProcess) -> Status {
    let status = process.take_status().expect("the status is taken once");
    tokio::time::timeout(WAIT, status)
        .await
        .expect("the status comes")
        .expect("a status")
}

fn exit_code(status: &Status) -> Option<String> {
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .first()?
        .message
        .clone()
}

/// `Success` or `Failure`.
fn summary(status: &Status) -> &str {
    status.status.as_deref().unwrap_or_default()
}

fn message(status: &Status) -> &str {
    status.message.as_deref().unwrap_or_default()
}

fn api_error(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("an API error expected, got {other:?}"),
    }
}

/// Asserts no pod process is left, then shuts the server down.
async fn finish(server: KubeTestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !server.pod_processes().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.pod_processes(), Vec::<u32>::new());
    tokio::time::timeout(Duration::from_secs(15), server.shutdown())
        .await
        .expect("shutdown is bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_talks_to_the_main_process_until_it_exits() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let name = running(
        &pods,
        pod("echo", &["cat"], json!({"stdin": true, "stdinOnce": true})),
    )
    .await;

    let params = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let mut attached = tokio::time::timeout(WAIT, pods.attach(&name, &params))
        .await
        .expect("attach is bounded")
        .unwrap();
    let mut stdin = attached.stdin().unwrap();
    let mut stdout = attached.stdout().unwrap();
    let mut stderr = attached.stderr().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    assert_eq!(read_until(&mut stdout, "hello\n").await, "hello\n");
    assert_eq!(
        read_until(&mut stderr, "err: hello\n").await,
        "err: hello\n"
    );
    // A frame split across messages arrives whole.
    stdin.write_all(b"wor").await.unwrap();
    stdin.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stdin.write_all(b"ld\n").await.unwrap();
    assert_eq!(read_until(&mut stdout, "world\n").await, "world\n");

    // Closing stdin (v5's close channel) closes the container's: stdinOnce.
    // (Dropping kube's writer would not: it is half of a split stream.)
    stdin.shutdown().await.unwrap();
    let status = status_of(&mut attached).await;
    assert_eq!(summary(&status), "Success", "{status:?}");
    tokio::time::timeout(WAIT, attached.join())
        .await
        .expect("the stream ends")
        .unwrap();
    let pod = wait_phase(&pods, &name, &["Succeeded", "Failed"]).await;
    assert_eq!(phase(&pod), "Succeeded");
    // The output went to the container log too.
    let log = pods.logs(&name, &Default::default()).await.unwrap();
    assert!(
        log.contains("hello\n") && log.contains("err: world\n"),
        "{log}"
    );

    // A finished pod cannot be attached to.
    let err = api_error(pods.attach(&name, &params).await.err().unwrap());
    assert_eq!(err.code, 400);
    assert!(err.message.contains("completed pod"), "{}", err.message);

    let requests = server.request_log();
    assert!(
        requests
            .iter()
            .any(|(m, p)| m == "GET"
                && p.starts_with("/api/v1/namespaces/default/pods/echo/attach?")),
        "{requests:?}"
    );
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_attach_is_re_attached_and_the_process_goes_on() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let name = running(
        &pods,
        pod(
            "worker",
            &["cat"],
            json!({"stdin": true, "stdinOnce": false}),
        ),
    )
    .await;
    let params = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(false);

    let mut first = pods.attach(&name, &params).await.unwrap();
    let mut stdin = first.stdin().unwrap();
    let mut stdout = first.stdout().unwrap();
    stdin.write_all(b"one\n").await.unwrap();
    assert_eq!(read_until(&mut stdout, "one\n").await, "one\n");
    // The stream breaks (and even closes stdin): with stdinOnce false the
    // container's stdin stays open.
    drop(stdin);
    first.abort();
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(phase(&pods.get(&name).await.unwrap()), "Running");

    let mut second = pods.attach(&name, &params).await.unwrap();
    let mut stdin = second.stdin().unwrap();
    let mut stdout = second.stdout().unwrap();
    stdin.write_all(b"two\n").await.unwrap();
    // Output written before this attach is not replayed.
    assert_eq!(read_until(&mut stdout, "two\n").await, "two\n");
    stdin.write_all(b"exit 3\n").await.unwrap();
    let status = status_of(&mut second).await;
    assert_eq!(summary(&status), "Failure", "{status:?}");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(exit_code(&status).as_deref(), Some("3"));
    let pod = wait_phase(&pods, &name, &["Failed"]).await;
    let terminated = pod.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(terminated.exit_code, 3);
    finish(server).await;
}

/// The warm workers' framing (`hype::wire::encode_frame`, `FrameDecoder`)
/// over a real attach stream: frames written in odd pieces come back
/// through the container's stdout, cut as the WebSocket messages cut
/// them, and decode to the same messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_frames_cross_an_attach_stream_whole() {
    use hype::wire::{self, FrameDecoder, WorkerRequest};

    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let name = running(
        &pods,
        pod(
            "frames",
            &["raw"],
            json!({"stdin": true, "stdinOnce": true}),
        ),
    )
    .await;
    let params = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(false);
    let mut attached = pods.attach(&name, &params).await.unwrap();
    let mut stdin = attached.stdin().unwrap();
    let mut stdout = attached.stdout().unwrap();

    let requests: Vec<WorkerRequest> = (0..50u64)
        .map(|id| match id % 4 {
            0 => WorkerRequest::call(id, "hype-x", "c".repeat((id * 997 % 70_000) as usize)),
            1 => WorkerRequest::Cancel { id },
            2 => WorkerRequest::Ack { id },
            _ => WorkerRequest::Shutdown,
        })
        .collect();
    let mut stream = Vec::new();
    for request in &requests {
        stream.extend(wire::encode_frame(request).unwrap());
    }
    let writer = async {
        let mut rest = stream.as_slice();
        let mut size = 1;
        while !rest.is_empty() {
            let n = size.min(rest.len());
            stdin.write_all(&rest[..n]).await.unwrap();
            stdin.flush().await.unwrap();
            rest = &rest[n..];
            size = size * 7 % 40_009 + 1;
        }
        stdin.shutdown().await.unwrap();
    };
    let reader = async {
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = stdout.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            decoder.push(&buffer[..n]).unwrap();
            while let Some(request) = decoder.next_message::<WorkerRequest>().unwrap() {
                got.push(request);
            }
        }
        decoder.finish().unwrap();
        got
    };
    let ((), got) = tokio::time::timeout(WAIT, async { tokio::join!(writer, reader) })
        .await
        .expect("the frames come back");
    assert_eq!(got, requests);
    let status = status_of(&mut attached).await;
    assert_eq!(summary(&status), "Success", "{status:?}");
    wait_phase(&pods, &name, &["Succeeded"]).await;
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_a_new_process_in_the_container() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let name = running(&pods, pod("host", &["sleep"], json!({}))).await;

    // Output and success.
    let params = AttachParams::default().stdout(true).stderr(true);
    let mut process = tokio::time::timeout(
        WAIT,
        pods.exec(&name, ["hype-run", "say", "hi", "there"], &params),
    )
    .await
    .expect("exec is bounded")
    .unwrap();
    let mut stdout = process.stdout().unwrap();
    let mut stderr = process.stderr().unwrap();
    assert_eq!(read_until(&mut stdout, "hi there\n").await, "hi there\n");
    assert_eq!(read_until(&mut stderr, "said\n").await, "said\n");
    let status = status_of(&mut process).await;
    assert_eq!(summary(&status), "Success", "{status:?}");

    // A non-zero exit code, in details.causes.
    let mut process = pods
        .exec(&name, ["hype-run", "say", "bye", "--exit", "3"], &params)
        .await
        .unwrap();
    let status = status_of(&mut process).await;
    assert_eq!(summary(&status), "Failure", "{status:?}");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(exit_code(&status).as_deref(), Some("3"));

    // stdin, closed by the client.
    let params_in = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(false);
    let mut process = pods
        .exec(&name, ["hype-run", "cat"], &params_in)
        .await
        .unwrap();
    let mut stdin = process.stdin().unwrap();
    let mut stdout = process.stdout().unwrap();
    stdin.write_all(b"ping\n").await.unwrap();
    assert_eq!(read_until(&mut stdout, "ping\n").await, "ping\n");
    stdin.shutdown().await.unwrap();
    let status = status_of(&mut process).await;
    assert_eq!(summary(&status), "Success", "{status:?}");

    // A program the image does not have.
    let mut process = pods
        .exec(&name, ["sh", "-c", "true"], &params)
        .await
        .unwrap();
    let status = status_of(&mut process).await;
    assert_eq!(summary(&status), "Failure", "{status:?}");
    assert!(
        message(&status).contains("executable file not found"),
        "{status:?}"
    );

    // The container's main process was never touched.
    assert_eq!(phase(&pods.get(&name).await.unwrap()), "Running");
    // A process exec'd and left running dies with the container.
    let mut lingering = pods
        .exec(&name, ["hype-run", "sleep"], &params)
        .await
        .unwrap();
    pods.delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let status = tokio::time::timeout(WAIT, lingering.take_status().unwrap())
        .await
        .expect("the exec'd process ends with its container");
    if let Some(status) = status {
        assert_eq!(exit_code(&status).as_deref(), Some("137"), "{status:?}");
    }
    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_api_errors() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let params = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(false);

    // No such pod.
    let err = api_error(pods.attach("nope", &params).await.err().unwrap());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    let err = api_error(
        pods.exec("nope", ["hype-run"], &params)
            .await
            .err()
            .unwrap(),
    );
    assert_eq!(err.code, 404);

    let name = running(&pods, pod("plain", &["sleep"], json!({}))).await;
    // RBAC says no.
    server.faults().forbid_streams(2);
    let err = api_error(pods.attach(&name, &params).await.err().unwrap());
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert!(
        err.message
            .contains("cannot create resource \"pods/attach\""),
        "{}",
        err.message
    );
    let err = api_error(
        pods.exec(&name, ["hype-run", "say"], &params)
            .await
            .err()
            .unwrap(),
    );
    assert!(err.message.contains("\"pods/exec\""), "{}", err.message);

    // A container without stdin: true, an unknown container.
    let err = api_error(pods.attach(&name, &params).await.err().unwrap());
    assert_eq!(err.code, 400);
    assert!(err.message.contains("stdin: true"), "{}", err.message);
    let err = api_error(
        pods.attach(
            &name,
            &AttachParams::default().stdin(true).container("other"),
        )
        .await
        .err()
        .unwrap(),
    );
    assert!(
        err.message.contains("container other is not valid"),
        "{}",
        err.message
    );
    pods.delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();

    // Without a WebSocket upgrade, with no subprotocol it speaks, as SPDY.
    let path = format!("/api/v1/namespaces/default/pods/{name}/attach?stdout=true");
    let plain = raw_request(&server, "GET", &path, &[]).await;
    assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");
    assert!(plain.contains("Upgrade request required"), "{plain}");
    let upgrade = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let mut headers = upgrade.to_vec();
    headers.push(("Sec-WebSocket-Protocol", "base64.channel.k8s.io"));
    let unknown = raw_request(&server, "GET", &path, &headers).await;
    assert!(unknown.starts_with("HTTP/1.1 400"), "{unknown}");
    assert!(unknown.contains("v5.channel.k8s.io"), "{unknown}");
    let spdy = raw_request(&server, "POST", &path, &[]).await;
    assert!(spdy.starts_with("HTTP/1.1 400"), "{spdy}");
    assert!(spdy.contains("WebSocket only"), "{spdy}");

    finish(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_subprotocol_offered_that_it_speaks_is_chosen() {
    let server = start();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let name = running(
        &pods,
        pod(
            "proto",
            &["cat"],
            json!({"stdin": true, "stdinOnce": false}),
        ),
    )
    .await;
    let path = format!("/api/v1/namespaces/default/pods/{name}/attach?stdin=true&stdout=true");
    for (offered, chosen) in [
        ("v4.channel.k8s.io, v5.channel.k8s.io", "v4.channel.k8s.io"),
        (
            "channel.k8s.io, v5.channel.k8s.io, v4.channel.k8s.io",
            "v5.channel.k8s.io",
        ),
    ] {
        let head = raw_request(
            &server,
            "GET",
            &path,
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Protocol", offered),
            ],
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("sec-websocket-protocol: {chosen}")),
            "{offered}: {head}"
        );
    }
    pods.delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    finish(server).await;
}

/// Sends one HTTP/1.1 request by hand and returns the response head (and
/// whatever of the body came with it), bounded.
async fn raw_request(
    server: &KubeTestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let address = server.url().trim_start_matches("http://").to_owned();
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("Content-Length: 0\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            got.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            // A 101 has no body; others end with a JSON Status.
            if n == 0
                || (text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n"))
                || text.trim_end().ends_with('}')
            {
                return text;
            }
        }
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the request is answered")
}

/// A warm worker pod (`hype-run --worker`) spoken to over attach, as the
/// submitter does, with pods as processes and as Docker containers (the
/// engine's attach underneath): `Ready`, a call's events, a dropped stream
/// re-attached with the call's events replayed, and `Shutdown` ending the
/// pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pod_is_driven_over_attach_in_both_pod_modes() {
    for docker in [
        None,
        Some("a_worker_pod_is_driven_over_attach_in_both_pod_modes"),
    ] {
        let Some(options) = common::backend::worker_pods(docker).await else {
            continue;
        };
        worker_pod_over_attach(KubeTestServer::start(options)).await;
    }
}

/// An attached stream to a worker pod, as the submitter holds one.
struct Stream {
    attached: AttachedProcess,
    stdin: Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
    stdout: Box<dyn AsyncRead + Unpin + Send>,
    decoder: FrameDecoder,
}
impl Stream {
    async fn open(pods: &Api<Pod>, name: &str) -> Stream {
        let params = AttachParams::default()
            .stdin(true)
            .stdout(true)
            .stderr(false);
        let mut attached = tokio::time::timeout(WAIT, pods.attach(name, &params))
            .await
            .expect("attach is bounded")
            .unwrap();
        Stream {
            stdin: Box::new(attached.stdin().unwrap()),
            stdout: Box::new(attached.stdout().unwrap()),
            attached,
            decoder: FrameDecoder::new(),
        }
    }
    async fn send(&mut self, request: &WorkerRequest) {
        self.stdin
            .write_all(&hype::wire::encode_frame(request).unwrap())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }
    async fn next(&mut self) -> WorkerEvent {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            if let Some(event) = self.decoder.next_message::<WorkerEvent>().unwrap() {
                return event;
            }
            let n = tokio::time::timeout(WAIT, self.stdout.read(&mut buffer))
                .await
                .expect("the worker answers in time")
                .unwrap();
            assert!(n > 0, "the stream ended");
            self.decoder.push(&buffer[..n]).unwrap();
        }
    }
    async fn until_ended(&mut self) -> Vec<WorkerEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            let done = matches!(event, WorkerEvent::Ended { .. });
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

async fn worker_pod_over_attach(server: KubeTestServer) {
    use hype::RemoteFn;
    use hype::wire::{self, BuildInfo, CallEnvelope, Payload, Reference};
    use hype_tests::math::AddArgs;

    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hype-worker"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "hype-run",
            "image": hype_tests::IMAGE,
            "args": ["--worker", "--idle-for", "60"],
            "stdin": true,
            "stdinOnce": false,
        }]},
    }))
    .unwrap();
    let name = running(&pods, pod).await;

    let mut stream = Stream::open(&pods, &name).await;
    stream.send(&WorkerRequest::Attach).await;
    assert!(matches!(stream.next().await, WorkerEvent::Ready { .. }));
    let args = AddArgs { a: 2, b: 3 };
    let envelope = CallEnvelope::new(
        AddArgs::ID,
        AddArgs::SIGNATURE,
        Payload::Inline(wire::Bytes::from(
            wire::encode_value(AddArgs::ID, "arguments", &args).unwrap(),
        )),
    )
    .with_build(BuildInfo::current());
    let call = Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string();
    stream
        .send(&WorkerRequest::call(1, "hype-add-w1", call))
        .await;
    let events = stream.until_ended().await;
    assert!(
        matches!(&events[0], WorkerEvent::Started { id: 1, execution_id } if execution_id == "hype-add-w1"),
        "{events:?}"
    );
    let message = events
        .iter()
        .find_map(|e| match e {
            WorkerEvent::Outcome { message, .. } => Some(message.clone()),
            _ => None,
        })
        .expect("an outcome");
    let Reference::Inline(bytes) = Reference::parse(&message).unwrap() else {
        panic!("an inline outcome: {message}")
    };
    let wire::Outcome::Returned(Payload::Inline(value)) =
        wire::decode_outcome(&bytes).unwrap().outcome
    else {
        panic!("a returned value")
    };
    assert_eq!(
        wire::decode_value::<i64>(AddArgs::ID, "result", &value).unwrap(),
        5
    );

    // The stream drops; a new one gets Ready and the call's events again.
    stream.attached.abort();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut stream = Stream::open(&pods, &name).await;
    stream.send(&WorkerRequest::Attach).await;
    assert!(matches!(stream.next().await, WorkerEvent::Ready { .. }));
    assert_eq!(stream.until_ended().await, events);

    stream.send(&WorkerRequest::Ack { id: 1 }).await;
    stream.send(&WorkerRequest::Shutdown).await;
    let pod = wait_phase(&pods, &name, &["Succeeded", "Failed"]).await;
    assert_eq!(phase(&pod), "Succeeded", "{:?}", pod.status);
    finish(server).await;
}

/// `hype-run`'s argument for a call of `A`, inline, staging nowhere.
fn call_text<A: hype::RemoteFn + serde::Serialize>(args: A) -> String {
    use hype::wire::{self, BuildInfo, CallEnvelope, Payload, Reference};
    let envelope = CallEnvelope::new(
        A::ID,
        A::SIGNATURE,
        Payload::Inline(wire::Bytes::from(
            wire::encode_value(A::ID, "arguments", &args).unwrap(),
        )),
    )
    .with_build(BuildInfo::current());
    Reference::Inline(wire::encode_call(&envelope).unwrap()).to_string()
}

/// One call OOM-killed on a worker fails alone: its `Ended` says
/// `out_of_memory` (the container's cgroup counted the kill), and the
/// worker runs the next call. Docker mode: a process pod has no memory
/// limit to exceed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_killed_call_fails_alone_and_the_worker_goes_on() {
    use hype::wire::ExitStatus;
    use hype_tests::{containers::AllocateArgs, math::AddArgs};

    let test = "an_oom_killed_call_fails_alone_and_the_worker_goes_on";
    let Some(options) = common::backend::worker_pods(Some(test)).await else {
        return;
    };
    let server = KubeTestServer::start(options);
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hype-worker-oom"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "hype-run",
            "image": hype_tests::IMAGE,
            "args": ["--worker", "--idle-for", "60"],
            "stdin": true,
            "stdinOnce": false,
            "resources": {"limits": {"memory": "128Mi"}},
        }]},
    }))
    .unwrap();
    let name = running(&pods, pod).await;
    let mut stream = Stream::open(&pods, &name).await;
    stream.send(&WorkerRequest::Attach).await;
    assert!(matches!(stream.next().await, WorkerEvent::Ready { .. }));

    stream
        .send(&WorkerRequest::call(
            1,
            "hype-oom-1",
            call_text(AllocateArgs { mib: 512 }),
        ))
        .await;
    let events = stream.until_ended().await;
    match events.last() {
        Some(WorkerEvent::Ended {
            id: 1,
            status,
            out_of_memory,
        }) => {
            assert!(
                matches!(status, ExitStatus::Signal(9) | ExitStatus::Code(137)),
                "{events:?}"
            );
            assert!(out_of_memory, "the kill is told as an OOM kill: {events:?}");
        }
        other => panic!("Ended expected: {other:?} in {events:?}"),
    }

    stream
        .send(&WorkerRequest::call(
            2,
            "hype-oom-2",
            call_text(AddArgs { a: 1, b: 2 }),
        ))
        .await;
    let events = stream.until_ended().await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Outcome { id: 2, .. })),
        "the worker runs the next call: {events:?}"
    );
    assert!(
        matches!(
            events.last(),
            Some(WorkerEvent::Ended {
                status: ExitStatus::Code(0),
                out_of_memory: false,
                ..
            })
        ),
        "{events:?}"
    );
    stream.send(&WorkerRequest::Ack { id: 1 }).await;
    stream.send(&WorkerRequest::Ack { id: 2 }).await;
    stream.send(&WorkerRequest::Shutdown).await;
    let pod = wait_phase(&pods, &name, &["Succeeded", "Failed"]).await;
    // The worker exits on its own after `Shutdown` (its log says so). How
    // the pod ends is the engine's word: Docker on cgroup v1 reports a
    // container in which anything was OOM-killed as OOMKilled, code 137,
    // though its main process exited 0 (seen here).
    let log = pods
        .logs(&name, &Default::default())
        .await
        .unwrap_or_default();
    assert!(log.contains("worker exits: shut down"), "{log}");
    assert!(
        ["Succeeded", "Failed"].contains(&phase(&pod).as_str()),
        "{:?}",
        pod.status
    );
    finish(server).await;
}
