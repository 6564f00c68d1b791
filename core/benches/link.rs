//! Grid link benchmarks: an in-memory pair of links, no IO. Requests per
//! second (full round trips) and stream messages per second at 0 B, 512 B
//! and 4 KiB, with 64 exchanges in flight per batch, plus the heap
//! allocations and bytes allocated per message, counted by a wrapping
//! allocator and printed before the timings.
//!
//! The "wire" between the links is one `Vec` copy per transfer, standing
//! in for the kernel's socket copy.
#![allow(unsafe_code)] // the counting allocator below

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gridmux_core::auth::Keyring;
use gridmux_core::cluster::should_dial;
use gridmux_core::link::{Event, HandlerKind, Link, LinkConfig, StreamOpts};
use gridmux_core::mux::MuxId;
use gridmux_core::observe::{CallMade, Observer, RequestServed};
use gridmux_core::ws::Transmit;
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// Counts allocations so the bench can report them per message.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SIZES: [(usize, &str); 3] = [(0, "0B"), (512, "512B"), (4096, "4KiB")];
/// Exchanges in flight per batch.
const BATCH: usize = 64;

/// Two links joined by an in-memory wire.
struct Pair {
    now: Instant,
    links: [Link; 2],
    wire: [BytesMut; 2],
    out: Transmit,
}

/// An observer that counts records (as cheap as one can be): what the
/// core's own bookkeeping for records costs shows against [`NoObserver`].
#[derive(Debug, Default)]
struct CountingObserver(AtomicU64);

impl Observer for CountingObserver {
    fn request_served(&self, _: &RequestServed<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn call_made(&self, _: &CallMade<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Pair {
    fn new() -> Self {
        Self::with_observer(None)
    }

    fn with_observer(observer: Option<Arc<dyn Observer>>) -> Self {
        let (a, b) = if should_dial("a:1", "b:1") {
            ("a:1", "b:1")
        } else {
            ("b:1", "a:1")
        };
        let peers = vec![a.to_owned(), b.to_owned()];
        let auth = Arc::new(Keyring::new(["bench"]).expect("a non-empty secret"));
        let config = |me: &str| {
            let mut c = LinkConfig::new(me, peers.clone(), [1; 16], auth.clone());
            c.handlers.register(1, None, HandlerKind::Request).unwrap();
            c.handlers
                .register(2, None, HandlerKind::Stream { in_capacity: 64 })
                .unwrap();
            if let Some(o) = &observer {
                c.observer = o.clone();
            }
            Arc::new(c)
        };
        #[expect(clippy::disallowed_methods, reason = "the bench's clock origin")]
        let (now, wall) = (Instant::now(), SystemTime::now());
        let rng = Box::new(SmallRng::seed_from_u64(1));
        let mut pair = Self {
            now,
            links: [
                Link::dial(config(a), b, now, wall, rng),
                Link::accept(config(b), now, wall, &mut SmallRng::seed_from_u64(2)),
            ],
            wire: [BytesMut::new(), BytesMut::new()],
            out: Transmit::new(),
        };
        for _ in 0..4 {
            pair.transfer(0);
            pair.transfer(1);
        }
        for link in &mut pair.links {
            assert!(matches!(link.poll_event(), Some(Event::Connected { .. })));
        }
        pair
    }

    /// Moves `from`'s output into the other side's read buffer and reads it.
    fn transfer(&mut self, from: usize) {
        let to = 1 - from;
        while self.links[from].poll_transmit(self.now, &mut self.out) {
            for chunk in self.out.chunks() {
                self.wire[to].extend_from_slice(chunk);
            }
            self.out.clear();
        }
        if !self.wire[to].is_empty() {
            self.links[to].handle_input(self.now, &mut self.wire[to]);
        }
    }
}

/// One batch of `BATCH` request round trips; returns the responses seen.
fn round_trips(pair: &mut Pair, payload: &Bytes) -> usize {
    let now = pair.now;
    for _ in 0..BATCH {
        pair.links[0]
            .request(now, 1, None, payload.clone(), None)
            .unwrap();
    }
    pair.transfer(0);
    while let Some(event) = pair.links[1].poll_event() {
        if let Event::Request { mux, payload, .. } = event {
            pair.links[1].respond(now, mux, Ok(payload)).unwrap();
        }
    }
    pair.transfer(1);
    let mut answered = 0;
    while let Some(event) = pair.links[0].poll_event() {
        answered += usize::from(matches!(event, Event::Response { result: Ok(_), .. }));
    }
    answered
}

/// A one-way stream (server → caller) with a window of `BATCH`.
fn stream(pair: &mut Pair) -> (MuxId, MuxId) {
    let now = pair.now;
    let opts = StreamOpts {
        window: BATCH as u32,
        input: false,
        ..StreamOpts::default()
    };
    let mux = pair.links[0]
        .open_stream(now, 2, None, Bytes::new(), opts)
        .unwrap();
    pair.transfer(0);
    let Some(Event::StreamOpened { mux: served, .. }) = pair.links[1].poll_event() else {
        panic!("no stream")
    };
    pair.transfer(1);
    while pair.links[0].poll_event().is_some() {}
    (mux, served)
}

/// One batch of `BATCH` stream messages, consumed and credited back.
fn stream_batch(pair: &mut Pair, (mux, served): (MuxId, MuxId), payload: &Bytes) -> usize {
    let now = pair.now;
    for _ in 0..BATCH {
        pair.links[1].send(now, served, payload.clone()).unwrap();
    }
    pair.transfer(1);
    let mut got = 0;
    while let Some(event) = pair.links[0].poll_event() {
        if matches!(event, Event::Message { .. }) {
            got += 1;
        }
    }
    pair.links[0].consumed(now, mux, got as u32);
    pair.transfer(0);
    while pair.links[1].poll_event().is_some() {}
    got
}

/// Heap allocations and bytes per message over `rounds` batches of `f`.
fn per_message(rounds: usize, mut f: impl FnMut() -> usize) -> (f64, f64) {
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        ALLOC_BYTES.load(Ordering::Relaxed),
    );
    let mut messages = 0;
    for _ in 0..rounds {
        messages += f();
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let bytes = ALLOC_BYTES.load(Ordering::Relaxed) - b0;
    (
        allocs as f64 / messages as f64,
        bytes as f64 / messages as f64,
    )
}

fn report_allocations() {
    for (len, name) in SIZES {
        let payload = Bytes::from(vec![7u8; len]);
        let mut pair = Pair::new();
        round_trips(&mut pair, &payload); // warm buffers
        let (n, b) = per_message(200, || round_trips(&mut pair, &payload));
        println!("alloc/request round trip {name}: {n:.2} allocations, {b:.0} bytes");
        let mut pair = Pair::new();
        let ids = stream(&mut pair);
        stream_batch(&mut pair, ids, &payload);
        let (n, b) = per_message(200, || stream_batch(&mut pair, ids, &payload));
        println!("alloc/stream message {name}: {n:.2} allocations, {b:.0} bytes");
    }
}

fn requests(c: &mut Criterion) {
    report_allocations();
    let mut group = c.benchmark_group("link_requests");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (len, name) in SIZES {
        let payload = Bytes::from(vec![7u8; len]);
        let mut pair = Pair::new();
        group.bench_with_input(BenchmarkId::from_parameter(name), &payload, |b, p| {
            b.iter(|| black_box(round_trips(&mut pair, p)));
        });
    }
    group.finish();
}

/// The same round trips with an observer on both links, beside none.
fn observed(c: &mut Criterion) {
    let mut group = c.benchmark_group("link_requests_observer");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (len, name) in SIZES.into_iter().take(2) {
        let payload = Bytes::from(vec![7u8; len]);
        for (observer, label) in [
            (None, "none"),
            (
                Some(Arc::new(CountingObserver::default()) as Arc<dyn Observer>),
                "counting",
            ),
        ] {
            let mut pair = Pair::with_observer(observer);
            let id = BenchmarkId::new(label, name);
            group.bench_with_input(id, &payload, |b, p| {
                b.iter(|| black_box(round_trips(&mut pair, p)));
            });
        }
    }
    group.finish();
}

fn streams(c: &mut Criterion) {
    let mut group = c.benchmark_group("link_stream_messages");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (len, name) in SIZES {
        let payload = Bytes::from(vec![7u8; len]);
        let mut pair = Pair::new();
        let ids = stream(&mut pair);
        group.bench_with_input(BenchmarkId::from_parameter(name), &payload, |b, p| {
            b.iter(|| black_box(stream_batch(&mut pair, ids, p)));
        });
    }
    group.finish();
}

criterion_group!(benches, requests, observed, streams);
criterion_main!(benches);
