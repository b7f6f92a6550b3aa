//! Every system call the sandbox child makes, behind one trait.
//!
//! As in youki's `syscall/`, the mount plan and the process setup are written against
//! [`Syscall`], so unit tests run them against [`recording::Recording`] without privileges and
//! assert the exact sequence of operations, while `tests/` exercises [`linux::Linux`] on a
//! real kernel.
//!
//! The real implementation runs in a child made by a raw `clone` of a possibly multithreaded
//! parent: it must not allocate, lock, or use glibc functions that assume glibc's thread list
//! is accurate (setresuid(3) and friends broadcast to threads that no longer exist), so it
//! calls the kernel directly and reports errors as `io::Error::from_raw_os_error`, which does
//! not allocate.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

pub(crate) mod linux;
#[cfg(test)]
pub(crate) mod recording;

pub(crate) trait Syscall {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> io::Result<()>;
    /// Makes the mount at `target` (and with `recursive` every mount below it) read-only.
    /// mount_setattr(2) only adds the flag, so the locked flags of a mount inherited from the
    /// host survive, where a remount would have to repeat them.
    fn set_read_only(&self, target: &CStr, recursive: bool) -> io::Result<()>;
    /// `chdir(new_root)`, `pivot_root(".", ".")`, lazily unmount the old root stacked on top,
    /// `chdir("/")`: afterwards no path leads back to the host.
    fn pivot_root(&self, new_root: &CStr) -> io::Result<()>;
    fn mkdir(&self, path: &CStr, mode: u32) -> io::Result<()>;
    fn create_file(&self, path: &CStr, mode: u32) -> io::Result<()>;
    fn symlink(&self, target: &CStr, link: &CStr) -> io::Result<()>;
    /// Opens `path` (`O_PATH`, a directory if `directory`) and places it at descriptor `fd`.
    fn open_at_fd(&self, path: &CStr, fd: RawFd, directory: bool) -> io::Result<()>;
    fn sethostname(&self, name: &CStr) -> io::Result<()>;
    fn loopback_up(&self) -> io::Result<()>;

    fn umask(&self, mask: u32);
    fn reset_signals(&self) -> io::Result<()>;
    fn parent_death_signal(&self, signal: i32) -> io::Result<()>;
    /// Blocks until the parent writes one byte; `false` if it closed the pipe (died).
    fn wait_for_parent(&self, fd: RawFd) -> bool;
    fn dup_onto(&self, from: RawFd, to: RawFd, cloexec: bool) -> io::Result<()>;
    fn close_from(&self, first: RawFd) -> io::Result<()>;
    fn no_new_privs(&self) -> io::Result<()>;
    /// Replaces the session keyring inherited from kiln with a new anonymous one.
    fn new_session_keyring(&self) -> io::Result<()>;
    fn set_dumpable(&self, dumpable: bool) -> io::Result<()>;
    fn setsid(&self) -> io::Result<()>;
    fn drop_bounding_caps(&self, keep: u64) -> io::Result<()>;
    fn set_caps(&self, keep: u64) -> io::Result<()>;
    fn clear_groups(&self) -> io::Result<()>;
    fn set_ids(&self, uid: u32, gid: u32) -> io::Result<()>;
    /// Sets the soft and hard limit of `resource` to `value` (prlimit64 on this process).
    fn set_rlimit(&self, resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()>;
    fn chdir(&self, path: &CStr) -> io::Result<()>;
    /// Whether the working directory is inside the current root (getcwd(2) does not report it
    /// as unreachable).
    fn cwd_reachable(&self) -> io::Result<bool>;
    fn execve(
        &self,
        program: &CStr,
        argv: *const *const libc::c_char,
        envp: *const *const libc::c_char,
    ) -> io::Error;
    /// Returns 0 in the child, the child's pid in the parent.
    fn fork(&self) -> io::Result<libc::pid_t>;
    /// Reaps one child: `None` when there are none left.
    fn wait_any(&self) -> io::Result<Option<(libc::pid_t, i32)>>;
    /// Sends SIGKILL to every other process of the pid namespace.
    fn kill_all(&self);
    fn write_all(&self, fd: RawFd, bytes: &[u8]);
    fn exit(&self, code: i32) -> !;
}
