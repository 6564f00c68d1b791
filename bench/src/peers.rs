//! Where the peers run: yamux on either runtime (it speaks `futures-io`),
//! the WebSocket peers on tokio (their own runtime when the benchmark
//! runs on smol).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;

use futures::io::{AsyncRead, AsyncWrite};
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::RuntimeKind;

/// A byte stream with `futures-io` traits.
pub(crate) trait FuturesIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> FuturesIo for T {}

/// Connects to `addr` on `kind`'s reactor.
pub(crate) async fn connect(
    kind: RuntimeKind,
    addr: SocketAddr,
) -> std::io::Result<Box<dyn FuturesIo>> {
    Ok(match kind {
        RuntimeKind::Tokio => {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Box::new(s.compat())
        }
        RuntimeKind::Smol => {
            let s = smol::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Box::new(s)
        }
    })
}

/// A loopback listener on `kind`'s reactor.
pub(crate) enum FuturesListener {
    Tokio(tokio::net::TcpListener),
    Smol(smol::net::TcpListener),
}

impl FuturesListener {
    pub(crate) async fn bind(kind: RuntimeKind) -> std::io::Result<Self> {
        Ok(match kind {
            RuntimeKind::Tokio => Self::Tokio(tokio::net::TcpListener::bind("127.0.0.1:0").await?),
            RuntimeKind::Smol => Self::Smol(smol::net::TcpListener::bind("127.0.0.1:0").await?),
        })
    }

    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Self::Tokio(l) => l.local_addr(),
            Self::Smol(l) => l.local_addr(),
        }
    }

    pub(crate) async fn accept(&self) -> std::io::Result<Box<dyn FuturesIo>> {
        Ok(match self {
            Self::Tokio(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Box::new(s.compat())
            }
            Self::Smol(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        })
    }
}

/// Runs `future` on tokio: the current runtime if there is one, else a
/// runtime of the peers' own (two worker threads, as the machine has
/// cores), made once.
pub(crate) async fn on_tokio<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    static OWN: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(h) => h,
        Err(_) => {
            let rt = OWN.get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("bench-peers")
                    .build()
                    .expect("a tokio runtime for the peers")
            });
            rt.handle().clone()
        }
    };
    handle.spawn(future).await.map_err(|e| e.to_string())
}
