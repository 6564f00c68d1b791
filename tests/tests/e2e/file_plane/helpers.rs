//! A scratch directory of files, signed raw requests, and a blocking raw
//! HTTP client (for what `Peer::fetch` does not send).

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gridmux::Keyring;
use gridmux_core::auth::request;
use gridmux_core::http::files::{self, FileToSign};
use gridmux_core::http::{parse_response, Limits, ResponseHead};

/// A directory removed with everything in it when dropped, and a file
/// beside it (outside it).
pub(crate) struct FileRoot {
    base: PathBuf,
}

impl FileRoot {
    pub(crate) fn new() -> Self {
        let base = std::env::temp_dir().join(format!(
            "gridmux-files-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(base.join("root")).unwrap();
        Self { base }
    }

    /// The served directory.
    pub(crate) fn path(&self) -> PathBuf {
        self.base.join("root")
    }

    pub(crate) fn patterned(&self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect()
    }

    pub(crate) fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.path().join(name), data).unwrap();
    }

    /// A file of `len` zero bytes that takes no disk.
    pub(crate) fn sparse(&self, name: &str, len: u64) {
        File::create(self.path().join(name))
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    pub(crate) fn create(&self, name: &str) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path().join(name))
            .unwrap()
    }

    pub(crate) fn truncate(&self, name: &str, len: u64) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.path().join(name))
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    pub(crate) fn mkdir(&self, name: &str) {
        std::fs::create_dir(self.path().join(name)).unwrap();
    }

    /// A file outside the served directory.
    pub(crate) fn outside_file(&self, data: &[u8]) -> PathBuf {
        let path = self.base.join("outside");
        std::fs::write(&path, data).unwrap();
        path
    }

    pub(crate) fn symlink(&self, to: &Path, name: &str) {
        std::os::unix::fs::symlink(to, self.path().join(name)).unwrap();
    }

    /// The xxh3 of a file's bytes from `offset`.
    pub(crate) fn hash_of(&self, name: &str, offset: u64) -> u64 {
        let mut file = File::open(self.path().join(name)).unwrap();
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut skip = offset as usize;
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                return hasher.digest();
            }
            let from = skip.min(n);
            skip -= from;
            hasher.update(&buf[from..n]);
        }
    }
}

impl Drop for FileRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// How a raw request is signed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signing {
    pub(crate) secret: &'static str,
    /// Seconds from now to the expiry (negative: already expired).
    pub(crate) expires_in: i64,
    /// The name signed as.
    pub(crate) signer: &'static str,
}

impl Signing {
    /// As a node of the test cluster signs.
    pub(crate) fn cluster() -> Self {
        Self {
            secret: "e2e secret",
            expires_in: 30,
            signer: "raw-client",
        }
    }
}

/// A request for `key` on `route`, presigned in its URL.
pub(crate) fn signed(
    signing: &Signing,
    method: &str,
    route: &str,
    key: &str,
    range: Option<&str>,
) -> String {
    let keys = Keyring::new([signing.secret]).unwrap();
    let now = request::expires_at(SystemTime::now(), Duration::ZERO);
    let signed = files::sign(
        &keys,
        &FileToSign {
            method,
            route,
            key,
            range,
            signer: signing.signer,
            expires: now.saturating_add_signed(signing.expires_in),
        },
    )
    .unwrap();
    let mut text = format!(
        "{method} {} HTTP/1.1\r\nHost: n\r\n",
        signed.presigned_target()
    );
    if let Some(range) = range {
        text.push_str(&format!("Range: {range}\r\n"));
    }
    text + "\r\n"
}

/// A response read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    head: ResponseHead,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.header_str(name)
    }
}

/// A blocking connection with read and write timeouts.
pub(crate) fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Closes `s` with a reset (`SO_LINGER` 0) instead of a FIN.
pub(crate) fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// Where the head in `bytes` ends.
pub(crate) fn head_len(bytes: &[u8]) -> usize {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4
}

/// One request on a fresh connection.
pub(crate) fn raw(addr: &str, request: &str) -> Answer {
    raw_many(addr, &[request.to_owned()]).pop().unwrap()
}

/// Requests pipelined in one write on one connection, answers in order.
pub(crate) fn raw_many(addr: &str, requests: &[String]) -> Vec<Answer> {
    let mut s = connect(addr);
    s.write_all(requests.concat().as_bytes()).unwrap();
    let mut input = Vec::new();
    let mut answers = Vec::new();
    for request in requests {
        let head_request = request.starts_with("HEAD ");
        let (head, len) = loop {
            if let Some(parsed) = parse_response(&input, Limits::default()).unwrap() {
                break parsed;
            }
            read_more(&mut s, &mut input);
        };
        input.drain(..len);
        let body_len = head.body_len(head_request).unwrap() as usize;
        while input.len() < body_len {
            read_more(&mut s, &mut input);
        }
        let body = input.drain(..body_len).collect();
        answers.push(Answer {
            status: head.status,
            head,
            body,
        });
    }
    answers
}

fn read_more(s: &mut TcpStream, input: &mut Vec<u8>) {
    let mut buf = [0u8; 64 * 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0, "connection closed early");
    input.extend_from_slice(&buf[..n]);
}
