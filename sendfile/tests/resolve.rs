//! The directory resolver refuses every way out of its root.

use std::fs;
use std::io::Write;

use gridmux_sendfile::{DirResolver, ResolveError};

fn tree() -> (tempfile::TempDir, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("dir")).unwrap();
    fs::File::create(root.path().join("dir/data.bin"))
        .unwrap()
        .write_all(b"inside")
        .unwrap();
    fs::File::create(outside.path().join("secret"))
        .unwrap()
        .write_all(b"outside")
        .unwrap();
    (root, outside)
}

#[test]
fn a_plain_key_opens_its_file() {
    let (root, _) = tree();
    let r = DirResolver::new(root.path()).unwrap();
    let f = r.open("dir/data.bin").unwrap();
    assert_eq!(f.len, 6);
    assert!(f.modified.is_some());
}

#[test]
fn keys_that_are_no_plain_relative_path_are_invalid() {
    let (root, outside) = tree();
    let r = DirResolver::new(root.path()).unwrap();
    let absolute = outside.path().join("secret");
    let escapes = [
        "",
        "..",
        "../secret",
        "dir/../../secret",
        "dir/./data.bin",
        "dir//data.bin",
        "dir/data.bin\0",
        "dir\\data.bin",
        "/etc/passwd",
        absolute.to_str().unwrap(),
    ];
    for key in escapes {
        assert!(
            matches!(r.open(key), Err(ResolveError::InvalidKey(_))),
            "{key:?}: {:?}",
            r.open(key)
        );
    }
}

#[cfg(unix)]
#[test]
fn symbolic_links_may_not_lead_out() {
    use std::os::unix::fs::symlink;
    let (root, outside) = tree();
    symlink(outside.path().join("secret"), root.path().join("to-file")).unwrap();
    symlink(outside.path(), root.path().join("to-dir")).unwrap();
    symlink("../..", root.path().join("dir/up")).unwrap();
    symlink("data.bin", root.path().join("dir/alias")).unwrap();
    let r = DirResolver::new(root.path()).unwrap();
    for key in ["to-file", "to-dir/secret", "dir/up/etc/passwd"] {
        let got = r.open(key);
        assert!(
            matches!(
                got,
                Err(ResolveError::InvalidKey(_) | ResolveError::NotFound)
            ),
            "{key}: {got:?}"
        );
        assert!(got.is_err());
    }
    // A link that stays beneath the root is fine.
    assert_eq!(r.open("dir/alias").unwrap().len, 6);
}

#[test]
fn directories_and_missing_files_are_not_found() {
    let (root, _) = tree();
    let r = DirResolver::new(root.path()).unwrap();
    assert!(matches!(r.open("dir"), Err(ResolveError::NotFound)));
    assert!(matches!(r.open("nothing"), Err(ResolveError::NotFound)));
    assert!(matches!(
        r.open("dir/data.bin/x"),
        Err(ResolveError::NotFound)
    ));
}

#[cfg(unix)]
#[test]
fn fifos_and_overlong_keys_are_refused_without_waiting() {
    let (root, _) = tree();
    let fifo = root.path().join("pipe");
    let mode = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, mode).unwrap();
    let r = DirResolver::new(root.path()).unwrap();
    // Without O_NONBLOCK this open would wait for a writer forever.
    assert!(matches!(r.open("pipe"), Err(ResolveError::NotFound)));
    let long = "x".repeat(5000);
    assert!(matches!(r.open(&long), Err(ResolveError::InvalidKey(_))));
}
