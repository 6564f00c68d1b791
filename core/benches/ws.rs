//! WebSocket codec benchmarks: frame decode and encode at 16 B, 1 KiB and
//! 64 KiB, and unmasking throughput beside a `copy_from_slice` baseline
//! measured in the same run.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use gridmux_core::ws::{apply_mask, Frame, FrameDecoder, FrameEncoder, OpCode, Role, Transmit};

const SIZES: [(usize, &str); 3] = [(16, "16B"), (1024, "1KiB"), (64 << 10, "64KiB")];
/// Frames per decode iteration, so per-call overhead is amortised the way a
/// socket read of many frames would.
const BATCH: usize = 64;

fn wire(payload_len: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
    let frame = Frame::new(OpCode::Binary, Bytes::from(vec![0x5a; payload_len]));
    let mut enc = FrameEncoder::new();
    let mut out = Transmit::new();
    for _ in 0..BATCH {
        enc.encode(&frame, mask, &mut out);
    }
    enc.flush(&mut out);
    out.to_vec()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (len, name) in SIZES {
        group.throughput(Throughput::Bytes((len * BATCH) as u64));
        for (role, mask, label) in [
            (Role::Client, None, "unmasked"),
            (Role::Server, Some([1, 2, 3, 4]), "masked"),
        ] {
            let input = wire(len, mask);
            let mut dec = FrameDecoder::new(role, 1 << 20);
            group.bench_function(BenchmarkId::new(label, name), |b| {
                // The input copy is set-up, not measured: a socket read fills it.
                b.iter_batched(
                    || BytesMut::from(&input[..]),
                    |mut buf| {
                        let mut n = 0;
                        while let Ok(Some(f)) = dec.decode(&mut buf) {
                            n += f.payload.len();
                        }
                        black_box(n)
                    },
                    BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (len, name) in SIZES {
        group.throughput(Throughput::Bytes((len * BATCH) as u64));
        let frame = Frame::new(OpCode::Binary, Bytes::from(vec![0x5a; len]));
        for (mask, label) in [(None, "unmasked"), (Some([1, 2, 3, 4]), "masked")] {
            let mut enc = FrameEncoder::new();
            let mut out = Transmit::new();
            group.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| {
                    for _ in 0..BATCH {
                        enc.encode(black_box(&frame), mask, &mut out);
                    }
                    enc.flush(&mut out);
                    black_box(out.len());
                    out.clear();
                });
            });
        }
    }
    group.finish();
}

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for (len, name) in SIZES {
        group.throughput(Throughput::Bytes(len as u64));
        let src = vec![0x5a_u8; len];
        let mut dst = vec![0_u8; len];
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            });
        });
        group.bench_function(BenchmarkId::new("apply_mask", name), |b| {
            b.iter(|| {
                apply_mask(black_box(&mut dst), [1, 2, 3, 4], 1);
                black_box(&dst);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode, unmask);
criterion_main!(benches);
