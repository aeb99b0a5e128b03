//! Listening sockets other than the one `listen` binds: sockets a service manager passes
//! (systemd's socket activation, `LISTEN_FDS`), and the Unix-domain publish socket.
//!
//! With socket activation systemd owns the listening socket and hands it to each process it
//! starts: while ssed restarts, connections wait in the socket's backlog and are served by the
//! next process, so a restart refuses none.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The sockets systemd passed to this process, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Activated {
    /// A listening TCP socket: the HTTP listener.
    pub tcp: Option<RawFd>,
    /// A listening Unix-domain socket: the publish socket.
    pub unix: Option<RawFd>,
}

/// The sockets of systemd's socket activation, when `LISTEN_PID` names this process: at most
/// one listening TCP socket and one listening Unix-domain socket, told apart by their family.
/// `None` when the process was not socket-activated.
pub fn systemd_sockets() -> Result<Option<Activated>, String> {
    let (Ok(pid), Ok(count)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None); // meant for another process (a parent that did not clear them)
    }
    let count: RawFd = count
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS: expected a number, got '{count}'"))?;
    let mut activated = Activated::default();
    for fd in LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(count) {
        let (slot, kind) = match listening_family(fd) {
            Ok(libc::AF_INET | libc::AF_INET6) => (&mut activated.tcp, "TCP"),
            Ok(libc::AF_UNIX) => (&mut activated.unix, "Unix-domain"),
            Ok(other) => {
                return Err(format!(
                    "socket {fd} from systemd is of family {other}, neither TCP nor Unix-domain"
                ));
            }
            Err(e) => return Err(format!("socket {fd} from systemd: {e}")),
        };
        if slot.replace(fd).is_some() {
            return Err(format!(
                "systemd passed more than one listening {kind} socket; ssed serves one of each"
            ));
        }
        set_cloexec(fd);
    }
    Ok(Some(activated))
}

/// Takes over `fd`, a listening TCP socket (from systemd or a host program).
pub fn inherited_tcp(fd: RawFd) -> io::Result<std::net::TcpListener> {
    match listening_family(fd)? {
        libc::AF_INET | libc::AF_INET6 => {}
        _ => return Err(not_listening(fd, "a listening TCP socket")),
    }
    // SAFETY: `fd` is an open listening TCP socket, which the caller hands over to us.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    set_cloexec(fd);
    Ok(listener)
}

/// Takes over `fd`, a listening Unix-domain socket, as the publish socket.
pub fn inherited_unix(fd: RawFd) -> io::Result<UnixListener> {
    if listening_family(fd)? != libc::AF_UNIX {
        return Err(not_listening(fd, "a listening Unix-domain socket"));
    }
    // SAFETY: `fd` is an open listening Unix-domain socket, which the caller hands over to us.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    set_cloexec(fd);
    Ok(listener)
}

fn not_listening(fd: RawFd, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("file descriptor {fd} is not {what}"),
    )
}

/// The address family of `fd` when it is a listening stream socket.
fn listening_family(fd: RawFd) -> io::Result<libc::c_int> {
    let int_option = |level, name| -> io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the value and length point to a live c_int and its size.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value)
    };
    let listening = int_option(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? != 0;
    let stream = int_option(libc::SOL_SOCKET, libc::SO_TYPE)? == libc::SOCK_STREAM;
    if !listening || !stream {
        return Err(not_listening(fd, "a listening stream socket"));
    }
    int_option(libc::SOL_SOCKET, libc::SO_DOMAIN)
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl(2) on a descriptor we were handed; a failure leaves it as it was.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// A publish socket ssed created at a path, which it removes when it stops (if the file there
/// is still the one it made).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    inode: (u64, u64),
}

/// Mode of a publish socket ssed creates: its owner and group may connect.
const SOCKET_MODE: u32 = 0o660;

/// Creates the publish socket at `path`. A socket file left there by a server that is gone
/// (nobody accepts on it) is replaced; anything else at the path is an error naming it.
pub fn create_publish_socket(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    let named = |e: io::Error, what: &str| {
        io::Error::new(
            e.kind(),
            format!("publish socket {}: {what}: {e}", path.display()),
        )
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "publish socket {}: the path exists and is not a socket",
                    path.display()
                ),
            ));
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "publish socket {}: another server listens on it",
                        path.display()
                    ),
                ));
            }
            // Nobody listens: a socket file left by a server that is gone.
            Err(_) => std::fs::remove_file(path).map_err(|e| named(e, "cannot replace it"))?,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(named(e, "cannot look at it")),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "publish socket {}: the directory {} does not exist",
                path.display(),
                dir.display()
            ),
        ));
    }
    let listener = UnixListener::bind(path).map_err(|e| named(e, "cannot create it"))?;
    let file = std::fs::metadata(path).map_err(|e| named(e, "cannot look at it"))?;
    let socket = SocketFile {
        path: path.to_owned(),
        inode: (file.dev(), file.ino()),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| named(e, "cannot set its mode"))?;
    listener.set_nonblocking(true)?;
    Ok((listener, socket))
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_socket_file_is_replaced_and_a_live_one_refused() {
        let dir = std::env::temp_dir().join(format!("ssed-sock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("publish.sock");
        drop(UnixListener::bind(&path).unwrap()); // leaves the file, nobody listening
        let (listener, file) = create_publish_socket(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let busy = create_publish_socket(&path).unwrap_err();
        assert!(busy.to_string().contains("another server"), "{busy}");
        drop((listener, file));
        assert!(!path.exists(), "removed when the server stops");
        std::fs::write(&path, "x").unwrap();
        let taken = create_publish_socket(&path).unwrap_err();
        assert!(taken.to_string().contains("not a socket"), "{taken}");
        let missing = create_publish_socket(&dir.join("no/such.sock")).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inherited_sockets_must_be_listening_sockets_of_their_kind() {
        use std::os::fd::IntoRawFd;
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let fd = tcp.into_raw_fd();
        assert!(inherited_unix(fd).is_err());
        let back = inherited_tcp(fd).unwrap();
        assert_eq!(back.local_addr().unwrap(), addr);
        let client = std::net::TcpStream::connect(addr).unwrap();
        use std::os::fd::AsRawFd;
        assert!(inherited_tcp(client.as_raw_fd()).is_err(), "not listening");
    }
}
