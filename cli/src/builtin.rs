//! The handlers every `gridmux` node serves, to try things with.

use bytes::Bytes;
use gridmux::{GridBuilder, HandlerError};

/// Answers with the request's bytes.
pub(crate) const ECHO: u8 = 1;
/// Answers with the xxh3-64 of the request's bytes (a MessagePack u64).
pub(crate) const CHECKSUM: u8 = 2;
/// A stream: the initial payload is a MessagePack u32 `n`; the handler
/// sends 0, 1, …, n-1 (MessagePack u32s) and ends. Input is echoed back
/// after the count.
pub(crate) const COUNT: u8 = 3;

/// The echo handler again, run as a task of its own (as any handler that
/// may block should be), for the benchmark's comparison.
pub(crate) const ECHO_SPAWNED: u8 = 4;

/// Registers the built-in handlers. Echo and checksum answer from memory
/// without blocking, so the link's own task runs them.
pub(crate) fn register(builder: GridBuilder) -> GridBuilder {
    builder
        .inline_handler(ECHO, |_, payload: Bytes| async move { Ok(payload) })
        .handler(ECHO_SPAWNED, |_, payload: Bytes| async move { Ok(payload) })
        .inline_handler(CHECKSUM, |_, payload: Bytes| async move {
            let sum = xxhash_rust::xxh3::xxh3_64(&payload);
            gridmux::codec::to_bytes(&sum).map_err(|e| HandlerError::new(e.to_string()))
        })
        .stream_handler(COUNT, 4, |_, first, mut rx, mut tx| async move {
            let n: u32 = gridmux::codec::from_bytes(&first).map_err(|e| e.to_string())?;
            for i in 0..n {
                tx.send_typed(&i).await.map_err(|e| e.to_string())?;
            }
            while let Some(message) = rx.recv().await.map_err(|e| e.to_string())? {
                tx.send(message).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
}
