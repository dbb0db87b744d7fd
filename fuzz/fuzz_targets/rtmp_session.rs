//! Arbitrary bytes after a valid handshake, through our session wrapper around
//! rml_rtmp. A panic inside rml_rtmp must come back as an error, never escape, and
//! nothing may recurse past the I/O thread's stack: each input runs on a worker
//! thread with the executors' stack size (libFuzzer's main thread has 8 MiB, which hid
//! the nested-AMF0 overflow). Seeds: `fuzz/seeds/rtmp_session/`.
#![no_main]

use ladderd::ingest::rtmp::session::{Event, Output, Session};
use libfuzzer_sys::fuzz_target;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

/// One long-lived worker with the I/O threads' stack, fed over a channel: a thread
/// spawned per input spent most of each run mapping and faulting in its stack.
struct Worker {
    input: std::sync::mpsc::SyncSender<Vec<u8>>,
    done: std::sync::mpsc::Receiver<()>,
}

fn worker() -> &'static std::sync::Mutex<Worker> {
    static WORKER: std::sync::OnceLock<std::sync::Mutex<Worker>> = std::sync::OnceLock::new();
    WORKER.get_or_init(|| {
        let (input, inputs) = std::sync::mpsc::sync_channel::<Vec<u8>>(0);
        let (finished, done) = std::sync::mpsc::sync_channel(0);
        std::thread::Builder::new()
            .stack_size(ladderd::runtime::IO_THREAD_STACK)
            .spawn(move || {
                for data in inputs {
                    run(&data);
                    if finished.send(()).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn fuzz worker");
        std::sync::Mutex::new(Worker { input, done })
    })
}

fuzz_target!(|data: &[u8]| {
    let w = worker().lock().expect("fuzz worker lock");
    w.input.send(data.to_vec()).expect("fuzz worker gone");
    // A panic that escapes the session wrapper ends the worker: recv fails and the
    // run stops here, as a panic on the fuzzer's own thread would.
    w.done.recv().expect("session code panicked outside its containment");
});

fn run(data: &[u8]) {
    // libfuzzer-sys aborts on any panic, even one our wrapper catches. rml_rtmp's
    // panics are expected and contained (Err(Panicked)); only a panic that escapes
    // the wrapper reaches libfuzzer's catch_unwind and fails the run.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let mut server = Session::new();
    let mut client = Handshake::new(PeerType::Client);
    let Ok(c0c1) = client.generate_outbound_p0_and_p1() else { return };
    if server.handle_input(&c0c1).is_err() {
        return;
    }
    let mut s0s1s2 = Vec::new();
    while let Some(Output::Transmit(b)) = server.poll_output() {
        s0s1s2.extend(b);
    }
    let Ok(HandshakeProcessResult::Completed { response_bytes, .. }) = client.process_bytes(&s0s1s2) else {
        return;
    };
    if server.handle_input(&response_bytes).is_err() {
        return;
    }
    for chunk in data.chunks(97) {
        if server.handle_input(chunk).is_err() {
            return;
        }
        while let Some(out) = server.poll_output() {
            // Accept requests so the fuzzer reaches publish and media paths; refuse
            // a publish whose name ends in 'x' (the onStatus refusal path), and
            // every play request.
            match out {
                Output::Event(Event::PublishRequested { request, ref name, .. }) if name.ends_with('x') => {
                    if server.reject(request, "NetStream.Publish.Denied", name).is_err() {
                        return;
                    }
                }
                Output::Event(Event::PlayRequested { request }) => {
                    if server.reject(request, "NetStream.Play.Failed", "no").is_err() {
                        return;
                    }
                }
                Output::Event(Event::ConnectRequested { request, .. } | Event::PublishRequested { request, .. }) => {
                    if matches!(out, Output::Event(Event::PublishRequested { .. })) {
                        server.publishing();
                    }
                    if server.accept(request).is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}
