//! `pods/attach` and `pods/exec`, served as a real API server serves them
//! to WebSocket clients (kube's `ws` feature, `kubectl` since 1.29):
//!
//! - a `GET` with a WebSocket upgrade, subprotocol `v5.channel.k8s.io` or
//!   `v4.channel.k8s.io` (the first the client offers that the double
//!   speaks, echoed in `Sec-WebSocket-Protocol`);
//! - binary messages whose first byte is the channel: 0 stdin, 1 stdout,
//!   2 stderr, 3 the final `Status` (JSON: `Success`, or `Failure` with
//!   reason `NonZeroExitCode` and the exit code in `details.causes`), 4
//!   resize (ignored: no TTYs), 255 close (v5: `[255, 0]` closes stdin);
//! - query parameters `stdin`, `stdout`, `stderr`, `tty`, `container`, and
//!   `command` (exec, repeated).
//!
//! **Attach** connects to the container's main process. Only containers
//! with `stdin: true` can be attached to: the kubelet gives those a stdin
//! pipe and copies their stdout and stderr both to the container log and
//! to every attached client (from the moment it attached, as a kubelet
//! does). With `stdinOnce: true` the container's stdin is closed when the
//! first attached client closes its stdin or goes away; with `stdinOnce:
//! false` it stays open for the next attach. When the main process ends,
//! every attached client gets its exit status on channel 3 (a real
//! kubelet ends the stream without one).
//!
//! **Exec** starts a new process in the container: the image's executable
//! with the `command` (whose first word must name `hype-run`, the only
//! program in the double's images), the container's environment, working
//! directory and user, in the container's process group (so it dies with
//! the container). The stream ends with its exit status. A client that
//! goes away kills it.
//!
//! Attach works with the process and the Docker executors (with Docker,
//! through the engine's attach of the container, made before it starts);
//! exec needs the process executor. Otherwise they are refused (400). `POST` (the old SPDY streams) is refused too.
//! A [`Faults::forbid_streams`](super::Faults::forbid_streams) fault
//! answers 403 as RBAC does;
//! [`Faults::break_next_attach_after`](super::Faults::break_next_attach_after)
//! cuts an attach stream.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Shared;
use super::api::ApiError;
use super::store::Kind;

/// The subprotocols served, newest first.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

/// How long a container's output copiers may run on after its main process
/// ended (something it started outside its process group may hold the
/// pipes).
const COPIER_GRACE: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What an attached client receives from a container's main process.
#[derive(Debug)]
pub(crate) enum Output {
    /// Bytes of stdout ([`STDOUT`]) or stderr ([`STDERR`]).
    Data(u8, Vec<u8>),
    /// The process ended with this exit code; nothing follows.
    Exit(i32),
}

#[derive(Default)]
struct Subscribers {
    senders: Vec<mpsc::UnboundedSender<Output>>,
    ended: Option<i32>,
}

/// How to start another process in a container (exec).
#[derive(Debug, Clone)]
pub(crate) struct ExecContext {
    pub(crate) program: PathBuf,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) cwd: PathBuf,
    pub(crate) user: Option<u32>,
}

/// Where an attached client's stdin bytes go: the main process's stdin
/// pipe, or the Docker engine's attach of the container.
type StdinSink = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// A running container's streams, for attach (process and Docker
/// executors) and exec (process executor).
pub(crate) struct ContainerIo {
    /// The container has `stdin: true`: its stdio are pipes.
    attachable: bool,
    stdin_once: bool,
    stdin: tokio::sync::Mutex<Option<StdinSink>>,
    subscribers: Mutex<Subscribers>,
    /// How to exec in it: `None` for a Docker container (exec is refused).
    exec: Option<ExecContext>,
    /// The main process's group, once it started.
    group: Mutex<Option<i32>>,
}

impl ContainerIo {
    pub(crate) fn new(
        attachable: bool,
        stdin_once: bool,
        exec: Option<ExecContext>,
    ) -> ContainerIo {
        ContainerIo {
            attachable,
            stdin_once,
            stdin: tokio::sync::Mutex::new(None),
            subscribers: Mutex::new(Subscribers::default()),
            exec,
            group: Mutex::new(None),
        }
    }

    /// The main process started: its group, and its stdin pipe (from a
    /// task of the runtime).
    pub(crate) fn started(&self, group: i32, stdin: Option<std::process::ChildStdin>) {
        *lock(&self.group) = Some(group);
        if let Some(stdin) = stdin.and_then(|s| tokio::process::ChildStdin::from_std(s).ok()) {
            self.set_stdin(Box::pin(stdin));
        }
    }

    /// A Docker container's stdin: the engine's attach, made before the
    /// container started.
    pub(crate) fn set_stdin(&self, stdin: StdinSink) {
        // Nobody else holds the lock before the container is Running.
        if let Ok(mut slot) = self.stdin.try_lock() {
            *slot = Some(stdin);
        }
    }

    /// Output of the main process, from a copier (a pipe's, or the Docker
    /// engine's attach): to every attached client.
    pub(crate) fn output(&self, channel: u8, bytes: &[u8]) {
        self.publish(channel, bytes);
    }

    /// Output from now on; `None` once the process ended.
    fn subscribe(&self) -> Option<mpsc::UnboundedReceiver<Output>> {
        let mut subscribers = lock(&self.subscribers);
        if subscribers.ended.is_some() {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        subscribers.senders.push(tx);
        Some(rx)
    }

    fn publish(&self, channel: u8, bytes: &[u8]) {
        lock(&self.subscribers)
            .senders
            .retain(|tx| tx.send(Output::Data(channel, bytes.to_vec())).is_ok());
    }

    /// The main process ended (after its output was copied).
    pub(crate) fn ended(&self, code: i32) {
        let mut subscribers = lock(&self.subscribers);
        subscribers.ended = Some(code);
        for tx in subscribers.senders.drain(..) {
            let _ = tx.send(Output::Exit(code));
        }
    }

    async fn close_stdin(&self) {
        if let Some(mut stdin) = self.stdin.lock().await.take() {
            let _ = stdin.shutdown().await;
        }
    }
}

/// Copies one of a container's output pipes to its log and to every
/// attached client, until the pipe's end; returns a receiver told when
/// done.
pub(crate) fn copy_output(
    io: Arc<ContainerIo>,
    channel: u8,
    mut pipe: impl Read + Send + 'static,
    mut log: std::fs::File,
) -> std::io::Result<std::sync::mpsc::Receiver<()>> {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("kube-double-output".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match pipe.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        let _ = log.write_all(&buffer[..n]);
                        io.publish(channel, &buffer[..n]);
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = done_tx.send(());
        })?;
    Ok(done_rx)
}

/// Waits (bounded) for output copiers to finish.
pub(crate) fn join_copiers(copiers: Vec<std::sync::mpsc::Receiver<()>>) {
    let deadline = std::time::Instant::now() + COPIER_GRACE;
    for done in copiers {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let _ = done.recv_timeout(left);
    }
}

/// The registry of running containers' streams: (pod uid, container) →
/// its [`ContainerIo`].
pub(crate) type Registry = Arc<Mutex<HashMap<(String, String), Arc<ContainerIo>>>>;

/// Removes `io` from the registry if it is still the entry of `key`.
pub(crate) fn unregister(registry: &Registry, key: &(String, String), io: &Arc<ContainerIo>) {
    let mut map = lock(registry);
    if map.get(key).is_some_and(|current| Arc::ptr_eq(current, io)) {
        map.remove(key);
    }
}

/// The query of an attach or exec request.
#[derive(Debug, Default)]
struct StreamQuery {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    container: Option<String>,
    command: Vec<String>,
}

impl StreamQuery {
    fn parse(raw: Option<&str>) -> StreamQuery {
        let mut query = StreamQuery::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            let yes = value == "true" || value == "1";
            match key {
                "stdin" => query.stdin = yes,
                "stdout" => query.stdout = yes,
                "stderr" => query.stderr = yes,
                "tty" => query.tty = yes,
                "container" => query.container = Some(value),
                "command" => query.command.push(value),
                _ => {}
            }
        }
        query
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Attach or exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Attach,
    Exec,
}

impl Verb {
    fn resource(self) -> &'static str {
        match self {
            Verb::Attach => "pods/attach",
            Verb::Exec => "pods/exec",
        }
    }
}

pub(crate) async fn attach(
    state: State<Arc<Shared>>,
    path: Path<(String, String)>,
    query: RawQuery,
    request: Request,
) -> Response {
    serve(Verb::Attach, state, path, query, request).await
}

pub(crate) async fn exec(
    state: State<Arc<Shared>>,
    path: Path<(String, String)>,
    query: RawQuery,
    request: Request,
) -> Response {
    serve(Verb::Exec, state, path, query, request).await
}

/// `POST` is how SPDY clients open these streams: not served.
pub(crate) async fn spdy() -> ApiError {
    ApiError::bad_request(
        "the Kubernetes test double serves pods/attach and pods/exec over WebSocket only (GET with Upgrade: websocket), not SPDY",
    )
}

fn forbidden(verb: Verb, namespace: &str, name: &str) -> ApiError {
    ApiError::with_details(
        403,
        "Forbidden",
        format!(
            "pods \"{name}\" is forbidden: User \"system:serviceaccount:default:hype-test\" cannot create resource \"{}\" in API group \"\" in the namespace \"{namespace}\"",
            verb.resource()
        ),
        json!({"name": name, "kind": "pods"}),
    )
}

async fn serve(
    verb: Verb,
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Response {
    let query = StreamQuery::parse(raw.as_deref());
    if shared.faults.take_stream_refusal() {
        return forbidden(verb, &namespace, &name).into_response();
    }
    let (mut parts, _body) = request.into_parts();
    // The client's order counts (axum's list of them is sorted).
    let offered: Vec<String> = parts
        .headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::bad_request(format!(
                "Upgrade request required: {} needs a WebSocket upgrade ({})",
                verb.resource(),
                rejection.body_text()
            ))
            .into_response();
        }
    };
    let Some(protocol) = offered
        .iter()
        .find_map(|p| PROTOCOLS.iter().find(|&&ours| ours == p))
        .copied()
    else {
        return ApiError::bad_request(format!(
            "none of the requested WebSocket subprotocols ({offered:?}) is served: the Kubernetes test double speaks {}",
            PROTOCOLS.join(", ")
        ))
        .into_response();
    };
    let io = match prepare(&shared, verb, &namespace, &name, &query) {
        Ok(io) => io,
        Err(err) => return err.into_response(),
    };
    let v5 = protocol == PROTOCOLS[0];
    let break_after = match verb {
        Verb::Attach => shared.faults.take_stream_break(),
        Verb::Exec => None,
    };
    upgrade
        .protocols([protocol])
        .on_upgrade(move |socket| async move {
            match verb {
                Verb::Attach => attach_session(socket, io, query, v5, break_after).await,
                Verb::Exec => exec_session(socket, io, query, v5).await,
            }
        })
}

/// The container's streams, or why it cannot be attached to / exec'd in.
fn prepare(
    shared: &Shared,
    verb: Verb,
    namespace: &str,
    name: &str,
    query: &StreamQuery,
) -> Result<Arc<ContainerIo>, ApiError> {
    let pod: Pod = shared
        .store
        .get(namespace, name)
        .ok_or_else(|| ApiError::not_found(Kind::Pod, name))?;
    let names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    let container = match &query.container {
        Some(c) if names.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return Err(ApiError::bad_request(format!(
            "cannot {} a container in a completed pod; current phase is {phase}",
            match verb {
                Verb::Attach => "attach to",
                Verb::Exec => "exec into",
            }
        )));
    }
    if verb == Verb::Exec && query.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    if !(query.stdin || query.stdout || query.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if query.tty {
        return Err(ApiError::bad_request(
            "tty=true: the Kubernetes test double has no terminals",
        ));
    }
    if !shared.kubelet.serves_streams(verb == Verb::Exec) {
        return Err(ApiError::bad_request(format!(
            "{}: the Kubernetes test double serves it only with the process executor",
            verb.resource()
        )));
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let io = shared
        .kubelet
        .container_io(&uid, &container)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "container {container} in pod {name} is not running"
            ))
        })?;
    if verb == Verb::Attach && !io.attachable {
        return Err(ApiError::bad_request(format!(
            "container {container} in pod {name} was not created with stdin: true: the Kubernetes test double attaches only to such containers"
        )));
    }
    Ok(io)
}

/// The final status: success, or the exit code as the kubelet reports it.
fn status_message(code: i32, command: &[String]) -> Vec<u8> {
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })
    };
    let mut message = vec![STATUS];
    message.extend(status.to_string().into_bytes());
    message
}

fn failure_message(message: &str) -> Vec<u8> {
    let mut bytes = vec![STATUS];
    bytes.extend(
        json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
        })
        .to_string()
        .into_bytes(),
    );
    bytes
}

fn with_channel(channel: u8, bytes: &[u8]) -> Message {
    let mut message = Vec::with_capacity(bytes.len() + 1);
    message.push(channel);
    message.extend_from_slice(bytes);
    Message::Binary(message.into())
}

/// What the client sent.
enum FromClient {
    Stdin(Vec<u8>),
    CloseStdin,
    Gone,
    Other,
}

fn from_client(message: Option<Result<Message, axum::Error>>, v5: bool) -> FromClient {
    match message {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => FromClient::Gone,
        Some(Ok(Message::Binary(bytes))) => match bytes.first() {
            Some(&STDIN) => FromClient::Stdin(bytes[1..].to_vec()),
            Some(&CLOSE) if v5 && bytes.get(1) == Some(&STDIN) => FromClient::CloseStdin,
            _ => FromClient::Other,
        },
        Some(Ok(_)) => FromClient::Other,
    }
}

/// The channels opened, as the API server announces them: one message of
/// just the channel byte each.
async fn announce(
    send: &mut (impl futures::Sink<Message> + Unpin),
    query: &StreamQuery,
) -> Result<(), ()> {
    for (open, channel) in [
        (query.stdout, STDOUT),
        (query.stderr, STDERR),
        (true, STATUS),
    ] {
        if open {
            send.send(with_channel(channel, &[]))
                .await
                .map_err(|_| ())?;
        }
    }
    Ok(())
}

/// An attach stream; with `break_after`, dropped (no status, no close)
/// once that many output messages were sent.
async fn attach_session(
    socket: WebSocket,
    io: Arc<ContainerIo>,
    query: StreamQuery,
    v5: bool,
    break_after: Option<usize>,
) {
    let (mut send, mut receive) = socket.split();
    let Some(mut output) = io.subscribe() else {
        let _ = send
            .send(Message::Binary(
                failure_message("the container has ended").into(),
            ))
            .await;
        return;
    };
    if announce(&mut send, &query).await.is_err() {
        return;
    }
    let mut stdin_open = query.stdin;
    let mut sent = 0usize;
    loop {
        if break_after.is_some_and(|n| sent >= n) {
            // Cut: the connection ends without a status, as when a proxy
            // or the API server drops it.
            let _ = send.close().await;
            break;
        }
        tokio::select! {
            message = receive.next() => match from_client(message, v5) {
                FromClient::Stdin(bytes) if stdin_open => {
                    let mut stdin = io.stdin.lock().await;
                    if let Some(pipe) = stdin.as_mut()
                        && (pipe.write_all(&bytes).await.is_err() || pipe.flush().await.is_err())
                    {
                        *stdin = None;
                    }
                }
                FromClient::CloseStdin => {
                    stdin_open = false;
                    if io.stdin_once {
                        io.close_stdin().await;
                    }
                }
                FromClient::Gone => break,
                _ => {}
            },
            out = output.recv() => match out {
                Some(Output::Data(channel, bytes)) => {
                    let wanted = (channel == STDOUT && query.stdout) || (channel == STDERR && query.stderr);
                    if wanted && send.send(with_channel(channel, &bytes)).await.is_err() {
                        break;
                    }
                    sent += usize::from(wanted);
                }
                Some(Output::Exit(code)) => {
                    let _ = send.send(Message::Binary(status_message(code, &[]).into())).await;
                    let _ = send.close().await;
                    return;
                }
                None => break,
            },
        }
    }
    // The client went away.
    if query.stdin && io.stdin_once {
        io.close_stdin().await;
    }
}

async fn exec_session(socket: WebSocket, io: Arc<ContainerIo>, query: StreamQuery, v5: bool) {
    let (mut send, mut receive) = socket.split();
    let group = *lock(&io.group);
    let Some(exec) = &io.exec else {
        let _ = send
            .send(Message::Binary(
                failure_message("exec needs the process executor").into(),
            ))
            .await;
        return;
    };
    let mut child = match spawn_exec(exec, group, &query) {
        Ok(child) => child,
        Err(err) => {
            let message =
                format!("Internal error occurred: error executing command in container: {err}");
            let _ = send
                .send(Message::Binary(failure_message(&message).into()))
                .await;
            let _ = send.close().await;
            return;
        }
    };
    if announce(&mut send, &query).await.is_err() {
        return;
    }
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out_buffer = vec![0u8; 64 * 1024];
    let mut err_buffer = vec![0u8; 64 * 1024];
    let mut exit: Option<i32> = None;
    loop {
        if exit.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            message = receive.next(), if exit.is_none() => match from_client(message, v5) {
                FromClient::Stdin(bytes) => {
                    if let Some(pipe) = stdin.as_mut()
                        && pipe.write_all(&bytes).await.is_err()
                    {
                        stdin = None;
                    }
                }
                FromClient::CloseStdin => stdin = None,
                // The client went away: so does its process.
                FromClient::Gone => return,
                FromClient::Other => {}
            },
            read = read_some(&mut stdout, &mut out_buffer) => match read {
                Some(n) => {
                    if send.send(with_channel(STDOUT, &out_buffer[..n])).await.is_err() {
                        return;
                    }
                }
                None => stdout = None,
            },
            read = read_some(&mut stderr, &mut err_buffer) => match read {
                Some(n) => {
                    if send.send(with_channel(STDERR, &err_buffer[..n])).await.is_err() {
                        return;
                    }
                }
                None => stderr = None,
            },
            status = child.wait(), if exit.is_none() => {
                use std::os::unix::process::ExitStatusExt;
                exit = Some(match status {
                    Ok(status) => status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                    Err(_) => 255,
                });
                stdin = None;
            },
            // Output held open by something the command left behind.
            _ = tokio::time::sleep(COPIER_GRACE), if exit.is_some() => break,
        }
    }
    let code = exit.unwrap_or(255);
    let _ = send
        .send(Message::Binary(status_message(code, &query.command).into()))
        .await;
    let _ = send.close().await;
}

/// Reads from `pipe` if it is open: `None` at its end (or on an error).
async fn read_some(
    pipe: &mut Option<impl tokio::io::AsyncRead + Unpin>,
    buffer: &mut [u8],
) -> Option<usize> {
    match pipe.as_mut() {
        None => std::future::pending().await,
        Some(pipe) => match pipe.read(buffer).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
    }
}

/// Starts an exec'd process in the container: the image's executable with
/// the command, which must name `hype-run` first.
fn spawn_exec(
    exec: &ExecContext,
    group: Option<i32>,
    query: &StreamQuery,
) -> std::io::Result<tokio::process::Child> {
    use std::process::Stdio;
    let first = query.command.first().cloned().unwrap_or_default();
    if std::path::Path::new(&first)
        .file_name()
        .is_none_or(|n| n != "hype-run")
    {
        return Err(std::io::Error::other(format!(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: {first:?}: executable file not found in $PATH: unknown (the test double's images only contain hype-run)"
        )));
    }
    let group = group.ok_or_else(|| std::io::Error::other("the container has not started"))?;
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let mut command = tokio::process::Command::new(&exec.program);
    command
        .args(&query.command)
        .env_clear()
        .envs(&exec.env)
        .current_dir(&exec.cwd)
        .stdin(piped(query.stdin))
        .stdout(piped(query.stdout))
        .stderr(piped(query.stderr))
        // In the container's group: killed with the container.
        .process_group(group)
        .kill_on_drop(true);
    if let Some(uid) = exec.user {
        command.uid(uid).gid(uid);
    }
    // SAFETY: child_setup with no binds makes only prctl, which is
    // async-signal-safe.
    unsafe { command.pre_exec(|| super::kubelet::child_setup(&[])) };
    command.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_as_kube_writes_them() {
        let q = StreamQuery::parse(Some(
            "&stdin=true&stdout=true&stderr=false&container=c%2D1&command=hype-run&command=say&command=a+b%20c",
        ));
        assert!(q.stdin && q.stdout && !q.stderr && !q.tty);
        assert_eq!(q.container.as_deref(), Some("c-1"));
        assert_eq!(q.command, ["hype-run", "say", "a b c"]);
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn statuses_are_the_kubelets() {
        let ok = status_message(0, &[]);
        assert_eq!(ok[0], STATUS);
        let ok: serde_json::Value = serde_json::from_slice(&ok[1..]).unwrap();
        assert_eq!(ok["status"], "Success");
        let failed = status_message(3, &["hype-run".into()]);
        let failed: serde_json::Value = serde_json::from_slice(&failed[1..]).unwrap();
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
    }
}
