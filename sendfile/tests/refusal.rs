//! A socket whose sendfile is refused: the file system is remembered, and
//! later transfers of its files copy from the start. (A test binary of its
//! own: the memory is process-wide.)

mod common;

use std::fs::File;
use std::io;
use std::net::TcpStream;

use common::{drive, loopback, patterned};
use gridmux_sendfile::{counters, Method, Options, Sink, Transfer};

/// A socket on a platform (or file system) without sendfile.
struct Refusing(TcpStream);

impl Sink for Refusing {
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_some(buf)
    }
    fn send_file(&self, _: &File, _: &mut u64, _: usize) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(
            rustix::io::Errno::OPNOTSUPP.raw_os_error(),
        ))
    }
    fn is_socket(&self) -> bool {
        true
    }
}

#[test]
fn a_file_system_that_refuses_is_remembered() {
    let (file, data) = patterned(200_000);
    let (sender, reader) = loopback(data.len());
    let sender = Refusing(sender);
    let before = counters();
    let mut t = Transfer::new(file, 0..200_000, &Options::default()).unwrap();
    assert_eq!(t.method(), Method::Sendfile);
    drive(&mut t, &sender, &sender.0).unwrap();
    assert_eq!(t.method(), Method::Copy);
    assert_eq!(t.sent_by(), (0, 200_000));
    drop(sender);
    assert!(reader.join().unwrap() == data);
    assert_eq!(counters().fallbacks - before.fallbacks, 1);
    // Another file of the same file system copies from the start.
    let (other, _) = patterned(10);
    let t = Transfer::new(other, 0..10, &Options::default()).unwrap();
    assert_eq!(t.method(), Method::Copy);
}
