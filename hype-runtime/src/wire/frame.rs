//! The warm-worker stream's framing and messages (`docs/protocol.md`,
//! "Warm workers"): the submitter and a worker pod's `hype-run --worker`
//! exchange **frames** over one byte stream (the pod's attached
//! stdin/stdout). A frame is a 4-byte big-endian length, then that many
//! bytes of MessagePack: one [`WorkerRequest`] (submitter → worker) or one
//! [`WorkerEvent`] (worker → submitter), structs as maps with field names
//! as keys.
//!
//! The byte stream arrives in pieces of any size (WebSocket messages split
//! and join frames as they like): a [`FrameDecoder`] takes the pieces and
//! yields whole frames. A length above the decoder's maximum is an error as
//! soon as its 4 bytes are in, before anything is allocated for it; after
//! any error the decoder stays failed, since the stream's framing is lost.
//!

use serde::{Deserialize, Serialize};

use super::Bytes;
use super::value::at_end;
use crate::error::Error;

/// The bytes of a frame's length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// The largest frame body a decoder accepts by default: 16 MiB. An inline
/// outcome larger than this is staged instead.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// The version of the worker protocol this build speaks, announced in
/// [`WorkerEvent::Ready`].
pub const WORKER_PROTOCOL_VERSION: u32 = 1;

const WHAT: &str = "worker frame";

/// The submitter's identifier of one call on one worker, unique for the
/// worker's life (a resent call keeps its ID, so a worker can tell a call
/// it already runs).
pub type CallId = u64;

/// A message from the submitter to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WorkerRequest {
    /// Run a call.
    Call {
        /// The call's ID.
        id: CallId,
        /// The execution's name (`HYPE_EXECUTION_ID` of the call's process,
        /// and the prefix of its output lines): a DNS-1123 label.
        execution_id: String,
        /// `hype-run`'s argument, as a pod's would be: `inline:<base64>` of
        /// the encoded call envelope (`encode_call`), or the URI of the
        /// staged call envelope.
        call: String,
        /// Environment variables of this call's process alone (the
        /// caller's trace context); absent: none.
        #[serde(default)]
        env: Vec<(String, String)>,
    },
    /// Kill the call's process, if it still runs.
    Cancel {
        /// The call's ID.
        id: CallId,
    },
    /// The submitter has the call's outcome and ended events: the worker
    /// may forget them.
    Ack {
        /// The call's ID.
        id: CallId,
    },
    /// Finish: take no more calls, exit when the running ones ended and
    /// were acknowledged.
    Shutdown,
    /// A new stream begins (sent first on every stream): the worker answers
    /// [`WorkerEvent::Ready`], then sends again every event of the calls
    /// not yet acknowledged, in their first order.
    Attach,
    /// The submitter is still there. A worker that hears no request for
    /// its idle time considers its stream gone.
    Ping,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OutputStream {
    /// The call's standard output.
    Stdout,
    /// The call's standard error.
    Stderr,
}

/// How a call's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it (9: SIGKILL, as an OOM kill or a cancel does).
    Signal(i32),
}

/// A message from a worker to the submitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// The worker has fetched and verified its executable and takes calls.
    /// Sent first on every stream, a re-attached one too.
    Ready {
        /// [`WORKER_PROTOCOL_VERSION`] of the worker.
        protocol: u32,
        /// SHA-256 (lowercase hex) of the executable the worker runs
        /// calls with: calls of another build must not come here.
        executable_sha256: String,
    },
    /// The call's process started.
    Started {
        /// The call's ID.
        id: CallId,
        /// Its `HYPE_EXECUTION_ID`.
        execution_id: String,
    },
    /// One line of the call's output, without its line end (bytes: output
    /// need not be UTF-8).
    Output {
        /// The call's ID.
        id: CallId,
        /// Which stream.
        stream: OutputStream,
        /// The line.
        line: Bytes,
    },
    /// The call's outcome (`encode_outcome`), inline when small, else
    /// staged, exactly as the call's `hype-run` wrote it.
    Outcome {
        /// The call's ID.
        id: CallId,
        /// The call's termination message, as a pod's would be:
        /// `inline:<base64>` of the encoded outcome envelope, or the URI of
        /// the staged outcome object.
        message: String,
    },
    /// The call's process ended: nothing more of this call follows.
    Ended {
        /// The call's ID.
        id: CallId,
        /// How it ended.
        status: ExitStatus,
        /// The kernel's OOM killer killed it (the pod's cgroup counted an
        /// `oom_kill` while it ran and it died of SIGKILL).
        #[serde(default)]
        out_of_memory: bool,
    },
    /// Something went wrong: with a call ID, that call cannot run (its
    /// `Ended` follows); without, the worker itself (a malformed request,
    /// a failed fetch of its executable).
    Error {
        /// The call, if one.
        id: Option<CallId>,
        /// What happened.
        message: String,
    },
}

impl WorkerRequest {
    /// A call of `hype-run`'s argument `call` (`inline:<base64>` or the URI
    /// of a staged call envelope), as execution `execution_id`.
    pub fn call(id: CallId, execution_id: &str, call: impl Into<String>) -> WorkerRequest {
        WorkerRequest::Call {
            id,
            execution_id: execution_id.to_owned(),
            call: call.into(),
            env: Vec::new(),
        }
    }
}

/// Encodes one message as a frame: length, then MessagePack (structs as
/// maps). An error if the body would be longer than [`MAX_FRAME_LEN`].
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, Error> {
    let mut out = crate::bytes::LargeWriter(Vec::with_capacity(64));
    out.0.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    message
        .serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
        .map_err(|err| Error::malformed(WHAT, format!("cannot encode: {err}")))?;
    let len = out.0.len() - FRAME_HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(too_long(len, MAX_FRAME_LEN));
    }
    out.0[..FRAME_HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out.0)
}

/// Decodes one frame's body (without its length prefix) as a message:
/// exactly one MessagePack value, nothing after it.
pub fn decode_frame_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(body);
    let value = T::deserialize(&mut deserializer)
        .map_err(|err| Error::malformed(WHAT, format!("invalid or truncated message: {err}")))?;
    if !at_end(&mut deserializer) {
        return Err(Error::malformed(WHAT, "unexpected bytes after the message"));
    }
    Ok(value)
}

fn too_long(len: usize, max: usize) -> Error {
    Error::malformed(
        WHAT,
        format!("a frame of {len} bytes is longer than the maximum of {max} bytes"),
    )
}

/// Splits a byte stream that arrives in pieces into frames.
///
/// [`push`](Self::push) each piece as it arrives, then take frames with
/// [`next_frame`](Self::next_frame) (or [`next_message`](Self::next_message))
/// until it gives `None`; at the stream's end, [`finish`](Self::finish)
/// says whether a frame was cut off. Memory is bounded by the maximum frame
/// length plus what was pushed and not yet taken.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Where the unread bytes of `buffer` start.
    start: usize,
    max: usize,
    failed: Option<String>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting frames up to [`MAX_FRAME_LEN`].
    pub fn new() -> FrameDecoder {
        FrameDecoder::with_max_frame_len(MAX_FRAME_LEN)
    }

    /// A decoder accepting frame bodies up to `max` bytes (at most
    /// `u32::MAX`).
    pub fn with_max_frame_len(max: usize) -> FrameDecoder {
        FrameDecoder {
            buffer: Vec::new(),
            start: 0,
            max: max.min(u32::MAX as usize),
            failed: None,
        }
    }

    /// Bytes pushed and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Adds the next piece of the stream. An error if the frame it starts
    /// or continues declares a length above the maximum (or the decoder
    /// failed before): nothing is kept then.
    pub fn push(&mut self, piece: &[u8]) -> Result<(), Error> {
        self.check()?;
        if self.start > 0 && self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(piece);
        self.pending_len().map(|_| ())
    }

    /// The next whole frame's body, `None` if none is complete yet.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        let Some(len) = self.pending_len()? else {
            return Ok(None);
        };
        let begin = self.start + FRAME_HEADER_LEN;
        if self.buffer.len() - begin < len {
            return Ok(None);
        }
        self.start = begin + len;
        Ok(Some(&self.buffer[begin..begin + len]))
    }

    /// The next whole frame, decoded as a message; `None` if none is
    /// complete yet. A frame that is not one message fails the decoder.
    pub fn next_message<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, Error> {
        let decoded = match self.next_frame()? {
            None => return Ok(None),
            Some(body) => decode_frame_body(body),
        };
        match decoded {
            Ok(message) => Ok(Some(message)),
            Err(err) => {
                self.failed = Some(err.to_string());
                self.buffer = Vec::new();
                self.start = 0;
                Err(err)
            }
        }
    }

    /// The stream ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), Error> {
        self.check()?;
        match self.buffered() {
            0 => Ok(()),
            n if n < FRAME_HEADER_LEN => Err(Error::malformed(
                WHAT,
                format!("the stream ended {n} bytes into a frame's 4-byte length"),
            )),
            n => {
                let len = self.declared_len();
                Err(Error::malformed(
                    WHAT,
                    format!(
                        "truncated: the stream ended {} bytes into a frame of {len} bytes",
                        n - FRAME_HEADER_LEN
                    ),
                ))
            }
        }
    }

    fn check(&self) -> Result<(), Error> {
        match &self.failed {
            Some(reason) => Err(Error::malformed(
                WHAT,
                format!("the stream failed before: {reason}"),
            )),
            None => Ok(()),
        }
    }

    fn declared_len(&self) -> usize {
        let head = &self.buffer[self.start..self.start + FRAME_HEADER_LEN];
        u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize
    }

    /// The length the next frame declares, once its header is in.
    fn pending_len(&mut self) -> Result<Option<usize>, Error> {
        self.check()?;
        if self.buffered() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = self.declared_len();
        let problem = if len > self.max {
            Some(too_long(len, self.max))
        } else if len == 0 {
            Some(Error::malformed(
                WHAT,
                "an empty frame (every message is at least one byte)",
            ))
        } else {
            None
        };
        if let Some(err) = problem {
            self.failed = Some(err.to_string());
            self.buffer = Vec::new();
            self.start = 0;
            return Err(err);
        }
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn examples() -> (Vec<WorkerRequest>, Vec<WorkerEvent>) {
        let blob = crate::wire::BlobRef::new("gs://b/p/blobs/sha256/ab", 12, "ab".repeat(32));
        let requests = vec![
            WorkerRequest::call(1, "hype-add-abc", "inline:SFlQQwKA"),
            WorkerRequest::call(u64::MAX, "hype-add-def", blob.uri),
            WorkerRequest::Cancel { id: 7 },
            WorkerRequest::Ack { id: 7 },
            WorkerRequest::Shutdown,
            WorkerRequest::Attach,
            WorkerRequest::Ping,
        ];
        let events = vec![
            WorkerEvent::Ready {
                protocol: WORKER_PROTOCOL_VERSION,
                executable_sha256: "cd".repeat(32),
            },
            WorkerEvent::Started {
                id: 1,
                execution_id: "hype-add-abc".into(),
            },
            WorkerEvent::Output {
                id: 1,
                stream: OutputStream::Stderr,
                line: Bytes::from(b"caf\xc3\xa9 \xff".to_vec()),
            },
            WorkerEvent::Outcome {
                id: 1,
                message: "inline:SFlQTwE=".into(),
            },
            WorkerEvent::Outcome {
                id: 2,
                message: "gs://b/p/outcomes/hype-add-def".into(),
            },
            WorkerEvent::Ended {
                id: 1,
                status: ExitStatus::Code(0),
                out_of_memory: false,
            },
            WorkerEvent::Ended {
                id: 2,
                status: ExitStatus::Signal(9),
                out_of_memory: true,
            },
            WorkerEvent::Error {
                id: None,
                message: "no executable".into(),
            },
        ];
        (requests, events)
    }

    fn stream_of(requests: &[WorkerRequest], events: &[WorkerEvent]) -> Vec<u8> {
        let mut stream = Vec::new();
        for r in requests {
            stream.extend(encode_frame(r).unwrap());
        }
        for e in events {
            stream.extend(encode_frame(e).unwrap());
        }
        stream
    }

    #[test]
    fn a_frame_is_a_big_endian_length_then_messagepack() {
        let frame = encode_frame(&WorkerRequest::Cancel { id: 5 }).unwrap();
        // {"Cancel": {"id": 5}}
        let body = b"\x81\xa6Cancel\x81\xa2id\x05";
        assert_eq!(&frame[..4], &(body.len() as u32).to_be_bytes());
        assert_eq!(&frame[4..], body);
        // A unit variant is its name.
        let frame = encode_frame(&WorkerRequest::Shutdown).unwrap();
        assert_eq!(frame, b"\x00\x00\x00\x09\xa8Shutdown");
    }

    #[test]
    fn examples_round_trip_split_at_every_byte() {
        let (requests, events) = examples();
        let requests_stream = stream_of(&requests, &[]);
        let events_stream = stream_of(&[], &events);
        for split in 0..=requests_stream.len() {
            let mut decoder = FrameDecoder::new();
            let mut got = Vec::new();
            for piece in [&requests_stream[..split], &requests_stream[split..]] {
                decoder.push(piece).unwrap();
                while let Some(r) = decoder.next_message::<WorkerRequest>().unwrap() {
                    got.push(r);
                }
            }
            decoder.finish().unwrap();
            assert_eq!(got, requests, "split at {split}");
        }
        // One byte at a time.
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        for byte in &events_stream {
            decoder.push(std::slice::from_ref(byte)).unwrap();
            while let Some(e) = decoder.next_message::<WorkerEvent>().unwrap() {
                got.push(e);
            }
        }
        decoder.finish().unwrap();
        assert_eq!(got, events);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn truncated_streams_are_errors_at_the_end() {
        let frame = encode_frame(&WorkerRequest::Ack { id: 3 }).unwrap();
        for cut in 1..frame.len() {
            let mut decoder = FrameDecoder::new();
            decoder.push(&frame[..cut]).unwrap();
            assert_eq!(decoder.next_frame().unwrap(), None);
            let err = decoder.finish().unwrap_err().to_string();
            assert!(
                err.contains("ended") && err.contains("worker frame"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_oversized_length_fails_at_once_without_allocating() {
        let mut decoder = FrameDecoder::with_max_frame_len(100);
        decoder.push(&[0, 0]).unwrap();
        let err = decoder.push(&[0, 101, 0x81]).unwrap_err().to_string();
        assert!(err.contains("101 bytes") && err.contains("100"), "{err}");
        assert_eq!(decoder.buffered(), 0);
        // Failed for good: the framing is lost.
        assert!(decoder.push(b"x").is_err());
        assert!(decoder.next_frame().is_err());
        assert!(decoder.finish().is_err());

        let mut decoder = FrameDecoder::new();
        let err = decoder.push(&[0xff; 4]).unwrap_err().to_string();
        assert!(err.contains("4294967295 bytes"), "{err}");
        assert!(decoder.buffer.capacity() < 1024);
    }

    #[test]
    fn an_oversized_message_is_not_encoded() {
        let big = WorkerRequest::call(1, "hype-x", "a".repeat(MAX_FRAME_LEN));
        let err = encode_frame(&big).unwrap_err().to_string();
        assert!(err.contains("longer than the maximum"), "{err}");
    }

    #[test]
    fn empty_frames_garbage_and_trailing_bytes_are_errors() {
        let mut decoder = FrameDecoder::new();
        assert!(decoder.push(&[0, 0, 0, 0]).is_err());

        let mut decoder = FrameDecoder::new();
        decoder.push(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]).unwrap();
        let err = decoder
            .next_message::<WorkerEvent>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid"), "{err}");
        assert!(decoder.next_message::<WorkerEvent>().is_err());

        // A request is not an event.
        let mut decoder = FrameDecoder::new();
        decoder
            .push(&encode_frame(&WorkerRequest::Shutdown).unwrap())
            .unwrap();
        assert!(decoder.next_message::<WorkerEvent>().is_err());

        // One message and a byte more.
        let mut frame = encode_frame(&WorkerRequest::Shutdown).unwrap();
        frame[3] += 1;
        frame.push(0xc0);
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame).unwrap();
        let err = decoder
            .next_message::<WorkerRequest>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("after the message"), "{err}");
    }

    fn request() -> impl Strategy<Value = WorkerRequest> {
        prop_oneof![
            (
                any::<u64>(),
                ".{0,30}",
                ".{0,60}",
                proptest::collection::vec(("[A-Z]{1,8}", ".{0,20}"), 0..3)
            )
                .prop_map(|(id, execution_id, call, env)| WorkerRequest::Call {
                    id,
                    execution_id,
                    call,
                    env,
                }),
            any::<u64>().prop_map(|id| WorkerRequest::Cancel { id }),
            any::<u64>().prop_map(|id| WorkerRequest::Ack { id }),
            Just(WorkerRequest::Shutdown),
            Just(WorkerRequest::Attach),
            Just(WorkerRequest::Ping),
        ]
    }

    fn event() -> impl Strategy<Value = WorkerEvent> {
        let stream = prop_oneof![Just(OutputStream::Stdout), Just(OutputStream::Stderr)];
        let status = prop_oneof![
            any::<i32>().prop_map(ExitStatus::Code),
            any::<i32>().prop_map(ExitStatus::Signal),
        ];
        prop_oneof![
            (any::<u32>(), ".{0,70}").prop_map(|(protocol, executable_sha256)| {
                WorkerEvent::Ready {
                    protocol,
                    executable_sha256,
                }
            }),
            (any::<u64>(), ".{0,30}")
                .prop_map(|(id, execution_id)| WorkerEvent::Started { id, execution_id }),
            (
                any::<u64>(),
                stream,
                proptest::collection::vec(any::<u8>(), 0..100)
            )
                .prop_map(|(id, stream, line)| WorkerEvent::Output {
                    id,
                    stream,
                    line: Bytes::from(line),
                }),
            (any::<u64>(), ".{0,60}")
                .prop_map(|(id, message)| WorkerEvent::Outcome { id, message }),
            (any::<u64>(), status, any::<bool>()).prop_map(|(id, status, out_of_memory)| {
                WorkerEvent::Ended {
                    id,
                    status,
                    out_of_memory,
                }
            }),
            (proptest::option::of(any::<u64>()), ".{0,50}")
                .prop_map(|(id, message)| WorkerEvent::Error { id, message }),
        ]
    }

    proptest! {
        #[test]
        fn messages_round_trip_in_any_pieces(
            requests in proptest::collection::vec(request(), 0..8),
            events in proptest::collection::vec(event(), 0..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            for (stream, is_request) in [(stream_of(&requests, &[]), true), (stream_of(&[], &events), false)] {
                let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
                cuts.push(0);
                cuts.push(stream.len());
                cuts.sort_unstable();
                let mut decoder = FrameDecoder::new();
                let (mut got_requests, mut got_events) = (Vec::new(), Vec::new());
                for pair in cuts.windows(2) {
                    decoder.push(&stream[pair[0]..pair[1]]).unwrap();
                    if is_request {
                        while let Some(r) = decoder.next_message::<WorkerRequest>().unwrap() {
                            got_requests.push(r);
                        }
                    } else {
                        while let Some(e) = decoder.next_message::<WorkerEvent>().unwrap() {
                            got_events.push(e);
                        }
                    }
                }
                decoder.finish().unwrap();
                if is_request {
                    prop_assert_eq!(&got_requests, &requests);
                } else {
                    prop_assert_eq!(&got_events, &events);
                }
            }
        }

        #[test]
        fn garbage_never_panics(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            max in 0usize..64,
        ) {
            let mut decoder = FrameDecoder::with_max_frame_len(max);
            'stream: for piece in &pieces {
                if decoder.push(piece).is_err() {
                    break;
                }
                loop {
                    match decoder.next_message::<WorkerEvent>() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'stream,
                    }
                }
                prop_assert!(decoder.buffered() <= max + FRAME_HEADER_LEN + 40);
            }
            let _ = decoder.finish();
        }
    }
}
