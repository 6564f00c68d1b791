//! `ws-autobahn-client --server ws://127.0.0.1:PORT --agent NAME [--runtime tokio|smol]`:
//! the standard Autobahn TestSuite client loop (client role) on
//! `gridmux::WebSocket`: `/getCaseCount`, then `/runCase?case=N&agent=A`
//! echoing every message, then `/updateReports?agent=A`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use gridmux::runtime::Runtime;
use gridmux::WebSocket;
use gridmux_core::ws::{ClientRequest, Event, Message};
use gridmux_tests::harness::{
    arg_value, block_on, harness_config, help_requested, init_tracing, within, ws_authority,
};

/// The longest a single case may take.
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// What `--help` prints: the usage above.
const USAGE: &str = "`ws-autobahn-client --server ws://127.0.0.1:PORT --agent NAME [--runtime tokio|smol]`: the standard Autobahn TestSuite client loop (client role) on `gridmux::WebSocket`: `/getCaseCount`, then `/runCase?case=N&agent=A` echoing every message, then `/updateReports?agent=A`.";

fn main() -> std::io::Result<()> {
    init_tracing();
    let args: Vec<String> = std::env::args().collect();
    if help_requested(&args, USAGE) {
        return Ok(());
    }
    let server = arg_value(&args, "--server").unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = arg_value(&args, "--agent").unwrap_or_else(|| "gridmux".into());
    let runtime = arg_value(&args, "--runtime").unwrap_or_else(|| "tokio".into());
    let authority = ws_authority(&server)
        .ok_or_else(|| std::io::Error::other(format!("bad --server URL {server:?}")))?
        .to_owned();
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{authority} does not resolve")))?;
    let kind = runtime.clone();
    block_on(&kind, |rt| async move {
        let mut count_text = String::new();
        session(&rt, addr, &authority, "/getCaseCount", |_, msg| {
            count_text = msg.as_text().unwrap_or_default().to_owned();
        })
        .await?;
        let count: u32 = count_text
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad case count {count_text:?}")))?;
        eprintln!("ws-autobahn-client: {count} cases ({runtime})");
        for case in 1..=count {
            let path = format!("/runCase?case={case}&agent={agent}");
            session(&rt, addr, &authority, &path, |ws, msg| {
                let _ = ws.send(msg);
            })
            .await?;
        }
        let path = format!("/updateReports?agent={agent}");
        session(&rt, addr, &authority, &path, |_, _| {}).await
    })
}

/// One connection to `path`, handing every message to `on_message`, until
/// it closes (or the case limit passes).
async fn session(
    rt: &Arc<dyn Runtime>,
    addr: SocketAddr,
    authority: &str,
    path: &str,
    mut on_message: impl FnMut(&WebSocket, Message),
) -> std::io::Result<()> {
    let request = ClientRequest::new(authority, path);
    let ws = WebSocket::connect(rt.clone(), addr, &request, harness_config()).await?;
    let run = async {
        while let Some(event) = ws.recv().await {
            match event {
                Event::Message(msg) => on_message(&ws, msg),
                Event::Closed(cause) => tracing::debug!(path, ?cause, "connection done"),
                _ => {}
            }
        }
    };
    if within(&**rt, CASE_LIMIT, run).await.is_none() {
        eprintln!("ws-autobahn-client: {path} did not finish within {CASE_LIMIT:?}");
    }
    Ok(())
}
