//! The cost of one observation: a served request and the call that made
//! it, as a node's link drivers report them.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gridmux_core::observe::{BodyPath, CallMade, HttpServed, Observer, Outcome, RequestServed};
use gridmux_metrics::GridMetrics;

fn observe(c: &mut Criterion) {
    let peers: Vec<String> = (0..32).map(|i| format!("10.0.0.{i}:9000")).collect();
    let metrics = GridMetrics::new(&peers, &["files"]);
    let peer = peers[17].clone();
    let served = RequestServed {
        peer: &peer,
        handler: 1,
        subroute: None,
        outcome: Outcome::Ok,
        ttfb: Some(Duration::from_micros(80)),
        duration: Duration::from_micros(85),
        bytes_in: 512,
        bytes_out: 512,
    };
    let call = CallMade {
        peer: &peer,
        handler: 1,
        outcome: Outcome::Ok,
        latency: Duration::from_micros(300),
    };
    c.bench_function("request served + call made", |b| {
        b.iter(|| {
            metrics.request_served(black_box(&served));
            metrics.call_made(black_box(&call));
        });
    });
    c.bench_function("batch sent", |b| {
        b.iter(|| metrics.batch_sent(black_box(&peer), black_box(7)));
    });
    let http = HttpServed {
        route: "files/files",
        method: "GET",
        status: 200,
        ttfb: Some(Duration::from_micros(120)),
        duration: Duration::from_millis(2),
        bytes_out: 1 << 20,
        body: BodyPath::Sendfile,
    };
    c.bench_function("http served", |b| {
        b.iter(|| metrics.http_served(black_box(&http)));
    });
}

criterion_group!(benches, observe);
criterion_main!(benches);
