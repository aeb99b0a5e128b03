//! One thread's connection to Redis: connected with a timeout, every command bounded by one,
//! and reconnected with a growing pause after a failure, so that a Redis that is down costs a
//! connection attempt now and then, never a spin.

use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisResult};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The first pause after a failure, doubled after each one that follows.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

pub struct Link {
    client: Client,
    /// How long one reply may take before the connection is taken for dead.
    reply_timeout: Duration,
    connection: Option<Connection>,
    pause: Duration,
    next_attempt: Instant,
}

impl Link {
    pub fn new(client: Client, reply_timeout: Duration) -> Link {
        Link {
            client,
            reply_timeout,
            connection: None,
            pause: FIRST_PAUSE,
            next_attempt: Instant::now(),
        }
    }

    /// The connection, once `connect` has made one and no failure has dropped it since.
    pub fn connection(&mut self) -> Option<&mut Connection> {
        self.connection.as_mut()
    }

    /// True when a new attempt may be made now.
    pub fn may_attempt(&self) -> bool {
        self.connection.is_none() && Instant::now() >= self.next_attempt
    }

    /// How long until the next attempt may be made.
    pub fn wait_for_attempt(&self) -> Duration {
        self.next_attempt.saturating_duration_since(Instant::now())
    }

    /// Connects, or returns why not and waits a pause before the next attempt.
    pub fn connect(&mut self) -> RedisResult<&mut Connection> {
        match self.open() {
            Ok(connection) => {
                self.pause = FIRST_PAUSE;
                Ok(self.connection.insert(connection))
            }
            Err(e) => {
                self.failed();
                Err(e)
            }
        }
    }

    fn open(&self) -> RedisResult<Connection> {
        let connection = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(self.reply_timeout))?;
        connection.set_write_timeout(Some(self.reply_timeout))?;
        Ok(connection)
    }

    /// Drops the connection after a failure; the next attempt waits a pause that grows (a
    /// second failure before any new attempt does not grow it again).
    pub fn failed(&mut self) {
        let now = Instant::now();
        if self.connection.is_none() && self.next_attempt > now {
            return;
        }
        self.connection = None;
        self.next_attempt = now + self.pause;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
    }
}
