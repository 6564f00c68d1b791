//! The streams of the application model: what callers send and expect,
//! what the stream handlers do, and the checks of invariants 2 and 5.

use std::time::Duration;

use bytes::Bytes;
use gridmux_core::link::{CallError, CommandError, Link};
use gridmux_core::mux::Origin;
use rand::Rng;

use super::app::{acceptable, handler, Action, Consumer, Key, StreamKind};
use super::world::{Stage, World};

impl World {
    pub(super) fn on_message(&mut self, key: Key, payload: Bytes) {
        if key.2.origin == Origin::Remote {
            let Some(served) = self.app.served_streams.get_mut(&key) else {
                return self.violate(format!("message for unknown served stream {key:?}"));
            };
            match served.handler {
                handler::STREAM_ECHO => {
                    served.pending.push_back(payload);
                    self.pump_served(key);
                }
                handler::SINK => {
                    served.count += 1;
                    let now = self.now;
                    if let Some(link) = self.link(key) {
                        link.consumed(now, key.2, 1);
                    }
                }
                other => self.violate(format!("message to handler {other} without input")),
            }
            return;
        }
        let Some(stream) = self.app.streams.get_mut(&key) else {
            return self.violate(format!("message for unknown stream {key:?}"));
        };
        let index = stream.received.len();
        let expected = match stream.kind {
            StreamKind::Echo => stream.sent.get(index).cloned(),
            StreamKind::Producer(n) => {
                (index < n as usize).then(|| Bytes::copy_from_slice(&(index as u32).to_le_bytes()))
            }
            StreamKind::Sink => (index == 0)
                .then(|| Bytes::copy_from_slice(&(stream.sent.len() as u32).to_le_bytes())),
        };
        if expected.as_ref() != Some(&payload) {
            return self.violate(format!(
                "stream {key:?} message {index} is {payload:?}, want {expected:?}"
            ));
        }
        stream.received.push(payload);
        stream.unconsumed += 1;
        if stream.unconsumed > stream.window {
            let (held, window) = (stream.unconsumed, stream.window);
            return self.violate(format!(
                "stream {key:?} holds {held} unconsumed messages, window {window}"
            ));
        }
        match stream.consumer {
            Consumer::Fast => self.perform(Action::Consume(key)),
            Consumer::Slow => {
                let at = self.now + Duration::from_millis(self.rng.random_range(1..500));
                self.schedule(at, Action::Consume(key));
            }
            Consumer::Stopped if self.stage == Stage::Settle => self.perform(Action::Consume(key)),
            Consumer::Stopped => {}
        }
    }

    pub(super) fn on_ended(&mut self, key: Key, result: Result<(), CallError>) {
        if key.2.origin == Origin::Remote {
            let had_request = self.app.served_requests.remove(&key).is_some();
            let had_stream = self.app.served_streams.remove(&key).is_some();
            if !had_request && !had_stream {
                return self.violate(format!(
                    "end of unknown served exchange {key:?}: {result:?}"
                ));
            }
            match result {
                Ok(()) => self.violate(format!("served exchange {key:?} ended Ok")),
                Err(CallError::Protocol(e)) => {
                    self.violate(format!("served {key:?}: protocol error {e}"));
                }
                Err(_) => {}
            }
            return;
        }
        let Some(stream) = self.app.streams.remove(&key) else {
            return self.violate(format!("end of unknown stream {key:?}: {result:?}"));
        };
        if stream.deadline.is_some_and(|d| self.now > d) {
            return self.violate(format!("stream {key:?} ended after its deadline"));
        }
        match result {
            Ok(()) => {
                let complete = match stream.kind {
                    StreamKind::Echo => stream.received == stream.sent && stream.plan.is_empty(),
                    StreamKind::Producer(n) => stream.received.len() == n as usize,
                    // The count was checked against `sent` on receipt; a
                    // handler without input ends before the plan is sent.
                    StreamKind::Sink => stream.received.len() == 1,
                };
                if !complete {
                    return self.violate(format!(
                        "stream {key:?} ended Ok but incomplete: sent {}, planned {}, received {}",
                        stream.sent.len(),
                        stream.plan.len(),
                        stream.received.len()
                    ));
                }
                self.app.stats.streams_ok += 1;
            }
            Err(CallError::Disconnected) if self.overtaken(key) => self.violate(format!(
                "stream {key:?} ended Disconnected on a live link although its server \
                 finished it cleanly (a control message overtook its data)"
            )),
            Err(e) if acceptable(&e, &[]) => self.app.stats.streams_err += 1,
            Err(e) => self.violate(format!("stream {key:?} ended with {e:?}")),
        }
    }

    /// Whether caller stream `key` ending now with `Disconnected` can only
    /// mean that something overtook its data: its link is up and was never
    /// partitioned, long stalled or delayed (no stream ping could time
    /// out), and its server finished it cleanly.
    fn overtaken(&self, key: Key) -> bool {
        let Some(conn) = self.conns.get(&key.0) else {
            return false;
        };
        let live = conn.links[key.1].as_ref().is_some_and(Link::is_connected);
        live && !conn.disturbed
            && self
                .app
                .finished_served
                .contains(&(key.0, 1 - key.1, key.2.id))
    }

    /// Sends what a caller's stream can send now.
    pub(super) fn pump_caller(&mut self, key: Key) {
        let now = self.now;
        loop {
            let Some(stream) = self.app.streams.get_mut(&key) else {
                return;
            };
            let Some(next) = stream.plan.front().cloned() else {
                break;
            };
            let Some(link) = self
                .conns
                .get_mut(&key.0)
                .and_then(|c| c.links[key.1].as_mut())
            else {
                return;
            };
            match link.send(now, key.2, next) {
                Ok(()) => {
                    let m = stream.plan.pop_front().unwrap_or_default();
                    stream.sent.push(m);
                }
                Err(CommandError::TooLarge { .. }) => {
                    stream.plan.pop_front();
                }
                Err(CommandError::QueueFull(_)) => {
                    let at = now + Duration::from_millis(10);
                    return self.schedule(at, Action::Pump(key));
                }
                // The server takes no input: nothing of the plan is sent.
                Err(CommandError::Finished) => stream.plan.clear(),
                Err(_) => return,
            }
        }
        let Some(stream) = self.app.streams.get_mut(&key) else {
            return;
        };
        if !stream.finished && !matches!(stream.kind, StreamKind::Producer(_)) {
            stream.finished = true;
            if let Some(link) = self
                .conns
                .get_mut(&key.0)
                .and_then(|c| c.links[key.1].as_mut())
            {
                let _ = link.finish(now, key.2);
            }
        }
    }

    /// Lets a served stream make progress.
    pub(super) fn pump_served(&mut self, key: Key) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&key.0) else {
            return;
        };
        let Some(link) = conn.links[key.1].as_mut() else {
            return;
        };
        let Some(served) = self.app.served_streams.get_mut(&key) else {
            return;
        };
        let mux = key.2;
        let mut retry = false;
        let mut send = |link: &mut Link, m: Bytes| match link.send(now, mux, m) {
            Ok(()) => true,
            Err(e) => {
                retry |= matches!(e, CommandError::QueueFull(_));
                false
            }
        };
        let done = match served.handler {
            handler::STREAM_ECHO => {
                while link.credits(mux) > 0 {
                    let Some(m) = served.pending.pop_front() else {
                        break;
                    };
                    if !send(link, m.clone()) {
                        served.pending.push_front(m);
                        break;
                    }
                    link.consumed(now, mux, 1);
                }
                served.input_ended && served.pending.is_empty()
            }
            handler::PRODUCER => {
                while served.count > 0 && link.credits(mux) > 0 {
                    let index = served.pending.len() as u32;
                    let m = Bytes::copy_from_slice(&index.to_le_bytes());
                    if !send(link, m.clone()) {
                        break;
                    }
                    served.pending.push_back(m);
                    served.count -= 1;
                }
                served.count == 0
            }
            handler::SINK if served.input_ended => {
                let m = Bytes::copy_from_slice(&served.count.to_le_bytes());
                send(link, m)
            }
            _ => false,
        };
        if done && link.finish(now, mux).is_ok() {
            // The model's handler returns: it reads no more input.
            link.release(now, mux);
            self.app.served_streams.remove(&key);
            self.app.finished_served.insert((key.0, key.1, key.2.id));
        }
        if retry {
            self.schedule(now + Duration::from_millis(10), Action::Pump(key));
        }
    }

    /// At the end of the workload, stopped consumers take everything.
    pub(super) fn release_stopped_consumers(&mut self) {
        let keys: Vec<Key> = self
            .app
            .streams
            .iter()
            .filter(|(_, s)| s.consumer == Consumer::Stopped)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let n = self.app.streams.get(&key).map_or(0, |s| s.unconsumed);
            for _ in 0..n {
                self.perform(Action::Consume(key));
            }
            self.drain(key.0, key.1);
        }
    }
}
