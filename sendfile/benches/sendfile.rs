//! Sending a 64 MiB file (warm in the page cache) over loopback TCP:
//! `sendfile`, the `pread` + `write` copy, and a plain write of the same
//! bytes from memory (the loopback limit), in one run. Two groups: wall
//! time (throughput), and the sending thread's CPU time (CPU-seconds per
//! byte is what sendfile saves). The receiver is the same thread reading
//! into one buffer for every row.

#![allow(missing_docs)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gridmux_sendfile::{Method, Options, Sink, Transfer};

const LEN: u64 = 64 << 20;

fn pair() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut receiver, _) = listener.accept().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        while !matches!(receiver.read(&mut buf), Ok(0) | Err(_)) {}
    });
    sender.set_nonblocking(true).unwrap();
    sender
}

fn wait_writable(socket: &impl AsFd) {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(socket, PollFlags::OUT)];
    let _ = poll(&mut fds, None);
}

fn send_file(sender: &TcpStream, file: &File, method: Method) {
    let opts = Options {
        method,
        prefetch: false,
        ..Options::default()
    };
    let mut t = Transfer::new(file.try_clone().unwrap(), 0..LEN, &opts).unwrap();
    while !t.is_done() {
        match t.send(sender) {
            Ok(_) => {}
            Err(e) if e.is_would_block() => wait_writable(sender),
            Err(e) => panic!("{e}"),
        }
    }
}

/// The same transfer on a blocking socket: each call sends its whole
/// chunk (no `WouldBlock`, no wait for readiness).
fn send_file_blocking(sender: &TcpStream, file: &File) {
    sender.set_nonblocking(false).unwrap();
    let opts = Options {
        prefetch: false,
        ..Options::default()
    };
    let mut t = Transfer::new(file.try_clone().unwrap(), 0..LEN, &opts).unwrap();
    while !t.is_done() {
        t.send(sender).unwrap();
    }
    sender.set_nonblocking(true).unwrap();
}

fn send_memory(sender: &TcpStream, data: &[u8]) {
    let mut at = 0;
    while at < data.len() {
        match sender.write_some(&data[at..]) {
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_writable(sender),
            Err(e) => panic!("{e}"),
        }
    }
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn bench(c: &mut Criterion) {
    let data: Vec<u8> = (0..LEN as usize).map(|i| (i % 251) as u8).collect();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&data).unwrap();
    let sender = pair();
    type Row<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let rows: Vec<Row<'_>> = vec![
        (
            "sendfile",
            Box::new(|| send_file(&sender, &file, Method::Sendfile)),
        ),
        ("copy", Box::new(|| send_file(&sender, &file, Method::Copy))),
        (
            "sendfile_blocking_socket",
            Box::new(|| send_file_blocking(&sender, &file)),
        ),
        ("memory", Box::new(|| send_memory(&sender, &data))),
    ];
    let mut wall = c.benchmark_group("send_64MiB_wall");
    wall.throughput(Throughput::Bytes(LEN)).sample_size(10);
    for (name, run) in &rows {
        wall.bench_function(*name, |b| b.iter(run));
    }
    wall.finish();
    // Reported as time per iteration, but the time is the sending thread's
    // CPU time: divide by 64 MiB for CPU-seconds per byte.
    let mut cpu = c.benchmark_group("send_64MiB_sender_cpu");
    cpu.throughput(Throughput::Bytes(LEN)).sample_size(10);
    for (name, run) in &rows {
        cpu.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let start = thread_cpu();
                for _ in 0..iters {
                    run();
                }
                thread_cpu() - start
            });
        });
    }
    cpu.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
