//! The parent's descriptors: opening, pipes, and reading the step's output without blocking.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Result, SandboxError};
use crate::run::Stream;
use crate::spec::{SpecError, Stdio};

fn host(action: &'static str, source: std::io::Error) -> SandboxError {
    SandboxError::Host { action, source }
}

/// Keeps the last `limit` bytes written to it.
pub(crate) struct Tail {
    buf: Vec<u8>,
    limit: usize,
}

impl Tail {
    pub(crate) fn new(limit: usize) -> Tail {
        Tail {
            buf: Vec::new(),
            limit,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.limit {
            let excess = self.buf.len() - self.limit;
            self.buf.drain(..excess);
        }
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

pub(crate) fn drain(
    fd: &mut Option<OwnedFd>,
    stream: Stream,
    tail: &mut Tail,
    on_output: &mut dyn FnMut(Stream, &[u8]),
    revents: libc::c_short,
) -> Result<()> {
    let Some(owned) = fd else { return Ok(()) };
    if revents == 0 {
        return Ok(());
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        // SAFETY: reading into a local buffer of the given size.
        let n = unsafe { libc::read(owned.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            let chunk = &buf[..n as usize];
            tail.push(chunk);
            on_output(stream, chunk);
            continue;
        }
        if n == 0 {
            *fd = None; // EOF
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(()),
            _ => return Err(host("read the step's output", e)),
        }
    }
}

pub(crate) fn read_available(fd: &OwnedFd) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: reading into a local buffer of the given size.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            out.extend_from_slice(&buf[..n as usize]);
            continue;
        }
        if n == 0 {
            return Ok(out);
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(out),
            _ => return Err(host("read the sandbox's status", e)),
        }
    }
}

pub(crate) fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

pub(crate) fn open_path(path: &Path, dir: bool) -> Result<OwnedFd> {
    let flags = libc::O_PATH | if dir { libc::O_DIRECTORY } else { 0 };
    open_file(path, flags)
}

pub(crate) fn open_file(path: &Path, flags: libc::c_int) -> Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| SpecError::UnsupportedPath {
        path: path.to_owned(),
    })?;
    // SAFETY: c is a C string; the descriptor is owned by the returned OwnedFd.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(SandboxError::Open {
            path: path.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: fd was just opened and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(host("create a pipe", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(crate) fn stream_pipe(stdio: Stdio) -> Result<Option<(OwnedFd, OwnedFd)>> {
    match stdio {
        Stdio::Pipe => pipe().map(Some),
        Stdio::Inherit | Stdio::Null => Ok(None),
    }
}

pub(crate) fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let rc = unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
    };
    if rc < 0 {
        return Err(host("configure a pipe", std::io::Error::last_os_error()));
    }
    Ok(())
}

pub(crate) fn write_byte(fd: &OwnedFd) -> Result<()> {
    // SAFETY: writes one byte from a static.
    let n = unsafe { libc::write(fd.as_raw_fd(), b"g".as_ptr().cast(), 1) };
    if n != 1 {
        return Err(host("start the sandbox", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut tail = Tail::new(4);
        tail.push(b"ab");
        tail.push(b"cdef");
        tail.push(b"g");
        assert_eq!(tail.into_vec(), b"defg");
    }
}
