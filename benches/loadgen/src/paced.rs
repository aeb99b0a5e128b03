//! The publishers of the robustness scenarios: each a thread with one keep-alive connection,
//! one request at a time, at a steady rate. The id of every accepted event (the body of its
//! `200`) is recorded: ids ssed assigns grow in the order it accepts events, whatever
//! connection they came on, so sorting every publisher's record by id gives the order every
//! subscriber must see.
//!
//! A `503` (publish queue full) publishes nothing and closes the connection: the same event is
//! sent again on a new one after a short pause, so each event is accepted exactly once.

use crate::http1::{self, Client};
use crate::procstat::monotonic_ns;
use crate::socket::Rng;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct PacedConfig {
    pub target: SocketAddrV4,
    /// Events this publisher publishes.
    pub events: u64,
    /// Events per second; None publishes as fast as the server answers.
    pub rate: Option<f64>,
    /// Data bytes per event (at least the "SEQ TS TOPIC " prefix).
    pub size: usize,
    /// Each event goes to one of these, picked at random.
    pub topics: Vec<String>,
    /// Sequence numbers are `first_seq`, `first_seq + 1`, ...
    pub first_seq: u64,
    pub seed: u64,
    /// Stops early when set (another part of the run failed).
    pub abort: Arc<AtomicBool>,
    /// Gives up on an event after retrying it this long.
    pub retry_for: Duration,
}

impl PacedConfig {
    /// One publisher of `rate` events a second for `duration_s` seconds to one topic, retrying
    /// an event for up to 30 s (the hostile and soak scenarios).
    pub fn steady(
        target: SocketAddrV4,
        rate: f64,
        duration_s: f64,
        size: usize,
        topic: &str,
    ) -> PacedConfig {
        PacedConfig {
            target,
            events: (rate * duration_s).round() as u64,
            rate: Some(rate),
            size,
            topics: vec![topic.into()],
            first_seq: 1,
            seed: 1,
            abort: Arc::new(AtomicBool::new(false)),
            retry_for: Duration::from_secs(30),
        }
    }
}

/// One accepted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    pub id: u64,
    pub topic: u8,
    pub seq: u64,
}

#[derive(Default)]
pub struct PacedOutcome {
    pub published: Vec<Published>,
    /// `503` answers (queue full), each followed by a retry.
    pub refused_full: u64,
    /// Connections lost without an answer: the event may or may not have been published.
    pub lost_answers: u64,
    /// Events sent more than one interval after their time.
    pub late: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub error: Option<String>,
}

/// The data of event `seq`: "SEQ SEND_TIME_NS TOPIC " then padding to exactly `size` bytes.
pub fn event_data(seq: u64, topic: usize, size: usize) -> Vec<u8> {
    let mut data = format!("{seq} {} {topic} ", monotonic_ns()).into_bytes();
    let len = size.max(data.len());
    data.resize(len, b'x');
    data
}

/// Publishes `config.events` events; returns what was accepted, and the error that stopped it
/// early if one did.
pub fn run(config: PacedConfig) -> PacedOutcome {
    let mut outcome = PacedOutcome { start_ns: monotonic_ns(), ..PacedOutcome::default() };
    let mut rng = Rng::new(config.seed);
    let interval_ns = config.rate.map(|r| (1e9 / r) as u64);
    let mut client: Option<Client> = None;
    for k in 0..config.events {
        if config.abort.load(Ordering::Relaxed) {
            outcome.error.get_or_insert_with(|| "stopped: another part of the run failed".into());
            break;
        }
        if let Some(interval) = interval_ns {
            let due = outcome.start_ns + k * interval;
            let now = monotonic_ns();
            if now < due {
                std::thread::sleep(Duration::from_nanos(due - now));
            } else if now - due > interval {
                outcome.late += 1;
            }
        }
        let topic = rng.below(config.topics.len() as u64) as usize;
        let seq = config.first_seq + k;
        match publish_until_accepted(&config, &mut client, &mut outcome, seq, topic) {
            Ok(id) => outcome.published.push(Published { id, topic: topic as u8, seq }),
            Err(e) => {
                outcome.error = Some(e);
                break;
            }
        }
    }
    outcome.end_ns = monotonic_ns();
    outcome
}

fn publish_until_accepted(
    config: &PacedConfig,
    client: &mut Option<Client>,
    outcome: &mut PacedOutcome,
    seq: u64,
    topic: usize,
) -> Result<u64, String> {
    let give_up = monotonic_ns() + config.retry_for.as_nanos() as u64;
    let mut pause = Duration::from_millis(5);
    loop {
        if monotonic_ns() > give_up {
            return Err(format!("event {seq} not accepted within {:?}", config.retry_for));
        }
        let connection = match client {
            Some(c) => c,
            None => client.insert(
                Client::connect(config.target, Duration::from_secs(5))
                    .map_err(|e| format!("publisher connect: {e}"))?,
            ),
        };
        // The send time is taken when the request is built, right before it is written.
        let data = event_data(seq, topic, config.size);
        let request = http1::publish_request(config.target, &format!("topic={}", config.topics[topic]), &data);
        match connection.exchange(&request) {
            Ok(answer) if answer.status == 200 => {
                return http1::published_id(&answer).ok_or_else(|| format!("200 without an id: {}", answer.text()));
            }
            Ok(answer) if answer.status == 503 => {
                outcome.refused_full += 1;
                *client = None;
            }
            Ok(answer) => return Err(format!("publish answered {}: {}", answer.status, answer.text().trim())),
            Err(e) => {
                // With ssed this never happens: a keep-alive connection is closed only after an
                // answer, or when idle. Counted, because a retry may publish the event twice.
                outcome.lost_answers += 1;
                outcome.error.get_or_insert_with(|| format!("publish connection lost: {e}"));
                *client = None;
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Runs `count` publishers on their own threads, sharing `events` and `rate` between them,
/// and returns their outcomes once all are done.
pub fn run_many(count: usize, template: PacedConfig) -> Vec<PacedOutcome> {
    let count = count.max(1) as u64;
    let threads: Vec<_> = (0..count)
        .map(|p| {
            let config = PacedConfig {
                target: template.target,
                events: template.events / count + (p < template.events % count) as u64,
                rate: template.rate.map(|r| r / count as f64),
                size: template.size,
                topics: template.topics.clone(),
                // Sequence numbers of different publishers never meet.
                first_seq: template.first_seq + p * 1_000_000_000,
                seed: template.seed.wrapping_add(p),
                abort: template.abort.clone(),
                retry_for: template.retry_for,
            };
            std::thread::spawn(move || run(config))
        })
        .collect();
    threads
        .into_iter()
        .map(|t| {
            t.join().unwrap_or_else(|_| PacedOutcome {
                error: Some("publisher thread panicked".into()),
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_has_the_size_and_the_numbers() {
        let data = event_data(7, 3, 64);
        assert_eq!(data.len(), 64);
        let text = String::from_utf8(data).unwrap();
        let fields: Vec<&str> = text.split(' ').collect();
        assert_eq!((fields[0], fields[2]), ("7", "3"));
        assert!(fields[1].parse::<u64>().is_ok());
    }
}
