//! Transfers over loopback TCP, checked byte for byte.

mod common;

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};

use common::{drive, loopback, patterned};
use gridmux_sendfile::{counters, Method, Options, Transfer, TransferError};

const LINUX: bool = cfg!(any(target_os = "linux", target_os = "android"));

fn options(method: Method) -> Options {
    Options {
        method,
        ..Options::default()
    }
}

/// A whole file and sub-ranges of it arrive exactly, by either method;
/// on Linux the sendfile method really used sendfile.
#[test]
fn regions_arrive_byte_exact_by_both_methods() {
    for len in [0usize, 1, 4095, (4 << 20) + 1] {
        let (file, data) = patterned(len);
        let ranges = [(0, len), (len / 3, len - len / 5)];
        for (start, end) in ranges.into_iter().filter(|(s, e)| s <= e) {
            for method in [Method::Sendfile, Method::Copy] {
                let file = file.try_clone().unwrap();
                let (sender, reader) = loopback(end - start);
                let mut t =
                    Transfer::new(file, start as u64..end as u64, &options(method)).unwrap();
                let sent = drive(&mut t, &sender, &sender).unwrap();
                drop(sender);
                let got = reader.join().unwrap();
                assert_eq!(sent as usize, end - start, "{len} {method:?}");
                assert!(
                    got == data[start..end],
                    "{len} bytes {start}..{end} by {method:?}"
                );
                let (by_sendfile, by_copy) = t.sent_by();
                match method {
                    Method::Sendfile if LINUX => assert_eq!(by_sendfile, sent),
                    _ => assert_eq!(by_copy, sent),
                }
            }
        }
    }
}

/// A 64 MiB sparse file (holes read as zeros) goes out whole, with 4 MiB
/// calls, and the process counters see it.
#[test]
fn a_sparse_64_mib_file_goes_out_whole() {
    let len = 64u64 << 20;
    let file = tempfile::tempfile().unwrap();
    file.set_len(len).unwrap();
    let before = counters();
    let (sender, reader) = loopback(len as usize);
    let mut t = Transfer::new(file, 0..len, &Options::default()).unwrap();
    assert_eq!(drive(&mut t, &sender, &sender).unwrap(), len);
    drop(sender);
    let got = reader.join().unwrap();
    assert_eq!(got.len() as u64, len);
    assert!(got.iter().all(|b| *b == 0));
    let after = counters();
    if LINUX {
        assert!(after.sendfile_bytes - before.sendfile_bytes >= len);
    } else {
        assert!(after.copy_bytes - before.copy_bytes >= len);
    }
}

/// A file truncated while it is sent ends the transfer with `Truncated`
/// at the new end: the bytes sent are never taken for the whole region.
#[test]
fn a_file_truncated_mid_transfer_is_an_error() {
    for method in [Method::Sendfile, Method::Copy] {
        let (file, _) = patterned(1 << 20);
        let shrink = file.try_clone().unwrap();
        let (sender, reader) = loopback(1 << 20);
        let opts = Options {
            max_chunk: 64 << 10,
            copy_buffer: 64 << 10,
            ..options(method)
        };
        let mut t = Transfer::new(file, 0..1 << 20, &opts).unwrap();
        let mut sent = 0;
        while sent < 64 << 10 {
            match t.send(&sender) {
                Ok(n) => sent += n,
                Err(e) if e.is_would_block() => common::wait_writable(&sender),
                Err(e) => panic!("{e}"),
            }
        }
        shrink.set_len(100 << 10).unwrap();
        let end = drive(&mut t, &sender, &sender);
        assert!(
            matches!(end, Err(TransferError::Truncated { at, end }) if at == 100 << 10 && end == 1 << 20),
            "{method:?}: {end:?}"
        );
        drop(sender);
        assert_eq!(reader.join().unwrap().len(), 100 << 10);
    }
}

/// A peer that stops reading: the socket fills and `send` says
/// `WouldBlock` (the caller's send timeout decides what then); a peer that
/// goes away: `send` fails with an I/O error, never a panic or a hang.
#[test]
fn a_stalled_or_vanished_peer_is_a_clean_error() {
    let (file, _) = patterned(32 << 20);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sender = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (receiver, _) = listener.accept().unwrap();
    sender.set_nonblocking(true).unwrap();
    let mut t = Transfer::new(file, 0..32 << 20, &Options::default()).unwrap();
    let mut blocked = false;
    for _ in 0..10_000 {
        match t.send(&sender) {
            Ok(_) => {}
            Err(e) if e.is_would_block() => {
                blocked = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(blocked, "a socket nobody reads must fill");
    assert!(t.remaining() > 0);
    drop(receiver);
    let mut failed = false;
    for _ in 0..10_000 {
        match t.send(&sender) {
            Ok(_) => {}
            Err(e) if e.is_would_block() => common::wait_writable(&sender),
            Err(TransferError::Io(_)) => {
                failed = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(failed, "sending to a closed peer must fail");
}

/// A destination that refuses sendfile (a file opened for appending:
/// `EINVAL`) gets the region by the copy, from exactly where it was; the
/// refusal is counted, and is not blamed on the source's file system (the
/// destination is no socket).
#[test]
fn a_refused_sendfile_falls_back_to_the_copy() {
    let (file, data) = patterned(300_000);
    let mut out = tempfile::NamedTempFile::new().unwrap();
    let appending = OpenOptions::new().append(true).open(out.path()).unwrap();
    let before = counters();
    let mut t = Transfer::new(file, 1000..300_000, &Options::default()).unwrap();
    let mut sent = 0;
    for _ in 0..10_000 {
        if t.is_done() {
            break;
        }
        sent += t.send(&appending).unwrap();
    }
    assert_eq!(sent, 299_000);
    assert_eq!(t.method(), Method::Copy);
    if LINUX {
        assert_eq!(counters().fallbacks - before.fallbacks, 1);
        // The next transfer of a file on the same file system still tries
        // sendfile.
        let (again, _) = patterned(10);
        let t = Transfer::new(again, 0..10, &Options::default()).unwrap();
        assert_eq!(t.method(), Method::Sendfile);
    }
    let mut got = Vec::new();
    out.seek(SeekFrom::Start(0)).unwrap();
    out.read_to_end(&mut got).unwrap();
    assert!(got == data[1000..]);
}

#[test]
fn an_inverted_or_unaddressable_range_is_refused() {
    let (file, _) = patterned(10);
    let (start, end) = (5, 4);
    let err = Transfer::new(file, start..end, &Options::default()).unwrap_err();
    assert!(matches!(
        err,
        TransferError::InvalidRange { start: 5, end: 4 }
    ));
}

/// A head written with "more follows" arrives before the body, whole.
#[test]
fn a_head_goes_out_ahead_of_its_body() {
    use gridmux_sendfile::Sink as _;
    let (file, data) = patterned(10_000);
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n";
    let (sender, reader) = loopback(head.len() + data.len());
    let mut written = 0;
    while written < head.len() {
        match sender.write_more(&head[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => common::wait_writable(&sender),
            Err(e) => panic!("{e}"),
        }
    }
    let mut t = Transfer::new(file, 0..10_000, &Options::default()).unwrap();
    drive(&mut t, &sender, &sender).unwrap();
    drop(sender);
    let got = reader.join().unwrap();
    assert_eq!(&got[..head.len()], head);
    assert!(got[head.len()..] == data[..]);
}
