//! The handlers every `gridmux` node serves, to try things with and to
//! benchmark.

use bytes::Bytes;
use gridmux::{GridBuilder, HandlerError};
use serde::{Deserialize, Serialize};

/// Answers with the request's bytes.
pub const ECHO: u8 = 1;
/// Answers with the xxh3-64 of the request's bytes (a MessagePack u64).
pub const CHECKSUM: u8 = 2;
/// A stream: the initial payload is a MessagePack u32 `n`; the handler
/// sends 0, 1, …, n-1 (MessagePack u32s), then echoes its input back
/// until the caller finishes.
pub const COUNT: u8 = 3;
/// The echo handler again, run as a task of its own (as any handler that
/// may block should be).
pub const ECHO_SPAWNED: u8 = 4;
/// A typed request ([`Typed`]) answered with the same value, decoded and
/// encoded again (serde + MessagePack).
pub const TYPED: u8 = 5;
/// A stream that takes messages until the caller finishes, then sends one
/// MessagePack u64: the bytes it took.
pub const SINK: u8 = 6;

/// The value of a typed request: about 100 bytes of MessagePack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Typed {
    /// An id.
    pub id: u64,
    /// A name.
    pub name: String,
    /// Some numbers.
    pub values: Vec<u32>,
    /// A flag.
    pub done: bool,
}

impl Typed {
    /// A sample value.
    pub fn sample(id: u64) -> Self {
        Self {
            id,
            name: "bucket/object-0001".to_owned(),
            values: (0..16).map(|i| i * 1000 + 7).collect(),
            done: id.is_multiple_of(2),
        }
    }
}

/// Registers the built-in handlers. Echo, checksum and typed answer from
/// memory without blocking, so the link's own task runs them.
pub fn register(builder: GridBuilder) -> GridBuilder {
    builder
        .inline_handler(ECHO, |_, payload: Bytes| async move { Ok(payload) })
        .handler(ECHO_SPAWNED, |_, payload: Bytes| async move { Ok(payload) })
        .inline_handler(CHECKSUM, |_, payload: Bytes| async move {
            let sum = xxhash_rust::xxh3::xxh3_64(&payload);
            gridmux::codec::to_bytes(&sum).map_err(|e| HandlerError::new(e.to_string()))
        })
        .typed_handler(TYPED, |_, value: Typed| async move {
            Ok::<_, HandlerError>(value)
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
        .stream_handler(SINK, 16, |_, _, mut rx, mut tx| async move {
            let mut taken = 0u64;
            while let Some(message) = rx.recv().await.map_err(|e| e.to_string())? {
                taken += message.len() as u64;
            }
            tx.send_typed(&taken).await.map_err(|e| e.to_string())?;
            Ok(())
        })
}
