//! The file plane of a node: signed `GET`/`HEAD` served with sendfile,
//! fetched with `Peer::fetch` (into memory or spliced into a file), and
//! every way a request or a transfer can go wrong.

mod bad_servers;
pub(crate) mod helpers;

use std::io::{Read, Write};
use std::time::Duration;

use gridmux::sendfile::{counters, Method};
use gridmux::{FetchError, FileError, FileLimits, FileRegion, Signer};
use xxhash_rust::xxh3::xxh3_64;

use self::helpers::{raw, raw_many, signed, FileRoot, Signing};
use crate::harness::{suite, tls_suite, Cluster, Env};

tls_suite!(files_arrive_byte_exact);

suite!(
    files_arrive_byte_exact,
    ranges_are_served_and_checked,
    head_answers_carry_the_headers_and_no_body,
    signatures_are_required_and_checked,
    keys_cannot_leave_the_root,
    a_reset_mid_transfer_leaves_the_node_serving,
    a_truncated_file_is_never_a_complete_body,
    a_peer_that_stops_reading_is_cut_off_alone,
    sixty_four_fetches_at_once,
    transfers_past_the_limits_are_refused_with_503,
    the_copy_path_serves_when_configured,
    bodies_sent_from_threads_are_whole_or_cut_off,
    a_fetch_accepts_no_wrong_answer,
    a_fetch_writes_only_where_offsets_hold,
    signer_names_buy_no_extra_places,
);

use self::bad_servers::{a_fetch_accepts_no_wrong_answer, a_fetch_writes_only_where_offsets_hold};

/// Two nodes; node 1 serves `root` under route `data` (and `short`: a
/// handler that claims 1 MiB more than its file has).
async fn cluster(env: &Env, root: &FileRoot, limits: FileLimits) -> Cluster {
    let dir = root.path();
    env.cluster(2, move |i, b| {
        if i != 1 {
            return b;
        }
        let resolver = gridmux::sendfile::DirResolver::new(&dir).unwrap();
        let short_dir = dir.clone();
        b.files("data", resolver)
            .files("short", move |key: &str, _: Signer<'_>| {
                let file = std::fs::File::open(short_dir.join(key)).map_err(FileError::Io)?;
                let mut region = FileRegion::whole(file)?;
                region.len += 1 << 20;
                Ok(region)
            })
            .file_limits(limits.clone())
    })
    .await
}

async fn files_arrive_byte_exact(env: Env) {
    let root = FileRoot::new();
    let sizes = [0usize, 1, 4095, (4 << 20) + 1];
    for (i, len) in sizes.iter().enumerate() {
        root.write(&format!("f{i}"), &root.patterned(*len));
    }
    root.sparse("sparse", 64 << 20);
    let c = cluster(&env, &root, FileLimits::default()).await;
    let peer = c.peer(0, 1);
    let before = counters();
    let mut served = 0u64;
    for (i, len) in sizes.iter().enumerate() {
        let body = peer.fetch("data", &format!("f{i}"), None).await.unwrap();
        assert_eq!((body.status(), body.len()), (200, *len as u64));
        let got = body.to_vec().await.unwrap();
        assert_eq!(xxh3_64(&got), xxh3_64(&root.patterned(*len)), "{len} bytes");
        served += *len as u64;
    }
    // 64 MiB, spliced into a file at an offset.
    let out = root.create("out.bin");
    let n = env
        .within(
            Duration::from_secs(60),
            peer.fetch_to_file("data", "sparse", None, &out, 4096),
        )
        .await
        .unwrap();
    assert_eq!(n, 64 << 20);
    assert_eq!(out.metadata().unwrap().len(), 4096 + (64 << 20));
    assert_eq!(root.hash_of("out.bin", 4096), root.hash_of("sparse", 0));
    served += 64 << 20;
    let after = counters();
    // Over TLS the bodies are copied through the session both ways (a
    // byte sent around it would have broken the session, not this check).
    if cfg!(target_os = "linux") && env.tls.is_none() {
        // The bodies went out with sendfile and came in with splice.
        assert!(after.sendfile_bytes - before.sendfile_bytes >= served);
        let (spliced, copied) = (
            after.spliced_bytes - before.spliced_bytes,
            after.received_by_copy - before.received_by_copy,
        );
        // All but what came with the response head (one read of 4 KiB).
        assert!(
            spliced >= (64 << 20) - 4096,
            "spliced {spliced}, copied {copied}"
        );
    }
    c.shutdown().await;
}

async fn ranges_are_served_and_checked(env: Env) {
    let root = FileRoot::new();
    let data = root.patterned(10_000);
    root.write("r", &data);
    let c = cluster(&env, &root, FileLimits::default()).await;
    let peer = c.peer(0, 1);
    for range in [0..1, 9_999..10_000, 1_000..5_000, 9_000..20_000] {
        let body = peer.fetch("data", "r", Some(range.clone())).await.unwrap();
        assert_eq!(body.status(), 206);
        let end = range.end.min(10_000) as usize;
        assert_eq!(
            body.to_vec().await.unwrap(),
            &data[range.start as usize..end]
        );
    }
    let past = peer
        .fetch("data", "r", Some(10_000..10_001))
        .await
        .unwrap_err();
    assert!(
        matches!(past, FetchError::Status { status: 416, .. }),
        "{past}"
    );
    let empty = peer.fetch("data", "r", Some(5..5)).await.unwrap_err();
    assert!(matches!(empty, FetchError::InvalidRange(_)));
    // The forms the fetching side does not send, over raw HTTP.
    let signing = Signing::cluster();
    let addr = &c.names[1];
    let suffix = raw(
        addr,
        &signed(&signing, "GET", "data", "r", Some("bytes=-10")),
    );
    assert_eq!(suffix.status, 206);
    assert_eq!(
        suffix.header("content-range"),
        Some("bytes 9990-9999/10000")
    );
    assert_eq!(suffix.body, &data[9_990..]);
    let beyond = raw(
        addr,
        &signed(&signing, "GET", "data", "r", Some("bytes=10000-")),
    );
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */10000"));
    assert_eq!(beyond.header("content-length"), Some("0"));
    c.shutdown().await;
}

async fn head_answers_carry_the_headers_and_no_body(env: Env) {
    let root = FileRoot::new();
    root.write("h", &root.patterned(5_000));
    let c = cluster(&env, &root, FileLimits::default()).await;
    let signing = Signing::cluster();
    // HEAD, then GET, pipelined on one connection: the GET's answer
    // follows the HEAD's head at once (no body in between).
    let answers = raw_many(
        &c.names[1],
        &[
            signed(&signing, "HEAD", "data", "h", None),
            signed(&signing, "GET", "data", "h", None),
        ],
    );
    let (head, get) = (&answers[0], &answers[1]);
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("5000"));
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    assert!(head.header("etag").is_some_and(|e| e.starts_with('"')));
    assert!(head
        .header("last-modified")
        .is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!((get.status, get.body.len()), (200, 5_000));
    assert_eq!(head.header("etag"), get.header("etag"));
    c.shutdown().await;
}

async fn signatures_are_required_and_checked(env: Env) {
    let root = FileRoot::new();
    root.write("s", b"secret bytes");
    let c = cluster(&env, &root, FileLimits::default()).await;
    let addr = &c.names[1];
    let ok = Signing::cluster();
    let unsigned = "GET /gridmux/v1/files/data?key=s HTTP/1.1\r\nHost: n\r\n\r\n".to_owned();
    let answer = raw(addr, &unsigned);
    assert_eq!(answer.status, 401);
    assert!(answer.header("www-authenticate").is_some());
    let wrong_key = Signing {
        secret: "not the cluster secret",
        ..Signing::cluster()
    };
    let expired = Signing {
        expires_in: -5,
        ..Signing::cluster()
    };
    let too_long = Signing {
        expires_in: 3_600,
        ..Signing::cluster()
    };
    for (why, request) in [
        ("wrong key", signed(&wrong_key, "GET", "data", "s", None)),
        ("expired", signed(&expired, "GET", "data", "s", None)),
        (
            "valid too long",
            signed(&too_long, "GET", "data", "s", None),
        ),
        (
            "tampered range",
            signed(&ok, "GET", "data", "s", Some("bytes=0-1")).replace("bytes=0-1", "bytes=0-9"),
        ),
        (
            "another key",
            signed(&ok, "GET", "data", "s", None).replace("key=s", "key=t"),
        ),
        (
            "HEAD's signature on a GET",
            signed(&ok, "HEAD", "data", "s", None).replacen("HEAD", "GET", 1),
        ),
    ] {
        let answer = raw(addr, &request);
        assert_eq!(answer.status, 403, "{why}");
        assert_eq!(answer.body, b"request signature refused\n", "{why}");
    }
    assert_eq!(
        raw(addr, &signed(&ok, "GET", "data", "s", None)).body,
        b"secret bytes"
    );
    c.shutdown().await;
}

async fn keys_cannot_leave_the_root(env: Env) {
    let root = FileRoot::new();
    root.write("inside", b"in");
    root.mkdir("dir");
    let outside = root.outside_file(b"outside");
    root.symlink(&outside, "link-out");
    let c = cluster(&env, &root, FileLimits::default()).await;
    let peer = c.peer(0, 1);
    for key in ["../x", "/etc/passwd", "dir/../../x", "link-out", "a\\..\\b"] {
        let err = peer.fetch("data", key, None).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Status {
                    status: 400 | 404,
                    ..
                }
            ),
            "{key}: {err}"
        );
    }
    for (key, status) in [("dir", 404), ("missing", 404)] {
        let err = peer.fetch("data", key, None).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Status { status: s, .. } if s == status),
            "{key}"
        );
    }
    let signing = Signing::cluster();
    let nul = signed(&signing, "GET", "data", "a\0b", None);
    assert_eq!(raw(&c.names[1], &nul).status, 400);
    let unknown = peer.fetch("nope", "inside", None).await.unwrap_err();
    assert!(matches!(unknown, FetchError::Status { status: 404, .. }));
    assert_eq!(
        peer.fetch("data", "inside", None)
            .await
            .unwrap()
            .to_vec()
            .await
            .unwrap(),
        b"in"
    );
    c.shutdown().await;
}

async fn a_reset_mid_transfer_leaves_the_node_serving(env: Env) {
    let root = FileRoot::new();
    root.sparse("big", 64 << 20);
    root.write("small", b"small");
    let limits = FileLimits {
        max_transfers: 1,
        ..FileLimits::default()
    };
    let c = cluster(&env, &root, limits).await;
    let signing = Signing::cluster();
    let mut s = helpers::connect(&c.names[1]);
    s.write_all(signed(&signing, "GET", "data", "big", None).as_bytes())
        .unwrap();
    let mut first = vec![0u8; 1 << 20];
    s.read_exact(&mut first).unwrap();
    helpers::reset(s);
    // The transfer ends and frees its place: the one allowed transfer is
    // available again, and the node serves on.
    let peer = c.peer(0, 1);
    let mut served = None;
    for _ in 0..100 {
        match peer.fetch("data", "small", None).await {
            Ok(body) => {
                served = Some(body.to_vec().await.unwrap());
                break;
            }
            Err(FetchError::Status { status: 503, .. }) => {
                env.sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(served.as_deref(), Some(&b"small"[..]));
    c.shutdown().await;
}

async fn a_truncated_file_is_never_a_complete_body(env: Env) {
    let root = FileRoot::new();
    root.write("t", &root.patterned(300_000));
    let c = cluster(&env, &root, FileLimits::default()).await;
    let peer = c.peer(0, 1);
    // The handler announces 1 MiB more than the file holds.
    let body = peer.fetch("short", "t", None).await.unwrap();
    assert_eq!(body.len(), 300_000 + (1 << 20));
    let err = body.to_vec().await.unwrap_err();
    assert!(
        matches!(err, FetchError::ShortBody { expected, received } if expected == 300_000 + (1 << 20) && received == 300_000),
        "{err}"
    );
    let out = root.create("t.out");
    let err = peer
        .fetch_to_file("short", "t", None, &out, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::ShortBody { .. }), "{err}");
    // A range inside what the file has is served in full.
    let part = peer.fetch("short", "t", Some(0..1000)).await.unwrap();
    assert_eq!(part.to_vec().await.unwrap().len(), 1000);
    // A file truncated on disk while it goes out ends the same way.
    root.write("shrinks", &root.patterned(8 << 20));
    let signing = Signing::cluster();
    let mut s = helpers::connect(&c.names[1]);
    s.write_all(signed(&signing, "GET", "data", "shrinks", None).as_bytes())
        .unwrap();
    let mut start = vec![0u8; 64 << 10];
    s.read_exact(&mut start).unwrap();
    root.truncate("shrinks", 1 << 20);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let head_len = helpers::head_len(&start);
    let body = start.len() - head_len + rest.len();
    assert!(body < 8 << 20, "a truncated file passed as whole");
    assert_eq!(peer.fetch("data", "t", None).await.unwrap().len(), 300_000);
    c.shutdown().await;
}

async fn a_peer_that_stops_reading_is_cut_off_alone(env: Env) {
    let root = FileRoot::new();
    root.sparse("big", 64 << 20);
    root.write("small", b"small");
    let limits = FileLimits {
        send_timeout: Duration::from_millis(300),
        ..FileLimits::default()
    };
    let c = cluster(&env, &root, limits).await;
    let signing = Signing::cluster();
    let mut s = helpers::connect(&c.names[1]);
    s.write_all(signed(&signing, "GET", "data", "big", None).as_bytes())
        .unwrap();
    // While it does not read, everything else goes on.
    let peer = c.peer(0, 1);
    for _ in 0..5 {
        let body = peer.fetch("data", "small", None).await.unwrap();
        assert_eq!(body.to_vec().await.unwrap(), b"small");
        assert_eq!(
            peer.request(1, "x").timeout(Duration::from_secs(2)).await,
            Err(gridmux::Error::UnknownHandler)
        );
    }
    env.sleep(Duration::from_millis(1500)).await;
    // Past the send timeout the node closed it: far less than the file.
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.len() < 64 << 20, "the stalled transfer was not ended");
    c.shutdown().await;
}

async fn sixty_four_fetches_at_once(env: Env) {
    let root = FileRoot::new();
    for i in 0..8 {
        root.write(&format!("c{i}"), &root.patterned(256 * 1024 + i));
    }
    let c = cluster(&env, &root, FileLimits::default()).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let peer = c.peer(0, 1);
            env.spawn(async move {
                let key = format!("c{}", i % 8);
                let body = peer.fetch("data", &key, None).await?;
                Ok::<_, FetchError>((i % 8, body.to_vec().await?))
            })
        })
        .collect();
    for task in tasks {
        let (i, got) = env.within(Duration::from_secs(30), task).await.unwrap();
        assert_eq!(xxh3_64(&got), xxh3_64(&root.patterned(256 * 1024 + i)));
    }
    c.shutdown().await;
}

async fn transfers_past_the_limits_are_refused_with_503(env: Env) {
    let root = FileRoot::new();
    root.sparse("big", 64 << 20);
    let limits = FileLimits {
        max_transfers_per_peer: 1,
        ..FileLimits::default()
    };
    let c = cluster(&env, &root, limits).await;
    let signing = Signing::cluster();
    // One signer's transfer that is not read holds its one place.
    let mut s = helpers::connect(&c.names[1]);
    s.write_all(signed(&signing, "GET", "data", "big", None).as_bytes())
        .unwrap();
    let mut first = [0u8; 1024];
    s.read_exact(&mut first).unwrap();
    let busy = raw(&c.names[1], &signed(&signing, "GET", "data", "big", None));
    assert_eq!(busy.status, 503);
    assert_eq!(busy.header("retry-after"), Some("1"));
    // HEAD needs no place; another signer (node 0) has its own.
    let head = raw(&c.names[1], &signed(&signing, "HEAD", "data", "big", None));
    assert_eq!(head.status, 200);
    let other = c
        .peer(0, 1)
        .fetch("data", "big", Some(0..10))
        .await
        .unwrap();
    assert_eq!(other.to_vec().await.unwrap(), vec![0u8; 10]);
    drop(s);
    c.shutdown().await;
}

async fn the_copy_path_serves_when_configured(env: Env) {
    let root = FileRoot::new();
    let data = root.patterned(3 << 20);
    root.write("copy", &data);
    let mut limits = FileLimits::default();
    limits.transfer.method = Method::Copy;
    let c = cluster(&env, &root, limits).await;
    let before = counters();
    let body = c.peer(0, 1).fetch("data", "copy", None).await.unwrap();
    assert_eq!(xxh3_64(&body.to_vec().await.unwrap()), xxh3_64(&data));
    assert!(counters().copy_bytes - before.copy_bytes >= 3 << 20);
    c.shutdown().await;
}

async fn bodies_sent_from_threads_are_whole_or_cut_off(env: Env) {
    let root = FileRoot::new();
    let data = root.patterned((4 << 20) + 1);
    root.write("t", &data);
    root.write("small", b"small");
    root.sparse("big", 64 << 20);
    let limits = FileLimits {
        send_on_thread: true,
        send_timeout: Duration::from_millis(300),
        ..FileLimits::default()
    };
    let c = cluster(&env, &root, limits).await;
    let peer = c.peer(0, 1);
    let body = peer.fetch("data", "t", None).await.unwrap();
    assert_eq!(xxh3_64(&body.to_vec().await.unwrap()), xxh3_64(&data));
    let empty = peer.fetch("data", "t", Some(7..8)).await.unwrap();
    assert_eq!(empty.to_vec().await.unwrap(), &data[7..8]);
    // Truncated: never whole.
    let err = peer
        .fetch("short", "t", None)
        .await
        .unwrap()
        .to_vec()
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::ShortBody { .. }), "{err}");
    // A client that stops reading is cut off at the stall timeout, and the
    // node serves on meanwhile.
    let signing = Signing::cluster();
    let mut s = helpers::connect(&c.names[1]);
    s.write_all(signed(&signing, "GET", "data", "big", None).as_bytes())
        .unwrap();
    let body = peer.fetch("data", "small", None).await.unwrap();
    assert_eq!(body.to_vec().await.unwrap(), b"small");
    env.sleep(Duration::from_millis(1500)).await;
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.len() < 64 << 20, "the stalled transfer was not ended");
    c.shutdown().await;
}

async fn signer_names_buy_no_extra_places(env: Env) {
    let root = FileRoot::new();
    root.sparse("big", 64 << 20);
    let limits = FileLimits {
        max_transfers_per_peer: 1,
        ..FileLimits::default()
    };
    let dir = root.path();
    let c = env
        .cluster(2, move |i, b| {
            let b = b.client_secrets(["client secret 0123456789"]);
            if i != 1 {
                return b;
            }
            let resolver = gridmux::sendfile::DirResolver::new(&dir).unwrap();
            b.files("data", resolver).file_limits(limits.clone())
        })
        .await;
    let addr = &c.names[1];
    // A tool's transfer that is not read holds the allowance that every
    // signer but the members shares: another invented name gets none.
    let tool = Signing {
        signer: "tool-a",
        ..Signing::cluster()
    };
    let mut s = helpers::connect(addr);
    s.write_all(signed(&tool, "GET", "data", "big", None).as_bytes())
        .unwrap();
    let mut first = [0u8; 1024];
    s.read_exact(&mut first).unwrap();
    let renamed = Signing {
        signer: "tool-b",
        ..Signing::cluster()
    };
    assert_eq!(
        raw(addr, &signed(&renamed, "GET", "data", "big", None)).status,
        503
    );
    // A member has its own.
    let member = c
        .peer(0, 1)
        .fetch("data", "big", Some(0..10))
        .await
        .unwrap();
    assert_eq!(member.to_vec().await.unwrap(), vec![0u8; 10]);
    // A client secret cannot sign as a member, and its other names share
    // the same allowance.
    let leaked: &'static str = Box::leak(c.names[0].clone().into_boxed_str());
    let as_member = Signing {
        secret: "client secret 0123456789",
        signer: leaked,
        ..Signing::cluster()
    };
    assert_eq!(
        raw(addr, &signed(&as_member, "HEAD", "data", "big", None)).status,
        403
    );
    let client = Signing {
        secret: "client secret 0123456789",
        signer: "client-c",
        ..Signing::cluster()
    };
    assert_eq!(
        raw(addr, &signed(&client, "HEAD", "data", "big", None)).status,
        200
    );
    assert_eq!(
        raw(addr, &signed(&client, "GET", "data", "big", None)).status,
        503
    );
    drop(s);
    c.shutdown().await;
}
