//! Twin tests: see `main.rs`.

use std::time::Duration;

use bytes::Bytes;
use gridmux_core::cluster::should_dial;
use gridmux_core::fuzzing::LinkPair;
use gridmux_core::link::{
    CallError, CommandError, Event, HandlerKind, HandlerTable, RegisterError, StreamOpts,
};
use gridmux_core::mux::MuxId;
use gridmux_core::wire::{ErrorCode, ErrorPayload, Flags, Message, Op, SubrouteId};
use gridmux_tests::twin::{bytes_of, deliver_observed, inject, run_one_way, swallow};

use crate::*;

#[test]
fn checklist_27_ext_streams_need_no_local_registration() {
    // MinIO: NewStream to a handler not registered locally fails with
    // ErrUnknownHandler. gridmux: the caller announces its window and the
    // server answers with its own, so only the server registers.
    let dialer = if should_dial("a:1", "b:1") {
        "a:1"
    } else {
        "b:1"
    };
    let mut p = LinkPair::connected(origin(), |c| {
        if c.local == dialer {
            c.handlers = HandlerTable::new();
        }
    });
    let mux = open(&mut p, 10, StreamOpts::default());
    p.drive();
    let (_, has_input, _) = opened(&mut p);
    assert!(has_input);
    assert_eq!(
        p.links[DIALER].credits(mux),
        4,
        "the server's window, learned from AckMux"
    );
    // Unregistered on the server: a remote UnknownHandler.
    let missing = open(&mut p, 99, StreamOpts::default());
    p.drive();
    let ended = p
        .take_events(DIALER)
        .into_iter()
        .find(|e| matches!(e, Event::Ended { mux, .. } if *mux == missing));
    assert!(matches!(
        ended,
        Some(Event::Ended {
            result: Err(CallError::Remote {
                code: ErrorCode::UnknownHandler,
                ..
            }),
            ..
        })
    ));
}

#[test]
fn checklist_28_ack_comes_first_with_seq_0_and_grants_the_window() {
    let mut p = pair();
    let mux = open(&mut p, 10, StreamOpts::default());
    let now = p.now;
    assert_eq!(
        p.links[DIALER].send(now, mux, bytes_of(1, 0)),
        Err(CommandError::NoCredit)
    );
    deliver_observed(&mut p, DIALER);
    let (served, _, _) = opened(&mut p);
    let now = p.now;
    p.links[ACCEPTOR].send(now, served, bytes_of(1, 9)).unwrap();
    let seen = deliver_observed(&mut p, ACCEPTOR);
    assert_eq!((seen[0].msg.op, seen[0].msg.seq), (Op::ACK_MUX, 0));
    assert_eq!((seen[1].msg.op, seen[1].msg.seq), (Op::MUX_SERVER_MSG, 1));
    assert_eq!(p.links[DIALER].credits(mux), 4);
}

#[test]
fn checklist_29_server_stays_within_credits_which_come_back_batched() {
    let mut p = pair();
    let mux = open(
        &mut p,
        11,
        StreamOpts {
            window: 8,
            input: false,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let (served, has_input, _) = opened(&mut p);
    assert!(!has_input);
    let mut sent = 0;
    loop {
        let now = p.now;
        match p.links[ACCEPTOR].send(now, served, bytes_of(1, sent)) {
            Ok(()) => sent += 1,
            Err(CommandError::NoCredit) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(sent, 8, "exactly the caller's window");
    p.drive();
    assert_eq!(p.take_events(DIALER).len(), 8);
    // (ext) Credits return in batches of half the window, as a count.
    let now = p.now;
    p.links[DIALER].consumed(now, mux, 3);
    assert!(swallow(&mut p, DIALER).is_empty(), "3 < 4: no grant yet");
    p.links[DIALER].consumed(now, mux, 1);
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].msg.op, Op::UNBLOCK_SRV_MUX);
    assert_eq!(
        gridmux_core::wire::decode_count(seen[0].msg.payload.as_ref(), 1),
        Ok(4)
    );
    assert_eq!(one_event(&mut p, ACCEPTOR), Event::Writable { mux: served });
    assert_eq!(p.links[ACCEPTOR].credits(served), 4);
}

#[test]
fn checklist_30_a_sequence_gap_ends_only_that_mux() {
    let mut p = pair();
    let victim = open(&mut p, 11, one_way());
    let other = open(&mut p, 11, one_way());
    p.drive();
    p.take_events(ACCEPTOR);
    p.take_events(DIALER);
    // seq 0 was the ack; 5 is a gap.
    inject(
        &mut p,
        DIALER,
        &Message::new(Op::MUX_SERVER_MSG, victim.id)
            .seq(5)
            .payload(bytes_of(1, 0)),
    );
    let ended = one_event(&mut p, DIALER);
    assert!(
        matches!(
            &ended,
            Event::Ended { mux, result: Err(CallError::Protocol(m)) } if *mux == victim && m.contains("want 1, got 5")
        ),
        "{ended:?}"
    );
    p.drive();
    assert!(matches!(
        one_event(&mut p, ACCEPTOR),
        Event::Ended {
            result: Err(CallError::Canceled),
            ..
        }
    ));
    assert!(p.links[DIALER].is_connected());
    assert_eq!(p.links[DIALER].open_exchanges(), 1, "{other:?} lives on");
}

#[test]
fn checklist_31_stream_echo_of_11_messages_then_clean_end() {
    let mut p = pair();
    let mux = open(
        &mut p,
        12,
        StreamOpts {
            window: 1,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let (served, _, _) = opened(&mut p);
    p.take_events(DIALER); // Writable
    for i in 0..=10u8 {
        let now = p.now;
        p.links[DIALER]
            .send(now, mux, Bytes::from(i.to_string()))
            .unwrap();
        p.drive();
        let Event::Message { payload, .. } = one_event(&mut p, ACCEPTOR) else {
            panic!()
        };
        let now = p.now;
        p.links[ACCEPTOR]
            .send(
                now,
                served,
                Bytes::from(format!("init{}", String::from_utf8_lossy(&payload))),
            )
            .unwrap();
        p.links[ACCEPTOR].consumed(now, served, 1);
        p.drive();
        let events = p.take_events(DIALER);
        assert!(
            events.contains(&Event::Message {
                mux,
                payload: Bytes::from(format!("init{i}"))
            }),
            "{events:?}"
        );
        let now = p.now;
        p.links[DIALER].consumed(now, mux, 1);
        p.drive();
        p.take_events(ACCEPTOR);
    }
    let now = p.now;
    p.links[DIALER].finish(now, mux).unwrap();
    p.drive();
    assert_eq!(
        one_event(&mut p, ACCEPTOR),
        Event::InputEnded { mux: served }
    );
    let now = p.now;
    p.links[ACCEPTOR].finish(now, served).unwrap();
    p.drive();
    assert_eq!(
        one_event(&mut p, DIALER),
        Event::Ended {
            mux,
            result: Ok(())
        }
    );
    assert_eq!(
        p.links[DIALER].open_exchanges() + p.links[ACCEPTOR].open_exchanges(),
        0
    );
}

#[test]
fn checklist_32_client_eof_is_a_payloadless_eof_message() {
    let mut p = pair();
    let mux = open(&mut p, 10, StreamOpts::default());
    p.drive();
    let (served, _, _) = opened(&mut p);
    let now = p.now;
    p.links[DIALER].finish(now, mux).unwrap();
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen[0].msg.op, Op::MUX_CLIENT_MSG);
    assert!(seen[0].msg.flags.contains(Flags::EOF));
    assert_eq!(seen[0].msg.payload, None);
    assert_eq!(
        one_event(&mut p, ACCEPTOR),
        Event::InputEnded { mux: served }
    );
}

#[test]
fn checklist_33_one_way_streams_set_eof_on_open_and_refuse_input() {
    let mut p = pair();
    let mux = open(&mut p, 10, one_way());
    let seen = deliver_observed(&mut p, DIALER);
    assert!(seen[0].msg.flags.contains(Flags::EOF));
    let (served, has_input, _) = opened(&mut p);
    assert!(!has_input);
    let now = p.now;
    assert_eq!(
        p.links[DIALER].send(now, mux, Bytes::new()),
        Err(CommandError::Finished)
    );
    inject(
        &mut p,
        ACCEPTOR,
        &Message::new(Op::MUX_CLIENT_MSG, mux.id)
            .seq(1)
            .payload(bytes_of(1, 0)),
    );
    let ended = one_event(&mut p, ACCEPTOR);
    assert!(
        matches!(&ended, Event::Ended { mux, result: Err(CallError::Protocol(m)) }
        if *mux == served && m.contains("did not expect inbound message")),
        "{ended:?}"
    );
}

#[test]
fn checklist_34_handler_end_is_eof_or_error() {
    let mut p = pair();
    let ok = open(&mut p, 11, one_way());
    let bad = open(&mut p, 11, one_way());
    p.drive();
    let served: Vec<MuxId> = p
        .take_events(ACCEPTOR)
        .into_iter()
        .map(|e| match e {
            Event::StreamOpened { mux, .. } => mux,
            e => panic!("{e:?}"),
        })
        .collect();
    let now = p.now;
    p.links[ACCEPTOR].finish(now, served[0]).unwrap();
    p.links[ACCEPTOR]
        .fail_stream(
            now,
            served[1],
            ErrorPayload::new(ErrorCode::Application, "nope"),
        )
        .unwrap();
    let seen = deliver_observed(&mut p, ACCEPTOR);
    let ends: Vec<&Message> = seen
        .iter()
        .map(|s| &s.msg)
        .filter(|m| m.op == Op::MUX_SERVER_MSG)
        .collect();
    assert!(ends[0].flags.contains(Flags::EOF) && ends[0].payload.is_none());
    assert!(ends[1].flags.contains(Flags::EOF | Flags::PAYLOAD_IS_ERR));
    let events = p.take_events(DIALER);
    assert!(events.contains(&Event::Ended {
        mux: ok,
        result: Ok(())
    }));
    assert!(events.contains(&Event::Ended {
        mux: bad,
        result: Err(CallError::Remote {
            code: ErrorCode::Application,
            message: "nope".into()
        })
    }));
}

#[test]
fn checklist_35_cancelling_a_stream_cancels_the_handler() {
    let mut p = pair();
    let mux = open(&mut p, 10, StreamOpts::default());
    p.drive();
    let (served, _, _) = opened(&mut p);
    let now = p.now;
    p.links[DIALER].cancel(now, mux);
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen[0].msg.op, Op::DISCONNECT_SERVER_MUX);
    assert_eq!(
        one_event(&mut p, ACCEPTOR),
        Event::Ended {
            mux: served,
            result: Err(CallError::Canceled)
        }
    );
    assert_eq!(
        p.links[DIALER].open_exchanges() + p.links[ACCEPTOR].open_exchanges(),
        0
    );
}

#[test]
fn checklist_36_stream_deadline_cancels_both_sides() {
    let mut p = pair();
    let now = p.now;
    let opts = StreamOpts {
        deadline: Some(now + Duration::from_millis(50)),
        ..StreamOpts::default()
    };
    let mux = open(&mut p, 10, opts);
    p.drive();
    let (served, _, deadline) = opened(&mut p);
    assert_eq!(deadline, Some(now + Duration::from_millis(50)));
    p.advance(Duration::from_millis(50));
    assert!(p.take_events(DIALER).contains(&Event::Ended {
        mux,
        result: Err(CallError::Timeout)
    }));
    let ends: Vec<Event> = p.take_events(ACCEPTOR);
    assert!(
        ends.iter()
            .any(|e| matches!(e, Event::Ended { mux, result: Err(_) } if *mux == served)),
        "{ends:?}"
    );
    assert_eq!(
        p.links[DIALER].open_exchanges() + p.links[ACCEPTOR].open_exchanges(),
        0
    );
}

#[test]
fn checklist_37_subroutes_route_statically() {
    let mut p = pair();
    let now = p.now;
    let sub = SubrouteId::new(78, "subroute/1");
    p.links[DIALER]
        .request(now, 78, Some(sub), Bytes::from_static(b"x"), None)
        .unwrap();
    p.drive();
    let Event::Request { subroute, .. } = one_event(&mut p, ACCEPTOR) else {
        panic!()
    };
    assert_eq!(subroute, Some(sub));
    let other = SubrouteId::new(78, "subroute/2");
    p.links[DIALER]
        .request(now, 78, Some(other), Bytes::new(), None)
        .unwrap();
    p.drive();
    assert!(p.take_events(ACCEPTOR).is_empty());
    assert!(matches!(
        response(&mut p, DIALER).1,
        Err(CallError::Remote {
            code: ErrorCode::UnknownHandler,
            ..
        })
    ));
}

fn ping_config(c: &mut gridmux_core::link::LinkConfig) {
    c.stream_ping_interval = Duration::from_millis(100);
    c.stream_ping_timeout = Duration::from_millis(200);
    c.stream_idle_timeout = Duration::from_millis(400);
}

#[test]
fn checklist_38_stream_without_pongs_fails_and_cancels_the_handler() {
    let mut p = LinkPair::connected(origin(), ping_config);
    let mux = open(&mut p, 11, one_way());
    p.drive();
    let (served, _, _) = opened(&mut p);
    // Server → client is blocked (the client's inbound processing hangs).
    let ended = run_one_way(&mut p, DIALER, Duration::from_millis(50), 10, DIALER, |e| {
        matches!(e, Event::Ended { .. })
    });
    let (when, e) = ended.expect("the stream failed");
    assert_eq!(
        e,
        Event::Ended {
            mux,
            result: Err(CallError::Disconnected)
        }
    );
    assert!(
        when > Duration::from_millis(200) && when <= Duration::from_millis(350),
        "{when:?}"
    );
    assert!(p.take_events(ACCEPTOR).contains(&Event::Ended {
        mux: served,
        result: Err(CallError::Canceled)
    }));
}

#[test]
fn checklist_38_pings_keep_a_blocked_stream_alive() {
    let mut p = LinkPair::connected(origin(), ping_config);
    let mux = open(
        &mut p,
        11,
        StreamOpts {
            input: false,
            window: 1,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let (served, _, _) = opened(&mut p);
    let now = p.now;
    p.links[ACCEPTOR].send(now, served, bytes_of(1, 0)).unwrap();
    // The consumer blocks (never consumes) for 1 s; pings keep flowing.
    p.advance(Duration::from_secs(1));
    assert!(!p
        .take_events(DIALER)
        .iter()
        .any(|e| matches!(e, Event::Ended { .. })));
    assert!(!p
        .take_events(ACCEPTOR)
        .iter()
        .any(|e| matches!(e, Event::Ended { .. })));
    assert_eq!(p.links[DIALER].open_exchanges(), 1, "{mux:?} alive");
}

#[test]
fn checklist_39_server_cancels_a_mux_not_pinged_for_4_intervals() {
    let mut p = LinkPair::connected(origin(), ping_config);
    open(&mut p, 11, one_way());
    p.drive();
    let (served, _, _) = opened(&mut p);
    // Client → server is blocked: no pings arrive.
    let ended = run_one_way(
        &mut p,
        ACCEPTOR,
        Duration::from_millis(50),
        20,
        ACCEPTOR,
        |e| matches!(e, Event::Ended { .. }),
    );
    let (when, e) = ended.expect("the server gave up");
    assert_eq!(
        e,
        Event::Ended {
            mux: served,
            result: Err(CallError::Disconnected)
        }
    );
    assert!(
        when > Duration::from_millis(400) && when <= Duration::from_millis(550),
        "{when:?}"
    );
}

#[test]
fn checklist_40_ping_for_an_unknown_mux_gets_not_found() {
    let mut p = LinkPair::connected(origin(), ping_config);
    let mux = open(&mut p, 11, one_way());
    p.drive();
    opened(&mut p);
    // The server forgets the stream without telling the caller.
    inject(
        &mut p,
        ACCEPTOR,
        &Message::new(Op::DISCONNECT_SERVER_MUX, mux.id),
    );
    p.take_events(ACCEPTOR);
    swallow(&mut p, ACCEPTOR);
    p.advance(Duration::from_millis(100));
    assert!(p.take_events(DIALER).contains(&Event::Ended {
        mux,
        result: Err(CallError::Disconnected)
    }));
}

#[test]
fn checklist_41_stateless_streams_are_refused() {
    let mut p = pair();
    let open_msg = Message {
        handler: 10,
        ..Message::new(Op::CONNECT_MUX, 42)
            .flags(Flags::STATELESS)
            .payload(gridmux_core::wire::encode_stream_open(1, b""))
    };
    inject(&mut p, ACCEPTOR, &open_msg);
    assert!(p.take_events(ACCEPTOR).is_empty());
    let seen = swallow(&mut p, ACCEPTOR);
    assert_eq!(seen[0].msg.op, Op::MUX_CONNECT_ERROR);
    let e = ErrorPayload::decode(seen[0].msg.payload.as_ref().unwrap()).unwrap();
    assert_eq!(e.message, "Stateless streams not supported");
}

#[test]
fn checklist_42_duplicate_registration_fails() {
    let mut t = HandlerTable::new();
    t.register(5, None, HandlerKind::Request).unwrap();
    assert_eq!(
        t.register(5, None, HandlerKind::Request),
        Err(RegisterError::AlreadyExists(5))
    );
    t.register(5, Some("a"), HandlerKind::Request).unwrap();
    assert_eq!(
        t.register(5, Some("a"), HandlerKind::Request),
        Err(RegisterError::AlreadyExists(5))
    );
    t.register(5, None, HandlerKind::Stream { in_capacity: 1 })
        .unwrap();
    assert_eq!(
        t.register(0, None, HandlerKind::Request),
        Err(RegisterError::ReservedId)
    );
}

#[test]
fn checklist_46_crc_only_when_configured() {
    let mut p = LinkPair::connected(origin(), |c| c.crc = false);
    request(&mut p, DIALER, 1, Bytes::new());
    let seen = deliver_observed(&mut p, DIALER);
    assert!(!seen[0].msg.flags.contains(Flags::CRC));
    let mut p = pair();
    request(&mut p, DIALER, 1, Bytes::new());
    assert!(deliver_observed(&mut p, DIALER)[0]
        .msg
        .flags
        .contains(Flags::CRC));
}

#[test]
fn checklist_47_unknown_ops_and_muxes_are_handled_quietly() {
    let mut p = pair();
    inject(&mut p, ACCEPTOR, &Message::new(Op::from_u8(99), 0));
    inject(&mut p, ACCEPTOR, &Message::new(Op::UNBLOCK_SRV_MUX, 77));
    assert!(p.take_events(ACCEPTOR).is_empty());
    assert!(swallow(&mut p, ACCEPTOR).is_empty(), "no answer to either");
    assert!(p.links[ACCEPTOR].is_connected());
    inject(
        &mut p,
        ACCEPTOR,
        &Message::new(Op::MUX_CLIENT_MSG, 77)
            .seq(1)
            .payload(bytes_of(1, 0)),
    );
    let seen = swallow(&mut p, ACCEPTOR);
    assert_eq!(
        (seen[0].msg.op, seen[0].msg.mux_id),
        (Op::DISCONNECT_CLIENT_MUX, 77)
    );
}
