//! A minimal RTMP client (rml_rtmp) for what ffmpeg will not do: raw tags,
//! broken sessions, a publish held open.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A minimal RTMP client driven by rml_rtmp: handshake, connect, publish, raw writes.
pub struct RawClient {
    pub sock: TcpStream,
    session: Option<rml_rtmp::sessions::ClientSession>,
}

impl RawClient {
    /// TCP connect and complete the RTMP handshake.
    pub fn handshake(addr: SocketAddr) -> RawClient {
        Self::handshake_on(TcpStream::connect(addr).unwrap())
    }

    /// The RTMP handshake on a connected socket.
    pub fn handshake_on(mut sock: TcpStream) -> RawClient {
        use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hs = Handshake::new(PeerType::Client);
        sock.write_all(&hs.generate_outbound_p0_and_p1().unwrap())
            .unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "server closed during handshake");
            match hs.process_bytes(&buf[..n]).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    sock.write_all(&response_bytes).unwrap()
                }
                HandshakeProcessResult::Completed { response_bytes, .. } => {
                    sock.write_all(&response_bytes).unwrap();
                    break;
                }
            }
        }
        RawClient {
            sock,
            session: None,
        }
    }

    /// Wraps a bare socket (no handshake done) to use [`RawClient::closed_within`].
    pub fn from_socket(sock: TcpStream) -> RawClient {
        RawClient {
            sock,
            session: None,
        }
    }

    /// connect("live") then publish(name); returns once the server accepted both.
    pub fn publish(addr: SocketAddr, name: &str) -> RawClient {
        Self::try_publish_on(TcpStream::connect(addr).unwrap(), name)
            .unwrap_or_else(|e| panic!("publish {name}: {e}"))
    }

    /// connect("live") then publish(name) on a connected socket; `Err` when the
    /// server refused (`refused: onStatus CODE`) or closed before accepting the publish.
    pub fn try_publish_on(sock: TcpStream, name: &str) -> Result<RawClient, String> {
        use rml_rtmp::sessions::{
            ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
            PublishRequestType,
        };
        let mut c = Self::handshake_on(sock);
        let (mut session, initial) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut pending: Vec<ClientSessionResult> = initial;
        pending.push(session.request_connection("live".into()).unwrap());
        let mut published = false;
        let mut buf = [0u8; 8192];
        let deadline = Instant::now() + Duration::from_secs(5);
        while !published {
            if Instant::now() > deadline {
                return Err("publish not answered in 5 s".into());
            }
            for r in pending.drain(..) {
                match r {
                    ClientSessionResult::OutboundResponse(p) => c
                        .sock
                        .write_all(&p.bytes)
                        .map_err(|e| format!("write: {e}"))?,
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::ConnectionRequestAccepted,
                    ) => {
                        let r = session
                            .request_publishing(name.into(), PublishRequestType::Live)
                            .unwrap();
                        if let ClientSessionResult::OutboundResponse(p) = r {
                            c.sock
                                .write_all(&p.bytes)
                                .map_err(|e| format!("write: {e}"))?;
                        }
                    }
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::PublishRequestAccepted,
                    ) => published = true,
                    // A refusal's status (`NetStream.Publish.Denied`, …) is not
                    // one rml_rtmp knows: it comes through as this.
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::UnhandleableOnStatusCode { code },
                    ) => return Err(format!("refused: onStatus {code}")),
                    _ => {}
                }
            }
            if published {
                break;
            }
            let n = match c.sock.read(&mut buf) {
                Ok(0) => return Err("server closed before accepting publish".into()),
                Ok(n) => n,
                Err(e) => return Err(format!("server reset before accepting publish: {e}")),
            };
            pending = session
                .handle_input(&buf[..n])
                .map_err(|e| format!("{e:?}"))?;
        }
        c.session = Some(session);
        Ok(c)
    }

    /// Sends one FLV video tag body at `ts_ms`.
    pub fn video(&mut self, body: &[u8], ts_ms: u32) -> std::io::Result<()> {
        self.media(true, body, ts_ms)
    }

    /// Sends one FLV audio tag body at `ts_ms`.
    pub fn audio(&mut self, body: &[u8], ts_ms: u32) -> std::io::Result<()> {
        self.media(false, body, ts_ms)
    }

    fn media(&mut self, video: bool, body: &[u8], ts_ms: u32) -> std::io::Result<()> {
        let session = self.session.as_mut().unwrap();
        let (data, ts) = (
            bytes::Bytes::copy_from_slice(body),
            rml_rtmp::time::RtmpTimestamp::new(ts_ms),
        );
        let r = if video {
            session.publish_video_data(data, ts, false)
        } else {
            session.publish_audio_data(data, ts, false)
        };
        if let rml_rtmp::sessions::ClientSessionResult::OutboundResponse(p) = r.unwrap() {
            self.sock.write_all(&p.bytes)?;
        }
        Ok(())
    }

    /// True once the server has closed the connection (EOF or reset) within `t`.
    pub fn closed_within(&mut self, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        let _ = self.sock.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            match self.sock.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}
