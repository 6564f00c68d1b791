//! Body of the `http_server` target.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::http::{Event, Limits, Response, ServerConnection};
use crate::ws::Transmit;

/// `http_server`: a server connection fed fuzzer bytes in fuzzer-chosen
/// chunks, answering every request, with timeouts and EOF. Invariants: no
/// panic, the unparsed input stays under the head limit, heads are parsed
/// one at a time, `Closed` comes once and last.
pub fn http_server(data: &[u8], origin: Instant) {
    let limits = Limits {
        max_head: 512,
        max_headers: 8,
    };
    let mut conn = ServerConnection::new(limits, Duration::from_secs(5), origin);
    let mut now = origin;
    let mut buf = BytesMut::new();
    let mut closed = false;
    let mut upgraded = false;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op & 3 {
            0 | 1 => {
                let (chunk, tail) = rest.split_at(usize::from(op >> 2).min(rest.len()));
                rest = tail;
                buf.extend_from_slice(chunk);
            }
            2 => now += Duration::from_millis(u64::from(op >> 2) * 100),
            _ => conn.handle_eof(now),
        }
        if conn.poll_timeout().is_some_and(|t| t <= now) {
            conn.handle_timeout(now);
        }
        for _ in 0..64 {
            conn.handle_input(now, &mut buf);
            let mut progressed = false;
            while let Some(event) = conn.poll_event() {
                progressed = true;
                assert!(!closed, "event after Closed: {event:?}");
                match event {
                    Event::Request(head) => {
                        assert!(!upgraded);
                        conn.respond(now, &Response::text(200, head.target));
                    }
                    Event::Upgrade(_) => upgraded = true,
                    Event::Closed(_) => closed = true,
                }
            }
            if !progressed {
                break;
            }
        }
        let mut out = Transmit::new();
        conn.poll_transmit(&mut out);
        if !upgraded && !closed {
            assert!(buf.len() <= limits.max_head, "{} unparsed bytes", buf.len());
        }
    }
}
