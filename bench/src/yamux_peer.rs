//! yamux, the peer for the unary rows: request/response over many
//! long-lived streams on one connection (each stream with one message in
//! flight, the pattern yamux is fastest at), on the benchmark's runtime.

use std::future::poll_fn;
use std::sync::Arc;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::lock::Mutex;
use gridmux::runtime::Runtime;
use gridmux::CancelSignal;

use crate::measure::{closed_loop, Measured, Window};
use crate::peers::{connect, FuturesListener};
use crate::progress::Live;
use crate::RuntimeKind;

/// `streams` streams on one yamux connection, each sending `size` bytes
/// and reading them back, one at a time.
pub(crate) async fn request_response(
    rt: &Arc<dyn Runtime>,
    kind: RuntimeKind,
    size: usize,
    streams: usize,
    window: Window,
    stop: &CancelSignal,
    live: &Live,
) -> Result<Measured, String> {
    let size = size.max(1);
    let listener = FuturesListener::bind(kind)
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let done = CancelSignal::new();
    {
        let (rt2, done2) = (rt.clone(), done.clone());
        rt.spawn(Box::pin(async move {
            let serve = async move {
                let Ok(socket) = listener.accept().await else {
                    return;
                };
                let mut conn =
                    yamux::Connection::new(socket, yamux::Config::default(), yamux::Mode::Server);
                while let Some(Ok(mut stream)) = poll_fn(|cx| conn.poll_next_inbound(cx)).await {
                    rt2.spawn(Box::pin(async move {
                        let mut buf = vec![0; size];
                        while stream.read_exact(&mut buf).await.is_ok() {
                            if stream.write_all(&buf).await.is_err() {
                                return;
                            }
                        }
                    }));
                }
            };
            done2.run(serve).await;
        }));
    }
    let socket = connect(kind, addr).await.map_err(|e| e.to_string())?;
    let mut conn = yamux::Connection::new(socket, yamux::Config::default(), yamux::Mode::Client);
    let mut opened = Vec::with_capacity(streams);
    for _ in 0..streams {
        let stream = poll_fn(|cx| conn.poll_new_outbound(cx))
            .await
            .map_err(|e| format!("yamux: {e}"))?;
        opened.push(Arc::new(Mutex::new((stream, vec![0u8; size]))));
    }
    {
        let done2 = done.clone();
        rt.spawn(Box::pin(async move {
            let drive = async move {
                while let Some(Ok(_)) = poll_fn(|cx| conn.poll_next_inbound(cx)).await {}
            };
            done2.run(drive).await;
        }));
    }
    let payload = Arc::new(vec![0x5a; size]);
    let m = closed_loop(rt, streams, window, stop, live, |w| {
        let (slot, payload) = (opened[w].clone(), payload.clone());
        move || {
            let (slot, payload) = (slot.clone(), payload.clone());
            async move {
                let mut guard = slot.lock().await;
                let (stream, buf) = &mut *guard;
                stream
                    .write_all(&payload)
                    .await
                    .map_err(|e| e.to_string())?;
                stream.read_exact(buf).await.map_err(|e| e.to_string())?;
                Ok(payload.len() as u64)
            }
        }
    })
    .await;
    done.cancel();
    Ok(m)
}
