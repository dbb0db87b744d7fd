//! Sans-IO RTMP server session: handshake + `rml_rtmp::ServerSession`, with its
//! panics contained and its input bounded.
//!
//! Drive contract: call [`Session::handle_input`] with every byte read from the
//! socket, in order; then drain [`Session::poll_output`] until it returns `None`,
//! writing each [`Output::Transmit`] to the socket in order and acting on each
//! [`Output::Event`] (a request must be answered with [`Session::accept`] or
//! [`Session::reject`], whose responses come out of `poll_output` too).
//! After any `Err` the session is dead: close the connection.
//!
//! `rml_rtmp` 0.8 is unmaintained and has panics reachable from malformed input;
//! every call into it goes through [`contain`], which turns a panic into
//! [`SessionError::Panicked`] so only this connection ends. A panic is not the
//! worst it can do: its chunk layer trusts declared sizes and its AMF0 parser
//! recurses without a bound. So the peer's bytes go through our [`ChunkReader`]
//! (sizes capped, tighter until [`Session::publishing`]) and each command/data
//! message through [`amf0::check_message_depth`]; rml_rtmp then gets every
//! message whole, as one chunk.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};

use super::amf0;
use super::chunk::{self, ChunkError, ChunkReader, Limits, Message};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("RTMP protocol error: {0}")]
    Protocol(String),
    #[error("RTMP chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("RTMP message type {type_id}: {source}")]
    Amf0 { type_id: u8, source: amf0::TooDeep },
    #[error("RTMP parser panicked: {0}")]
    Panicked(String),
    #[error("session already closed")]
    Closed,
}

/// What the connection owner must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    ConnectRequested {
        request: u32,
        app: String,
    },
    /// `name` is the raw publish name, query string included (`cam1?key=…`).
    PublishRequested {
        request: u32,
        app: String,
        name: String,
    },
    PublishFinished,
    Metadata(StreamMetadata),
    Video {
        timestamp_ms: u32,
        data: Bytes,
    },
    Audio {
        timestamp_ms: u32,
        data: Bytes,
    },
    /// Playback requests: ladderd does not serve RTMP playback.
    PlayRequested {
        request: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Transmit(Vec<u8>),
    Event(Event),
}

enum State {
    Handshaking(Box<Handshake>),
    Active(Box<ServerSession>),
    Dead,
}

/// Chunk stream of the `onStatus` refusals we write ourselves: rml_rtmp uses 2..=6,
/// so our type-0 header never disturbs its header compression.
const STATUS_CSID: u32 = 8;

/// An AMF0 `publish` command's name, as it starts the message body.
const PUBLISH_COMMAND: &[u8] = b"\x02\x00\x07publish";

pub struct Session {
    state: State,
    reader: ChunkReader,
    /// Reassembled messages re-serialized for rml_rtmp (reused between calls).
    wire: Vec<u8>,
    out: VecDeque<Output>,
    /// Message stream ids of the `publish` commands handed to rml_rtmp and not yet
    /// raised as requests (its event does not say the stream).
    publish_streams: VecDeque<u32>,
    /// Open publish/play requests, by request id: the message stream their
    /// refusal's `onStatus` goes on.
    status_streams: HashMap<u32, u32>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Session {
            state: State::Handshaking(Box::new(Handshake::new(PeerType::Server))),
            reader: ChunkReader::new(Limits::UNAUTHENTICATED),
            wire: Vec::new(),
            out: VecDeque::new(),
            publish_streams: VecDeque::new(),
            status_streams: HashMap::new(),
        }
    }

    /// True once the handshake is done and RTMP messages flow.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Active(_))
    }

    /// A publish was accepted: media messages may now be as large as RTMP allows.
    pub fn publishing(&mut self) {
        self.reader.set_limits(Limits::PUBLISHING);
    }

    /// Bytes of input held until their message completes.
    pub fn buffered(&self) -> usize {
        self.reader.buffered()
    }

    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        let result = self.handle_input_inner(bytes);
        if result.is_err() {
            self.state = State::Dead;
        }
        result
    }

    fn handle_input_inner(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        match &mut self.state {
            State::Dead => Err(SessionError::Closed),
            State::Handshaking(hs) => {
                let step = contain(|| hs.process_bytes(bytes))?
                    .map_err(|e| SessionError::Handshake(e.to_string()))?;
                match step {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        self.transmit(response_bytes);
                        Ok(())
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        self.transmit(response_bytes);
                        let mut config = ServerSessionConfig::new();
                        config.chunk_size = 4096;
                        let (mut session, mut results) = contain(|| ServerSession::new(config))?
                            .map_err(|e| SessionError::Protocol(e.to_string()))?;
                        // Messages reach rml_rtmp whole, each as one chunk: its reader's
                        // chunk size must cover any message length we let through.
                        let mut wire = Vec::new();
                        chunk::write_single_chunk(
                            &Message {
                                csid: 2,
                                timestamp: 0,
                                type_id: chunk::SET_CHUNK_SIZE,
                                stream_id: 0,
                                payload: Bytes::from_static(&[0x7F, 0xFF, 0xFF, 0xFF]),
                            },
                            &mut wire,
                        );
                        results.extend(
                            contain(|| session.handle_input(&wire))?
                                .map_err(|e| SessionError::Protocol(e.to_string()))?,
                        );
                        self.state = State::Active(Box::new(session));
                        self.absorb(results)?;
                        if remaining_bytes.is_empty() {
                            Ok(())
                        } else {
                            self.handle_input_inner(&remaining_bytes)
                        }
                    }
                }
            }
            State::Active(session) => {
                self.reader.push(bytes);
                self.wire.clear();
                while let Some(m) = self.reader.next_message()? {
                    if matches!(m.type_id, 15 | 17 | 18 | 20) {
                        amf0::check_message_depth(m.type_id, &m.payload, amf0::MAX_DEPTH).map_err(
                            |source| SessionError::Amf0 {
                                type_id: m.type_id,
                                source,
                            },
                        )?;
                    }
                    if m.type_id == 20 && m.payload.starts_with(PUBLISH_COMMAND) {
                        // Bounded by the reader's message cap per call; cleared below.
                        self.publish_streams.push_back(m.stream_id);
                    }
                    chunk::write_single_chunk(&m, &mut self.wire);
                }
                if self.wire.is_empty() {
                    return Ok(());
                }
                let wire = &self.wire;
                let results = contain(|| session.handle_input(wire))?
                    .map_err(|e| SessionError::Protocol(e.to_string()))?;
                let absorbed = self.absorb(results);
                // A publish rml_rtmp did not raise (refused itself) must not shift the next one's stream.
                self.publish_streams.clear();
                absorbed
            }
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn accept(&mut self, request: u32) -> Result<(), SessionError> {
        let State::Active(session) = &mut self.state else {
            return Err(SessionError::Closed);
        };
        self.status_streams.remove(&request);
        let results = contain(|| session.accept_request(request))?
            .map_err(|e| SessionError::Protocol(e.to_string()))?;
        self.absorb(results)
    }

    /// Refuses a request: a `connect` with rml_rtmp's `_error`; a publish or play
    /// with `onStatus` (level `error`, `code`, `description`) on its stream, which is
    /// what OBS, librtmp and ffmpeg read as the reason (rml_rtmp would send an
    /// `_error` with transaction 0 there, which they ignore or cannot place).
    pub fn reject(
        &mut self,
        request: u32,
        code: &str,
        description: &str,
    ) -> Result<(), SessionError> {
        let State::Active(session) = &mut self.state else {
            return Err(SessionError::Closed);
        };
        let status_stream = self.status_streams.remove(&request);
        let results = contain(|| session.reject_request(request, code, description))?
            .map_err(|e| SessionError::Protocol(e.to_string()))?;
        match status_stream {
            None => self.absorb(results),
            Some(stream_id) => {
                let bytes = status_message(stream_id, "error", code, description)?;
                self.transmit(bytes);
                Ok(())
            }
        }
    }

    fn transmit(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.out.push_back(Output::Transmit(bytes));
        }
    }

    fn absorb(&mut self, results: Vec<ServerSessionResult>) -> Result<(), SessionError> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.transmit(packet.bytes),
                ServerSessionResult::RaisedEvent(event) => {
                    if let Some(e) = self.translate(event)? {
                        self.out.push_back(Output::Event(e));
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn translate(&mut self, event: ServerSessionEvent) -> Result<Option<Event>, SessionError> {
        Ok(Some(match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => Event::ConnectRequested {
                request: request_id,
                app: app_name,
            },
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => {
                // rml_rtmp answers a publish on stream 1 when it cannot tell; so do we.
                let stream_id = self.publish_streams.pop_front().unwrap_or(1);
                self.status_streams.insert(request_id, stream_id);
                Event::PublishRequested {
                    request: request_id,
                    app: app_name,
                    name: stream_key,
                }
            }
            ServerSessionEvent::PublishStreamFinished { .. } => Event::PublishFinished,
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => Event::Metadata(metadata),
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => Event::Video {
                timestamp_ms: timestamp.value,
                data,
            },
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => Event::Audio {
                timestamp_ms: timestamp.value,
                data,
            },
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                stream_id,
                ..
            } => {
                self.status_streams.insert(request_id, stream_id);
                Event::PlayRequested {
                    request: request_id,
                }
            }
            _ => return Ok(None),
        }))
    }
}

/// One `onStatus` command (transaction 0, null command object, then the info
/// object) on message stream `stream_id`, as a single chunk: its few hundred
/// bytes fit the 4096-byte chunk size the session announced at the start.
fn status_message(
    stream_id: u32,
    level: &str,
    code: &str,
    description: &str,
) -> Result<Vec<u8>, SessionError> {
    let info = [
        ("level", level),
        ("code", code),
        ("description", description),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Amf0Value::Utf8String(v.to_string())))
    .collect();
    let payload = RtmpMessage::Amf0Command {
        command_name: "onStatus".into(),
        transaction_id: 0.0,
        command_object: Amf0Value::Null,
        additional_arguments: vec![Amf0Value::Object(info)],
    }
    .into_message_payload(rml_rtmp::time::RtmpTimestamp::new(0), stream_id)
    .map_err(|e| SessionError::Protocol(format!("onStatus {code}: {e}")))?;
    let mut out = Vec::new();
    chunk::write_single_chunk(
        &Message {
            csid: STATUS_CSID,
            timestamp: 0,
            type_id: payload.type_id,
            stream_id,
            payload: payload.data,
        },
        &mut out,
    );
    Ok(out)
}

/// Runs a call into third-party parsing code, turning a panic into an error.
fn contain<T>(f: impl FnOnce() -> T) -> Result<T, SessionError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into());
        SessionError::Panicked(msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
        PublishRequestType,
    };

    /// Plays the client side with rml_rtmp's own client session.
    struct Peer {
        server: Session,
        client: ClientSession,
        events: Vec<Event>,
        client_events: Vec<ClientSessionEvent>,
    }

    impl Peer {
        fn connect() -> Peer {
            let mut server = Session::new();
            let mut hs = Handshake::new(PeerType::Client);
            let c0c1 = hs.generate_outbound_p0_and_p1().unwrap();
            server.handle_input(&c0c1).unwrap();
            let mut to_client = Vec::new();
            while let Some(Output::Transmit(b)) = server.poll_output() {
                to_client.extend(b);
            }
            let HandshakeProcessResult::Completed { response_bytes, .. } =
                hs.process_bytes(&to_client).unwrap()
            else {
                panic!("client handshake not complete")
            };
            server.handle_input(&response_bytes).unwrap();
            assert!(server.is_established());
            let (client, initial) = ClientSession::new(ClientSessionConfig::new()).unwrap();
            let mut peer = Peer {
                server,
                client,
                events: vec![],
                client_events: vec![],
            };
            peer.pump_server();
            peer.to_server(initial);
            peer
        }

        fn to_server(&mut self, results: Vec<ClientSessionResult>) {
            for r in results {
                match r {
                    ClientSessionResult::OutboundResponse(p) => {
                        self.server.handle_input(&p.bytes).unwrap()
                    }
                    ClientSessionResult::RaisedEvent(e) => self.client_events.push(e),
                    _ => {}
                }
            }
            self.pump_server();
        }

        fn pump_server(&mut self) {
            let mut to_client = Vec::new();
            while let Some(o) = self.server.poll_output() {
                match o {
                    Output::Transmit(b) => to_client.extend(b),
                    Output::Event(e) => self.events.push(e),
                }
            }
            if !to_client.is_empty() {
                let results = self.client.handle_input(&to_client).unwrap();
                self.to_server(results);
            }
        }
    }

    #[test]
    fn connect_and_publish_surface_as_requests() {
        let mut p = Peer::connect();
        let r = p.client.request_connection("live".into()).unwrap();
        p.to_server(vec![r]);
        let Some(Event::ConnectRequested { request, app }) = p.events.pop() else {
            panic!("no connect request: {:?}", p.events)
        };
        assert_eq!(app, "live");
        p.server.accept(request).unwrap();
        p.pump_server();
        let r = p
            .client
            .request_publishing("cam1?key=s3cret".into(), PublishRequestType::Live)
            .unwrap();
        p.to_server(vec![r]);
        let Some(Event::PublishRequested { request, name, .. }) = p.events.pop() else {
            panic!("no publish request: {:?}", p.events)
        };
        assert_eq!(name, "cam1?key=s3cret");
        p.server.accept(request).unwrap();
        p.pump_server();
        assert!(p
            .client_events
            .iter()
            .any(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted)));
        let r = p
            .client
            .publish_video_data(
                Bytes::from_static(&[0x17, 0, 0, 0, 0]),
                rml_rtmp::time::RtmpTimestamp::new(40),
                false,
            )
            .unwrap();
        p.to_server(vec![r]);
        assert_eq!(
            p.events.pop(),
            Some(Event::Video {
                timestamp_ms: 40,
                data: Bytes::from_static(&[0x17, 0, 0, 0, 0])
            })
        );
    }

    /// Issue 30: a refused publish was answered with rml_rtmp's `_error` on
    /// transaction 0, which encoders drop, so they showed only "disconnected".
    /// Now it is an `onStatus` with level `error` on the publish's own stream.
    #[test]
    fn refused_publish_is_answered_with_on_status_on_its_stream() {
        let mut p = Peer::connect();
        let r = p.client.request_connection("live".into()).unwrap();
        p.to_server(vec![r]);
        let Some(Event::ConnectRequested { request, .. }) = p.events.pop() else {
            panic!("no connect request: {:?}", p.events)
        };
        p.server.accept(request).unwrap();
        p.pump_server();
        let r = p
            .client
            .request_publishing("cam1?key=guess".into(), PublishRequestType::Live)
            .unwrap();
        p.to_server(vec![r]);
        let Some(Event::PublishRequested { request, .. }) = p.events.pop() else {
            panic!("no publish request: {:?}", p.events)
        };
        p.server
            .reject(request, "NetStream.Publish.Denied", "publish refused: test")
            .unwrap();
        let mut wire = Vec::new();
        while let Some(o) = p.server.poll_output() {
            let Output::Transmit(b) = o else {
                panic!("unexpected {o:?}")
            };
            wire.extend(b);
        }
        // One type-0 chunk on our csid: AMF0 command (20) on message stream 1,
        // the stream rml_rtmp's createStream handed out.
        assert_eq!(wire[0], STATUS_CSID as u8);
        assert_eq!(wire[7], 20);
        assert_eq!(u32::from_le_bytes(wire[8..12].try_into().unwrap()), 1);
        let has = |s: &[u8]| wire.windows(s.len()).any(|w| w == s);
        assert!(has(b"onStatus") && has(b"publish refused: test") && has(b"\x00\x05error"));
        let results = p.client.handle_input(&wire).unwrap();
        assert!(
            results.iter().any(|r| matches!(
                r,
                ClientSessionResult::RaisedEvent(ClientSessionEvent::UnhandleableOnStatusCode { code })
                    if code == "NetStream.Publish.Denied"
            )),
            "client did not read an onStatus: {results:?}"
        );
    }

    #[test]
    fn garbage_handshake_is_an_error() {
        let mut s = Session::new();
        let mut junk = vec![0x16u8, 0x03, 0x01];
        junk.resize(1537, 0xAA);
        assert!(matches!(
            s.handle_input(&junk),
            Err(SessionError::Handshake(_))
        ));
        assert!(matches!(s.handle_input(&[3]), Err(SessionError::Closed)));
    }

    #[test]
    fn chunk_size_of_2_pow_31_is_refused() {
        let mut p = Peer::connect();
        // Set Chunk Size (type 1) on csid 2 with 2^31, one above the protocol maximum.
        // (Up to 2^31 - 1 is legal; a chunk never exceeds its message, itself < 16 MiB.)
        let msg = [0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0x80, 0, 0, 0];
        let err = p.server.handle_input(&msg).unwrap_err();
        assert!(matches!(err, SessionError::Chunk(_)), "{err}");
    }

    /// Issue 12 item 1: after the handshake, one `connect` whose AMF0 argument nests
    /// objects 4,000 deep (16 KB) overflowed the I/O thread's stack and aborted the
    /// process. Run on a 2 MiB stack like the I/O threads': the session must refuse it.
    #[test]
    fn nested_amf_connect_16_kb_is_refused_without_a_stack_overflow() {
        let run = || {
            for (level, depth) in [
                (&[0x03u8, 0, 1, b'a'][..], 4000),
                (&[0x0A, 0, 0, 0, 1][..], 10_000),
            ] {
                let mut p = Peer::connect();
                let mut body = vec![0x02, 0, 7];
                body.extend_from_slice(b"connect");
                body.extend_from_slice(&[0, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
                for _ in 0..depth {
                    body.extend_from_slice(level);
                }
                // Sent as a client would: 128-byte chunks on csid 3.
                let mut wire = vec![3, 0, 0, 0];
                wire.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
                wire.extend_from_slice(&[20, 0, 0, 0, 0]);
                for (i, c) in body.chunks(128).enumerate() {
                    if i > 0 {
                        wire.push(0xC3);
                    }
                    wire.extend_from_slice(c);
                }
                // Commands are capped at 64 KiB before publish; 50 KB fits.
                let err = p.server.handle_input(&wire).unwrap_err();
                assert!(
                    matches!(err, SessionError::Amf0 { type_id: 20, .. }),
                    "{err}"
                );
            }
        };
        std::thread::Builder::new()
            .stack_size(crate::runtime::IO_THREAD_STACK)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }

    /// Issue 12 item 2: a 16 MiB message declared before `publish` ends the connection
    /// at its header, and nothing close to its size is held.
    #[test]
    fn unauthenticated_16_mib_message_is_refused() {
        let mut p = Peer::connect();
        let mut wire = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
        wire.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        assert!(matches!(
            p.server.handle_input(&wire),
            Err(SessionError::Chunk(_))
        ));
        let mut p = Peer::connect();
        let err = p
            .server
            .handle_input(&[3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0, 0x17, 0])
            .unwrap_err();
        assert!(
            matches!(err, SessionError::Chunk(ChunkError::MessageTooLarge { .. })),
            "{err}"
        );
    }

    /// Found by `fuzz/fuzz_targets/rtmp_session.rs`: an AMF0 command message whose
    /// body holds no values makes rml_rtmp 0.8 slice `values[..3]` of an empty Vec
    /// (amf0_command.rs:35) and panic. It must end this session only.
    #[test]
    fn amf0_command_without_values_panic_is_contained() {
        let mut p = Peer::connect();
        let crash = [
            0x21, 0x0f, 0, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
        ];
        let err = p.server.handle_input(&crash).unwrap_err();
        assert!(matches!(err, SessionError::Panicked(_)), "{err}");
        assert!(matches!(
            p.server.handle_input(&[0]),
            Err(SessionError::Closed)
        ));
    }

    #[test]
    fn random_input_never_escapes_as_a_panic() {
        // A small deterministic LCG so the test is reproducible.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200 {
            let mut p = Peer::connect();
            let mut buf = vec![0u8; 512];
            for b in buf.iter_mut() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (x >> 33) as u8;
            }
            let _ = p.server.handle_input(&buf);
            while p.server.poll_output().is_some() {}
        }
    }
}
