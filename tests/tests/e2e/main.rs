//! End-to-end suite over real loopback TCP: twins of MinIO's grid tests
//! (`../shared/reference/minio-grid.md` §8) and our extensions, each body
//! written once and run on tokio (`on_tokio::*`) and smol (`on_smol::*`).

mod harness;

mod attacks;
mod cluster;
mod file_plane;
mod files;
mod hostile;
mod metrics;
mod proxy;
mod requests;
mod review;
mod streams;
mod tls;
mod tls_session;
