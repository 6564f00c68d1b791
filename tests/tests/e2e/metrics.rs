//! `GET /metrics` after a known workload: the TTFB histograms count what
//! was served per plane and label, bodyless answers included, cancelled
//! requests without one, TTFB never past the duration; scrapes need the
//! token. The text is also checked by Python's strict OpenMetrics parser
//! where it is installed (`.ci/run` installs it and requires it).

use std::collections::HashMap;
use std::future::IntoFuture;
use std::io::Write;
use std::time::Duration;

use gridmux::{FileLimits, MetricsAccess};

use gridmux_core::cluster::should_dial;

use crate::file_plane::helpers::{raw, signed, FileRoot, Signing};
use crate::harness::{suite, Env};

suite!(a_scrape_counts_what_was_served);

const ECHO: u8 = 1;
const HANG: u8 = 2;
const COUNT: u8 = 3;

/// The samples of an OpenMetrics text: `name{labels}` to value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

async fn a_scrape_counts_what_was_served(env: Env) {
    let root = FileRoot::new();
    root.write("f", &root.patterned(10_000));
    let dir = root.path();
    let c = env
        .cluster(2, move |i, b| {
            let b = b
                .metrics(MetricsAccess::Token)
                .handler(ECHO, |_, p| async move { Ok(p) })
                .handler(HANG, |ctx, _| async move {
                    ctx.cancel_signal().cancelled().await;
                    Ok(bytes::Bytes::new())
                })
                .stream_handler(COUNT, 0, |_, _, _, mut tx| async move {
                    for i in 0..3u8 {
                        tx.send(vec![i]).await.map_err(|e| e.to_string())?;
                    }
                    Ok(())
                });
            if i != 1 {
                return b;
            }
            let resolver = gridmux::sendfile::DirResolver::new(&dir).unwrap();
            b.files("data", resolver).file_limits(FileLimits::default())
        })
        .await;
    let peer = c.peer(0, 1);
    for _ in 0..3 {
        assert_eq!(peer.request(ECHO, "x").await.unwrap(), "x");
    }
    // A stream of 3 messages.
    let (_tx, mut rx) = peer.open_stream(COUNT, "").await.unwrap();
    let mut got = 0;
    while let Some(_m) = rx.recv().await.unwrap() {
        got += 1;
    }
    assert_eq!(got, 3);
    // A request dropped while its handler runs: cancelled, no answer.
    let gone = env
        .maybe_within(
            Duration::from_millis(200),
            peer.request(HANG, "y").into_future(),
        )
        .await;
    assert!(gone.is_none());
    // The file plane: a GET (sendfile), a HEAD, an unsigned GET (401), a
    // range past the end (416).
    let addr = &c.names[1];
    let signing = Signing::cluster();
    assert_eq!(
        raw(addr, &signed(&signing, "GET", "data", "f", None)).status,
        200
    );
    assert_eq!(
        raw(addr, &signed(&signing, "HEAD", "data", "f", None)).status,
        200
    );
    let unsigned = "GET /gridmux/v1/files/data?key=f HTTP/1.1\r\nHost: n\r\n\r\n";
    assert_eq!(raw(addr, unsigned).status, 401);
    let past = signed(&signing, "GET", "data", "f", Some("bytes=20000-"));
    assert_eq!(raw(addr, &past).status, 416);
    // An answer that closes its connection is recorded too.
    let closing = raw(
        addr,
        "GET /health HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(closing.status, 200);
    // Scrapes need the token.
    let scrape = "GET /metrics HTTP/1.1\r\nHost: n\r\n\r\n";
    assert_eq!(raw(addr, scrape).status, 401);
    let token = c.grids[1].metrics_token();
    // The cancelled request's record comes when the cancel arrives.
    let mut text = String::new();
    for _ in 0..100 {
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer {token}\r\n\r\n");
        let answer = raw(addr, &request);
        assert_eq!(answer.status, 200);
        assert!(answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")));
        text = String::from_utf8(answer.body).unwrap();
        // Records are made once an answer is written (and a cancel has
        // arrived): wait until the last of them are in.
        let s = samples(&text);
        let recorded = |key: &str| value(&s, key) >= 1.0;
        if recorded("gridmux_grid_requests_total{handler=\"2\",outcome=\"canceled\"}")
            && recorded(
                "gridmux_http_requests_total{route=\"metrics\",method=\"GET\",status=\"401\"}",
            )
            && recorded(
                "gridmux_http_requests_total{route=\"health\",method=\"GET\",status=\"200\"}",
            )
            && recorded(
                "gridmux_http_requests_total{route=\"files/data\",method=\"GET\",status=\"416\"}",
            )
        {
            break;
        }
        env.sleep(Duration::from_millis(20)).await;
    }
    assert!(text.ends_with("# EOF\n"));
    let s = samples(&text);
    let grid = |h: u8, what: &str| {
        let name = format!("gridmux_{what}{{plane=\"grid\",handler=\"{h}\",route=\"\"}}");
        value(&s, &name)
    };
    assert_eq!(grid(ECHO, "ttfb_seconds_count"), 3.0, "{text}");
    assert_eq!(grid(ECHO, "request_duration_seconds_count"), 3.0);
    // The cancelled request: a duration and an outcome, no TTFB.
    assert_eq!(grid(HANG, "ttfb_seconds_count"), 0.0);
    assert_eq!(grid(HANG, "request_duration_seconds_count"), 1.0);
    let canceled = "gridmux_grid_requests_total{handler=\"2\",outcome=\"canceled\"}";
    assert_eq!(value(&s, canceled), 1.0);
    // The stream: one TTFB (its first message), 3 messages out.
    let stream = |what: &str| {
        let name = format!("gridmux_{what}{{plane=\"stream\",handler=\"{COUNT}\",route=\"\"}}");
        value(&s, &name)
    };
    assert_eq!(stream("ttfb_seconds_count"), 1.0);
    assert_eq!(stream("request_duration_seconds_count"), 1.0);
    let out = "gridmux_stream_messages_total{handler=\"3\",direction=\"out\"}";
    assert_eq!(value(&s, out), 3.0);
    // Every file answer has a TTFB, bodyless ones included.
    let files = "{plane=\"http\",handler=\"\",route=\"files/data\"}";
    assert_eq!(
        value(&s, &format!("gridmux_ttfb_seconds_count{files}")),
        4.0
    );
    for (method, status) in [("GET", 200), ("HEAD", 200), ("GET", 401), ("GET", 416)] {
        let key = format!(
            "gridmux_http_requests_total{{route=\"files/data\",method=\"{method}\",status=\"{status}\"}}"
        );
        assert_eq!(value(&s, &key), 1.0, "{key}");
    }
    let sendfile_body = "gridmux_http_body_bytes_total{route=\"files/data\",body=\"sendfile\"}";
    if cfg!(target_os = "linux") {
        assert_eq!(value(&s, sendfile_body), 10_000.0);
    }
    let health = "gridmux_http_requests_total{route=\"health\",method=\"GET\",status=\"200\"}";
    assert_eq!(value(&s, health), 1.0, "a closing answer was not recorded");
    // The first scrape's 401 is there too.
    let refused = "gridmux_http_requests_total{route=\"metrics\",method=\"GET\",status=\"401\"}";
    assert_eq!(value(&s, refused), 1.0);
    // TTFB never exceeds the duration, label set by label set.
    for (key, sum) in &s {
        if let Some(labels) = key.strip_prefix("gridmux_ttfb_seconds_sum") {
            let duration = value(&s, &format!("gridmux_request_duration_seconds_sum{labels}"));
            assert!(
                *sum <= duration + 1e-9,
                "{labels}: ttfb {sum} > duration {duration}"
            );
        }
    }
    let connected = value(
        &s,
        &format!("gridmux_links_connected_total{{peer=\"{}\"}}", c.names[0]),
    );
    assert!(connected >= 1.0);
    // The link's upgrade is an HTTP answer of the acceptor's, with a TTFB;
    // a refused one (no gridmux headers) is recorded with its status.
    let acceptor = if should_dial(&c.names[0], &c.names[1]) {
        1
    } else {
        0
    };
    let refused_upgrade = format!(
        "GET {} HTTP/1.1\r\nHost: n\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        gridmux_core::link::DEFAULT_PATH
    );
    assert_eq!(raw(&c.names[acceptor], &refused_upgrade).status, 401);
    let a = samples(&c.grids[acceptor].metrics_text().unwrap());
    let connected = value(
        &a,
        &format!(
            "gridmux_links_connected_total{{peer=\"{}\"}}",
            c.names[1 - acceptor]
        ),
    );
    assert!(connected >= 1.0);
    let upgrades = |status| {
        format!(
            "gridmux_http_requests_total{{route=\"upgrade\",method=\"GET\",status=\"{status}\"}}"
        )
    };
    assert_eq!(value(&a, &upgrades(101)), connected);
    assert_eq!(value(&a, &upgrades(401)), 1.0);
    let upgrade_ttfb = "gridmux_ttfb_seconds_count{plane=\"http\",handler=\"\",route=\"upgrade\"}";
    assert_eq!(value(&a, upgrade_ttfb), connected + 1.0);
    strict_parse(&text);
    c.shutdown().await;
}

/// Python's `prometheus_client` OpenMetrics parser, which refuses what
/// the format does not allow. Required when `GRIDMUX_REQUIRE_OPENMETRICS`
/// is set; skipped (with a note) where it is not installed.
fn strict_parse(text: &str) {
    let python = std::env::var("GRIDMUX_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        families = list(text_string_to_metric_families(sys.stdin.read()))\n\
        print(len(families))\n";
    let child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let required = std::env::var_os("GRIDMUX_REQUIRE_OPENMETRICS").is_some();
    let Ok(mut child) = child else {
        assert!(!required, "no {python} for the OpenMetrics parser");
        eprintln!("note: {python} not found: the strict OpenMetrics parse is skipped");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("No module named") {
        assert!(!required, "prometheus_client is not installed for {python}");
        eprintln!("note: prometheus_client not installed: the strict parse is skipped");
        return;
    }
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the text: {stderr}"
    );
}
