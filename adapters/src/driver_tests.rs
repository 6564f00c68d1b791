//! The driver's reads against a real loopback socket (tokio).

use std::future::poll_fn;
use std::io::Write as _;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gridmux_core::ws::{self, Frame, FrameDecoder, FrameEncoder, OpCode, Role, Transmit};

use super::Io;
use crate::runtime::{Runtime, Socket, TokioRuntime};

async fn pair() -> (tokio::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (theirs, _) = listener.accept().unwrap();
    (ours, theirs)
}

fn io(socket: Arc<dyn Socket>) -> Io {
    let runtime: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
    Io {
        runtime,
        socket,
        timer: None,
        fresh_input: false,
        held: false,
        frame_rest: 0,
        large_frames: false,
        peeked: false,
        input: BytesMut::new(),
        out: Transmit::new(),
        read_done: false,
        eof_pending: false,
        write_error: None,
        write_failed: false,
        linger_until: None,
    }
}

/// Reads as the driver does until `done` holds (at most 20 s).
async fn read_until(io: &mut Io, mut done: impl FnMut(&Io) -> bool) {
    let reading = poll_fn(|cx| loop {
        let budget_spent = io.read(cx);
        // A connection that looked and took nothing.
        io.fresh_input = false;
        if done(io) {
            return Poll::Ready(());
        }
        if !budget_spent {
            return Poll::Pending;
        }
    });
    tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("bytes wait in the socket while the reader sleeps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_frame_s_buffer_is_let_go_once_frames_are_small_again() {
    const BIG: usize = 8 << 20;
    const SMALL: usize = 1000;
    let (ours, mut theirs) = pair().await;
    let writer = std::thread::spawn(move || {
        theirs.write_all(&vec![1u8; BIG]).unwrap();
        for _ in 0..BIG / SMALL + 100 {
            theirs.write_all(&[2u8; SMALL]).unwrap();
        }
        theirs
    });
    let mut io = io(Arc::new(ours));
    read_until(&mut io, |io| io.input.len() >= BIG).await;
    drop(io.input.split_to(BIG).freeze());
    let mut got = 0;
    while got < BIG {
        read_until(&mut io, |io| io.input.len() >= SMALL).await;
        let n = io.input.len() / SMALL * SMALL;
        got += n;
        drop(io.input.split_to(n).freeze());
    }
    let mut theirs = writer.join().unwrap();
    theirs.write_all(&[3u8; SMALL]).unwrap();
    // A read (however much came at once before) starts from a buffer
    // sized for what is left.
    read_until(&mut io, |io| io.input.len() >= SMALL).await;
    let capacity = io.input.capacity();
    assert!(capacity <= 1 << 20, "the reader keeps {capacity} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_stream_right_after_a_short_read_is_seen() {
    for round in 0..50 {
        let (ours, mut theirs) = pair().await;
        let mut io = io(Arc::new(ours));
        theirs.write_all(b"hello").unwrap();
        read_until(&mut io, |io| io.input.len() >= 5).await;
        if round % 2 == 0 {
            theirs.shutdown(std::net::Shutdown::Write).unwrap();
        } else {
            theirs.write_all(b"!").unwrap();
            drop(theirs);
        }
        read_until(&mut io, |io| io.read_done).await;
        assert!(io.eof_pending);
    }
}

/// A socket of someone else's runtime that only forwards the required
/// methods to a tokio stream.
#[derive(Debug)]
struct Forwarding(tokio::net::TcpStream);

impl Socket for Forwarding {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Socket::poll_readable(&self.0, cx)
    }
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Socket::poll_writable(&self.0, cx)
    }
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        Socket::try_read(&self.0, buf)
    }
    fn try_write_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        Socket::try_write_vectored(&self.0, bufs)
    }
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        Socket::as_fd(&self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_without_its_own_spare_read_reads_through_try_read() {
    let (ours, mut theirs) = pair().await;
    let mut io = io(Arc::new(Forwarding(ours)));
    theirs.write_all(b"hi").unwrap();
    read_until(&mut io, |io| io.input.len() >= 2).await;
    assert_eq!(&io.input[..], b"hi");
    // Its runtime learned of the `WouldBlock`: nothing to read means
    // waiting, not a readiness that answers at once (a busy loop).
    let waits = poll_fn(|cx| Poll::Ready(!io.read(cx) && io.socket.poll_readable(cx).is_pending()));
    assert!(waits.await);
    let mut empty = BytesMut::new();
    let e = io.socket.try_read_spare(&mut empty).unwrap_err();
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::InvalidInput,
        "no room is not end of stream"
    );
}

/// What a run of `(count, payload length)` frames looks like on the wire
/// from a server (unmasked); each payload's bytes are its index's.
fn frames_on_the_wire(runs: &[(usize, usize)]) -> Vec<u8> {
    let mut encoder = FrameEncoder::new();
    let mut out = Transmit::new();
    let mut index = 0u8;
    for &(count, len) in runs {
        for _ in 0..count {
            let payload = Bytes::from(vec![index; len]);
            encoder.encode(&Frame::new(OpCode::Binary, payload), None, &mut out);
            index = index.wrapping_add(1);
        }
    }
    encoder.flush(&mut out);
    out.to_vec()
}

/// A run of large frames: after the first, each one's payload is read into
/// a buffer of exactly its size (the read after a large frame is a
/// header's worth, which gives the frame's length), so it is never copied;
/// small frames after them are read whole again. The header alone never
/// goes to the connection: no round is spent on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_large_frames_lands_each_in_a_buffer_of_its_size() {
    const LARGE: usize = 100_000;
    let runs = [(6, LARGE), (200, 10)];
    let wire = frames_on_the_wire(&runs);
    let (ours, mut theirs) = pair().await;
    let writer = std::thread::spawn(move || {
        theirs.write_all(&wire).unwrap();
        theirs
    });
    let mut io = io(Arc::new(ours));
    // The connection's part, as `exchange` plays it: decode, then tell the
    // reader what the frame in progress still wants.
    let mut decoder = FrameDecoder::new(Role::Client, 1 << 20);
    let mut seen = Vec::new();
    let mut header_rounds = 0;
    let reading = poll_fn(|cx| loop {
        let budget_spent = io.read(cx);
        let header_alone = io.input.len() <= ws::MAX_HEADER_LEN && io.fresh_input;
        if budget_spent && header_alone && seen.len() < 6 {
            header_rounds += 1;
        }
        if std::mem::take(&mut io.fresh_input) {
            while let Some(frame) = decoder.decode(&mut io.input).unwrap() {
                let index = seen.len() as u8;
                assert!(frame.payload.iter().all(|&b| b == index), "frame {index}");
                // The frame's buffer ended where it does.
                let own = io.input.is_empty() && io.input.capacity() == 0;
                seen.push((frame.payload.len(), own));
            }
            io.frame_rest = decoder.payload_wanted();
        }
        if seen.len() == 206 {
            return Poll::Ready(());
        }
        if !budget_spent {
            return Poll::Pending;
        }
    });
    tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("every frame arrives");
    drop(writer.join().unwrap());
    for (i, &(len, own)) in seen.iter().enumerate().take(6).skip(1) {
        assert_eq!(len, LARGE);
        assert!(
            own,
            "large frame {i} shared a buffer (it was copied): {:?}",
            &seen[..8]
        );
    }
    assert_eq!(header_rounds, 0, "a round for a header alone");
    assert!(seen[6..].iter().all(|&(len, _)| len == 10));
    assert!(!io.large_frames, "small frames are read whole again");
}

/// A socket that always has bytes: `head`, then zeros without end.
#[derive(Debug)]
struct Flood {
    head: std::sync::Mutex<Vec<u8>>,
    fd: std::fs::File,
}

impl Flood {
    fn new(head: Vec<u8>) -> Self {
        let fd = std::fs::File::open("/dev/null").unwrap();
        let head = std::sync::Mutex::new(head);
        Self { head, fd }
    }
}

impl Socket for Flood {
    fn poll_readable(&self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_writable(&self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut head = self.head.lock().unwrap();
        let n = head.len().min(buf.len());
        buf[..n].copy_from_slice(&head[..n]);
        head.drain(..n);
        buf[n..].fill(0);
        Ok(buf.len())
    }
    fn try_write_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        Ok(bufs.iter().map(|b| b.len()).sum())
    }
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }
}

/// Review of the header read (helper): a header the connection has not
/// checked sizes a buffer only up to `OWN_BUFFER_MAX`, and only for a data
/// frame. After a large frame, a peer that announces 2^62 bytes (or 1 GiB,
/// or one past the bound, or a 200 KB ping) and floods gets its header
/// read alone, then the connection judges it; before, the read went on,
/// growing the buffer to tens of MiB within one call.
#[tokio::test]
async fn an_announcement_past_the_bound_goes_to_the_connection_first() {
    let bound = super::OWN_BUFFER_MAX as u64;
    for (b0, announced) in [
        (0x82, 1 << 62),
        (0x82, 1 << 30),
        (0x82, bound + 1),
        (0x89, 200_000),
        (0xc2, 200_000),
        (0x83, 200_000),
    ] {
        let mut head = vec![b0, 127];
        head.extend_from_slice(&u64::to_be_bytes(announced));
        let mut io = io(Arc::new(Flood::new(head)));
        io.large_frames = true; // a large frame came before
        let spent = poll_fn(|cx| Poll::Ready(io.read(cx))).await;
        assert!(spent && io.fresh_input, "{b0:#x} {announced}");
        assert_eq!(io.input.len(), ws::MAX_HEADER_LEN, "{b0:#x} {announced}");
        assert_eq!(io.frame_rest, 0, "{b0:#x} {announced}");
    }
    // A data frame within the bound is sized from its header, and read on.
    let mut head = vec![0x82, 127];
    head.extend_from_slice(&u64::to_be_bytes(bound - 10));
    let mut io = io(Arc::new(Flood::new(head)));
    io.large_frames = true;
    poll_fn(|cx| Poll::Ready(io.read(cx))).await;
    assert!(
        io.input.len() > ws::MAX_HEADER_LEN,
        "read on past the header"
    );
    assert_eq!(io.input.len() + io.frame_rest, super::OWN_BUFFER_MAX);
    assert_eq!(io.input.capacity(), super::OWN_BUFFER_MAX);
}

/// The bound on what a peer's announcement reserves: a frame up to
/// `OWN_BUFFER_MAX` gets its whole buffer at once, a larger one grows as
/// its bytes come (after 20 bytes of it, one read chunk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_frames_up_to_the_bound_get_their_buffer_before_their_bytes() {
    let (ours, _theirs) = pair().await;
    let mut io = io(Arc::new(ours));
    for (frame, reserved) in [
        (super::OWN_BUFFER_MAX, super::OWN_BUFFER_MAX),
        (super::OWN_BUFFER_MAX + 1, super::READ_CHUNK),
        (16 << 20, super::READ_CHUNK),
    ] {
        io.input = BytesMut::from(&[0u8; 20][..]);
        io.frame_rest = frame - 20;
        io.make_room();
        assert_eq!(io.input.capacity(), reserved, "a frame of {frame} bytes");
        assert_eq!(&io.input[..], &[0u8; 20]);
    }
}
