//! A [`Syscall`] test double: records each call as a line of text and can fail one of them.

use std::cell::RefCell;
use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

use super::Syscall;

#[derive(Default)]
pub(crate) struct Recording {
    pub calls: RefCell<Vec<String>>,
    /// Calls whose text starts with this prefix fail with `fail_errno`.
    pub fail_prefix: Option<String>,
    pub fail_errno: i32,
    /// `fork` returns 0 (continue as the child) instead of a pid.
    pub fork_as_child: bool,
}

impl Recording {
    pub fn failing(prefix: &str, errno: i32) -> Self {
        Recording {
            fail_prefix: Some(prefix.to_owned()),
            fail_errno: errno,
            ..Recording::default()
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: String) -> io::Result<()> {
        let fail = self
            .fail_prefix
            .as_deref()
            .is_some_and(|prefix| call.starts_with(prefix));
        self.calls.borrow_mut().push(call);
        if fail {
            Err(io::Error::from_raw_os_error(self.fail_errno))
        } else {
            Ok(())
        }
    }
}

/// The payload `exit` unwinds with (tests catch it).
pub(crate) struct Exited;

/// Runs `f` (which ends in `Syscall::exit`) and returns the recorded calls.
pub(crate) fn until_exit(rec: &Recording, f: impl FnOnce()) -> Vec<String> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    match result {
        Err(payload) if payload.is::<Exited>() => rec.calls(),
        Err(payload) => std::panic::resume_unwind(payload),
        Ok(()) => panic!("returned instead of exiting"),
    }
}

fn s(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

fn o(c: Option<&CStr>) -> String {
    c.map_or_else(|| "-".to_owned(), s)
}

impl Syscall for Recording {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> io::Result<()> {
        self.record(format!(
            "mount {} {} {} {} {}",
            o(source),
            s(target),
            o(fstype),
            crate::plan::flag_names(flags),
            o(data)
        ))
    }
    fn set_read_only(&self, target: &CStr, recursive: bool) -> io::Result<()> {
        let scope = if recursive { " recursive" } else { "" };
        self.record(format!("read-only {}{scope}", s(target)))
    }
    fn pivot_root(&self, new_root: &CStr) -> io::Result<()> {
        self.record(format!("pivot-root {}", s(new_root)))
    }
    fn mkdir(&self, path: &CStr, mode: u32) -> io::Result<()> {
        self.record(format!("mkdir {} {mode:o}", s(path)))
    }
    fn create_file(&self, path: &CStr, mode: u32) -> io::Result<()> {
        self.record(format!("create {} {mode:o}", s(path)))
    }
    fn symlink(&self, target: &CStr, link: &CStr) -> io::Result<()> {
        self.record(format!("symlink {} -> {}", s(link), s(target)))
    }
    fn open_at_fd(&self, path: &CStr, fd: RawFd, directory: bool) -> io::Result<()> {
        let kind = if directory { "dir" } else { "file" };
        self.record(format!("open {} at {fd} {kind}", s(path)))
    }
    fn sethostname(&self, name: &CStr) -> io::Result<()> {
        self.record(format!("sethostname {}", s(name)))
    }
    fn loopback_up(&self) -> io::Result<()> {
        self.record("loopback-up".to_owned())
    }
    fn umask(&self, mask: u32) {
        let _ = self.record(format!("umask {mask:o}"));
    }
    fn reset_signals(&self) -> io::Result<()> {
        self.record("reset-signals".to_owned())
    }
    fn parent_death_signal(&self, signal: i32) -> io::Result<()> {
        self.record(format!("pdeathsig {signal}"))
    }
    fn wait_for_parent(&self, fd: RawFd) -> bool {
        self.record(format!("wait-for-parent {fd}")).is_ok()
    }
    fn dup_onto(&self, from: RawFd, to: RawFd, cloexec: bool) -> io::Result<()> {
        self.record(format!("dup {from} -> {to} cloexec={cloexec}"))
    }
    fn close_from(&self, first: RawFd) -> io::Result<()> {
        self.record(format!("close-from {first}"))
    }
    fn no_new_privs(&self) -> io::Result<()> {
        self.record("no-new-privs".to_owned())
    }
    fn new_session_keyring(&self) -> io::Result<()> {
        self.record("new-session-keyring".to_owned())
    }
    fn set_dumpable(&self, dumpable: bool) -> io::Result<()> {
        self.record(format!("dumpable {dumpable}"))
    }
    fn setsid(&self) -> io::Result<()> {
        self.record("setsid".to_owned())
    }
    fn drop_bounding_caps(&self, keep: u64) -> io::Result<()> {
        self.record(format!("bounding-caps {keep:#x}"))
    }
    fn set_caps(&self, keep: u64) -> io::Result<()> {
        self.record(format!("caps {keep:#x}"))
    }
    fn clear_groups(&self) -> io::Result<()> {
        self.record("setgroups []".to_owned())
    }
    fn set_ids(&self, uid: u32, gid: u32) -> io::Result<()> {
        self.record(format!("set-ids {uid}:{gid}"))
    }
    fn set_rlimit(&self, resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
        self.record(format!("rlimit {resource} {value}"))
    }
    fn chdir(&self, path: &CStr) -> io::Result<()> {
        self.record(format!("chdir {}", s(path)))
    }
    fn cwd_reachable(&self) -> io::Result<bool> {
        self.record("getcwd".to_owned()).map(|()| true)
    }
    fn execve(
        &self,
        program: &CStr,
        _argv: *const *const libc::c_char,
        _envp: *const *const libc::c_char,
    ) -> io::Error {
        let _ = self.record(format!("execve {}", s(program)));
        io::Error::from_raw_os_error(libc::ENOENT)
    }
    fn fork(&self) -> io::Result<libc::pid_t> {
        let pid = if self.fork_as_child { 0 } else { 2 };
        self.record("fork".to_owned()).map(|()| pid)
    }
    fn wait_any(&self) -> io::Result<Option<(libc::pid_t, i32)>> {
        self.record("wait".to_owned()).map(|()| None)
    }
    fn kill_all(&self) {
        let _ = self.record("kill-all".to_owned());
    }
    fn write_all(&self, fd: RawFd, bytes: &[u8]) {
        let _ = self.record(format!("write {fd} {bytes:?}"));
    }
    fn exit(&self, code: i32) -> ! {
        self.calls.borrow_mut().push(format!("exit {code}"));
        std::panic::resume_unwind(Box::new(Exited))
    }
}
