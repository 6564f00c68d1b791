//! Reloads that overlap, one of them stuck on its files.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{ClientAuth, TlsConfig};
use crate::tls::test_identity::identity;

/// Replaces `path` at once (written beside it, then renamed).
fn put(path: &Path, text: &str) {
    let part = path.with_extension("part");
    std::fs::write(&part, text).unwrap();
    std::fs::rename(&part, path).unwrap();
}

/// Review of the SIGHUP reload: a reload stuck on its files (the key a
/// FIFO nobody writes) holds up no other reload, and when it ends at last
/// it does not put back the older files over the newer ones.
#[test]
fn a_reload_that_blocks_holds_up_no_other_and_never_wins_late() {
    let dir = std::env::temp_dir().join(format!("gridmux-reloads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let [crt, key, ca]: [PathBuf; 3] = ["n.crt", "n.key", "n.ca"].map(|n| dir.join(n));
    let (first, second) = (identity(), identity());
    put(&crt, &first.cert);
    put(&key, &first.key);
    put(&ca, &first.ca);
    let tls = TlsConfig::from_files(&crt, &key, &ca, ClientAuth::None).unwrap();
    std::fs::remove_file(&key).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let stuck = {
        let tls = tls.clone();
        std::thread::spawn(move || tls.reload())
    };
    let since = Instant::now();
    while tls.0.reloads.load(Ordering::Relaxed) == 0 {
        assert!(since.elapsed() < Duration::from_secs(5), "the reload began");
        std::thread::sleep(Duration::from_millis(1));
    }
    // A writer that stays keeps the stuck reload reading (and gives the
    // test the FIFO to end it with, once the path is a file again).
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&key)
        .unwrap();
    put(&crt, &second.cert);
    put(&key, &second.key);
    put(&ca, &second.ca);
    let newest = tls.files_stamp().expect("the second files");
    let (done, finished) = mpsc::channel();
    {
        let tls = tls.clone();
        std::thread::spawn(move || done.send(tls.reload()));
    }
    let newer = finished.recv_timeout(Duration::from_secs(5));
    // The stuck one ends: the first key, then no more.
    fifo.write_all(first.key.as_bytes()).unwrap();
    drop(fifo);
    let late = stuck.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    newer
        .expect("a reload waited for the stuck one")
        .expect("the newer files load");
    late.expect("the stuck reload's files load too (the CA is a valid one)");
    assert_eq!(
        tls.loaded_stamp(),
        Some(newest),
        "the identity in use is the newest files'"
    );
}
