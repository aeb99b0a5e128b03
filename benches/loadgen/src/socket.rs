//! Client sockets for the load: nonblocking connects from 127.0.0.x, options a real network
//! would impose, and an abortive close.

use mio::net::TcpStream;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd};

/// Options set before connecting.
#[derive(Clone, Copy, Default)]
pub struct SocketOptions {
    /// Largest segment the client accepts (TCP_MAXSEG). Loopback's 64 KiB segments let the
    /// server's kernel grow a send buffer of about 3 MB for one stream, far ahead of what the
    /// server itself queues; 1400 is what an Ethernet path gives, about 100 KB.
    pub mss: Option<u32>,
    /// Receive buffer (SO_RCVBUF), which also turns its autotuning off.
    pub receive_buffer: Option<u32>,
}

fn set_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value points to a live c_int of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

/// Opens a nonblocking connection from 127.0.0.`source`. IP_BIND_ADDRESS_NO_PORT defers the
/// choice of source port to connect(), so each source address has the whole ephemeral range
/// for this destination: that is how 50k connections fit on loopback.
pub fn open(source: Ipv4Addr, target: SocketAddrV4, options: SocketOptions) -> io::Result<TcpStream> {
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket we own; the stream closes it on every path from here.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let _ = set_int(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
    if let Some(mss) = options.mss {
        set_int(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG, mss as i32)?;
    }
    if let Some(size) = options.receive_buffer {
        set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size as i32)?;
    }
    let local = sockaddr(SocketAddrV4::new(source, 0));
    // SAFETY: `local` is a valid sockaddr_in of `len` bytes.
    if unsafe { libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let remote = sockaddr(target);
    // SAFETY: `remote` is a valid sockaddr_in of `len` bytes.
    if unsafe { libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(err);
        }
    }
    Ok(stream)
}

/// 127.0.0.1 .. 127.0.0.N, round robin.
pub fn source_address(index: usize, source_ips: u32) -> Ipv4Addr {
    let host = 1 + (index as u32 % source_ips.clamp(1, 254));
    Ipv4Addr::new(127, 0, 0, host as u8)
}

/// Closes with a reset instead of a FIN (SO_LINGER with a zero timeout), as a client that
/// crashes or a middlebox that gives up does.
pub fn reset(stream: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the option value points to a live linger struct of the stated size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

/// A small xorshift generator: the scenarios need cheap, seedable randomness, not quality.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponentially distributed wait with the given mean: the gaps of a Poisson process.
    pub fn exponential_ns(&mut self, mean_ns: f64) -> u64 {
        (-(1.0 - self.unit()).ln() * mean_ns) as u64
    }
}
