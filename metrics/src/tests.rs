//! Unit tests of the node's metrics.

use std::time::Duration;

use gridmux_core::observe::BodyPath;

use super::*;

fn served(peer: &str, handler: u8) -> RequestServed<'_> {
    RequestServed {
        peer,
        handler,
        subroute: None,
        outcome: Outcome::Ok,
        ttfb: Some(Duration::from_micros(30)),
        duration: Duration::from_micros(40),
        bytes_in: 1,
        bytes_out: 2,
    }
}

#[test]
fn labels_stay_bounded_whatever_callers_send() {
    let m = GridMetrics::new(&["a:1", "b:1"], &["data"]);
    for i in 0..1000 {
        m.request_served(&served(&format!("client-{i}"), 1));
        let route = format!("files/unregistered-{i}");
        m.http_served(&HttpServed {
            route: &route,
            method: "GET",
            status: 404,
            ttfb: Some(Duration::from_micros(10)),
            duration: Duration::from_micros(10),
            bytes_out: 0,
            body: BodyPath::None,
        });
        m.link_event(&LinkEvent::DialFailed { peer: &route });
    }
    let text = m.encode();
    assert!(!text.contains("client-"), "a client's name became a label");
    assert!(
        !text.contains("unregistered"),
        "an unknown route became a label"
    );
    assert!(
        text.contains("gridmux_grid_payload_bytes_total{peer=\"client\",direction=\"in\"} 1000")
    );
    assert!(text.contains("route=\"other\""));
    assert!(text.contains("gridmux_dial_failures_total{peer=\"client\"} 1000"));
}

#[test]
fn requests_for_handlers_not_served_share_one_label() {
    let m = GridMetrics::new(&["a:1"], &[] as &[&str]);
    for id in 1..=255u8 {
        m.request_served(&RequestServed {
            outcome: Outcome::UnknownHandler,
            ..served("a:1", id)
        });
    }
    let text = m.encode();
    assert!(
        text.contains("gridmux_grid_requests_total{handler=\"0\",outcome=\"unknown_handler\"} 255")
    );
    assert!(!text.contains("handler=\"7\""));
}

#[test]
fn batch_sizes_are_counted_per_peer_with_clients_shared() {
    let m = GridMetrics::new(&["a:1"], &[] as &[&str]);
    for (peer, messages) in [("a:1", 1), ("a:1", 50), ("stranger", 3)] {
        m.batch_sent(peer, messages);
    }
    let text = m.encode();
    for line in [
        "gridmux_link_batch_messages_count{peer=\"a:1\"} 2",
        "gridmux_link_batch_messages_sum{peer=\"a:1\"} 51.0",
        "gridmux_link_batch_messages_bucket{le=\"1.0\",peer=\"a:1\"} 1",
        "gridmux_link_batch_messages_bucket{le=\"50.0\",peer=\"a:1\"} 2",
        "gridmux_link_batch_messages_count{peer=\"client\"} 1",
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
}

#[test]
fn the_load_gauges_follow_the_last_sample_and_drop_with_the_link() {
    let m = GridMetrics::new(&["a:1"], &[] as &[&str]);
    let load = |n| LinkEvent::Load {
        peer: "a:1",
        open_streams: n,
        open_requests: 2 * n,
        queued_bytes: 3 * n,
        inbound_bytes: 4 * n,
    };
    m.link_event(&load(5));
    m.link_event(&load(7));
    let text = m.encode();
    assert!(text.contains("gridmux_link_load{peer=\"a:1\",what=\"open_streams\"} 7"));
    assert!(text.contains("gridmux_link_load{peer=\"a:1\",what=\"inbound_bytes\"} 28"));
    m.link_event(&LinkEvent::Lost {
        peer: "a:1",
        reason: "websocket",
    });
    let text = m.encode();
    assert!(text.contains("gridmux_link_load{peer=\"a:1\",what=\"queued_bytes\"} 0"));
}

#[test]
fn a_histogram_count_is_its_inf_bucket_and_the_sum_is_in_seconds() {
    let m = GridMetrics::new(&["a:1"], &[] as &[&str]);
    m.request_served(&served("a:1", 7));
    m.request_served(&served("a:1", 7));
    let text = m.encode();
    let labels = "plane=\"grid\",handler=\"7\",route=\"\"";
    assert!(text.contains(&format!("gridmux_ttfb_seconds_count{{{labels}}} 2")));
    assert!(text.contains(&format!(
        "gridmux_ttfb_seconds_bucket{{le=\"+Inf\",{labels}}} 2"
    )));
    assert!(text.contains(&format!(
        "gridmux_ttfb_seconds_bucket{{le=\"0.000025\",{labels}}} 0"
    )));
    assert!(text.contains(&format!(
        "gridmux_ttfb_seconds_bucket{{le=\"0.00005\",{labels}}} 2"
    )));
    assert!(text.contains(&format!("gridmux_ttfb_seconds_sum{{{labels}}} 0.00006")));
}

#[test]
fn snapshots_read_the_histograms_back() {
    let m = GridMetrics::new(&["a:1"], &["data"]);
    let before = m.grid_ttfb(7);
    m.request_served(&served("a:1", 7));
    m.request_served(&served("a:1", 7));
    let after = m.grid_ttfb(7);
    let new = after.since(&before);
    assert_eq!(new.count(), 2);
    // Both in the 25–50 µs bucket: the median is its middle.
    assert_eq!(new.quantile(0.5), Some(Duration::from_nanos(37_500)));
    assert!((new.sum_seconds - 0.00006).abs() < 1e-12);
    assert_eq!(m.stream_ttfb(7).count(), 0);
    m.http_served(&HttpServed {
        route: "files/data",
        method: "GET",
        status: 200,
        ttfb: Some(Duration::from_micros(700)),
        duration: Duration::from_millis(3),
        bytes_out: 10,
        body: BodyPath::Sendfile,
    });
    assert_eq!(m.http_ttfb("files/data").count(), 1);
    assert_eq!(m.http_ttfb("nowhere").count(), 0);
}
