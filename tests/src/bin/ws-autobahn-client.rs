//! `ws-autobahn-client --server ws://127.0.0.1:PORT --agent NAME`: the
//! standard Autobahn TestSuite client loop (client role) on
//! `gridmux_core::ws::Endpoint`: `/getCaseCount`, then `/runCase?case=N&agent=A`
//! echoing every message, then `/updateReports?agent=A`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use gridmux_core::ws::{ClientRequest, CloseCause, Endpoint, Event};
use gridmux_tests::ws_loop::{arg_value, harness_config, init_tracing, run, ws_authority};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn main() -> std::io::Result<()> {
    init_tracing();
    let args: Vec<String> = std::env::args().collect();
    let server = arg_value(&args, "--server").unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = arg_value(&args, "--agent").unwrap_or_else(|| "gridmux".into());
    let authority = ws_authority(&server)
        .ok_or_else(|| std::io::Error::other(format!("bad --server URL {server:?}")))?
        .to_owned();

    let mut count_text = String::new();
    connect(&authority, "/getCaseCount", |_, event| {
        if let Event::Message(msg) = event {
            count_text = msg.as_text().unwrap_or_default().to_owned();
        }
    })?;
    let count: u32 = count_text
        .trim()
        .parse()
        .map_err(|_| std::io::Error::other(format!("bad case count {count_text:?}")))?;
    eprintln!("ws-autobahn-client: {count} cases");
    for case in 1..=count {
        let path = format!("/runCase?case={case}&agent={agent}");
        let cause = connect(&authority, &path, |ep, event| {
            if let Event::Message(msg) = event {
                let _ = ep.send(msg);
            }
        })?;
        tracing::debug!(case, ?cause, "case done");
    }
    connect(
        &authority,
        &format!("/updateReports?agent={agent}"),
        |_, _| {},
    )?;
    Ok(())
}

fn connect(
    authority: &str,
    path: &str,
    on_event: impl FnMut(&mut Endpoint, Event),
) -> std::io::Result<CloseCause> {
    let stream = TcpStream::connect(authority)?;
    let rng = Box::new(StdRng::from_os_rng());
    let request = ClientRequest::new(authority, path);
    let endpoint = Endpoint::client(harness_config(), &request, rng, Instant::now());
    run(stream, endpoint, Duration::from_secs(60), on_event)
}
