//! ssed: a tiny, fast Server-Sent Events server.
//!
//! One single-threaded mio loop owns every socket. Publishers on any thread hand events to it
//! through a bounded queue and a waker; each event is encoded once into a frame that all its
//! subscribers share, and each subscriber is written with one vectored send per loop turn.
//!
//! ```no_run
//! use ssed::{Config, Event, Server};
//!
//! let server = Server::bind(Config::default())?;
//! let handle = server.handle();
//! let thread = server.spawn()?;
//! handle.publish(&Event::new("hello").topic("news"))?;
//! handle.stop();
//! thread.join().expect("loop thread")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

mod auth;
mod config;
mod conn;
mod event;
mod event_loop;
pub mod ffi;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod hooks;
mod host;
mod http;
mod input;
mod log;
#[cfg(feature = "loops")]
mod loops;
#[doc(hidden)]
pub mod mercure;
mod params;
#[cfg(feature = "host")]
mod presence;
mod publish_socket;
mod requests;
mod server;
#[cfg(feature = "sockets")]
#[doc(hidden)]
pub mod sockets;
mod stats;
mod store;
mod subscription;
#[doc(hidden)]
pub mod sys;
#[cfg(feature = "tls")]
mod tls;

pub use config::{
    Config, Cors, FsyncPolicy, Issuer, LogLevel, MAX_INTERVAL, MAX_LOOPS, MIN_REDIS_HISTORY,
    resolve_listen,
};
pub use event::Event;
pub use frame::FieldError;
pub use hooks::{Access, AccessHook, AccessRequest, Hooks, LogHook, StreamEvent, StreamHook};
pub use server::{Handle, Server};

/// True when this build speaks HTTPS (the cargo feature `tls`).
pub const TLS: bool = cfg!(feature = "tls");
pub use stats::Stats;
pub use store::PublishError;
