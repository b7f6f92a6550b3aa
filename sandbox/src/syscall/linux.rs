//! The real [`Syscall`]: raw system calls, no allocation, no glibc thread bookkeeping.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::ptr;

use super::Syscall;

pub(crate) struct Linux;

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn opt_ptr(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

impl Syscall for Linux {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> io::Result<()> {
        // SAFETY: every pointer is a NUL-terminated string or null.
        let rc = unsafe {
            libc::mount(
                opt_ptr(source),
                target.as_ptr(),
                opt_ptr(fstype),
                flags,
                opt_ptr(data).cast(),
            )
        };
        check(rc.into())
    }

    fn set_read_only(&self, target: &CStr, recursive: bool) -> io::Result<()> {
        let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: target is a C string, attr a valid mount_attr of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                target.as_ptr(),
                flags as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        check(rc)
    }

    fn pivot_root(&self, new_root: &CStr) -> io::Result<()> {
        self.chdir(new_root)?;
        // SAFETY: C string literals.
        unsafe {
            check(libc::syscall(
                libc::SYS_pivot_root,
                c".".as_ptr(),
                c".".as_ptr(),
            ))?;
            check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH).into())?;
        }
        self.chdir(c"/")
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: path is a C string.
        check(unsafe { libc::mkdir(path.as_ptr(), mode) }.into())
    }

    fn create_file(&self, path: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: path is a C string; the descriptor is closed right away.
        unsafe {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                mode,
            );
            check(fd.into())?;
            libc::close(fd);
        }
        Ok(())
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> io::Result<()> {
        // SAFETY: C strings.
        check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }.into())
    }

    fn open_at_fd(&self, path: &CStr, fd: RawFd, directory: bool) -> io::Result<()> {
        let dir_flag = if directory { libc::O_DIRECTORY } else { 0 };
        // SAFETY: path is a C string; the temporary descriptor is closed after dup3.
        unsafe {
            let tmp = libc::open(path.as_ptr(), libc::O_PATH | dir_flag | libc::O_CLOEXEC);
            check(tmp.into())?;
            let rc = libc::dup3(tmp, fd, libc::O_CLOEXEC);
            libc::close(tmp);
            check(rc.into())
        }
    }

    fn sethostname(&self, name: &CStr) -> io::Result<()> {
        let bytes = name.to_bytes();
        // SAFETY: bytes is valid for its length.
        check(unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) }.into())
    }

    fn loopback_up(&self) -> io::Result<()> {
        // SAFETY: ifreq is plain data; the socket is closed on every path.
        unsafe {
            let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            check(sock.into())?;
            let mut req: libc::ifreq = std::mem::zeroed();
            for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *dst = *src as libc::c_char;
            }
            let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
            if rc == 0 {
                req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
            }
            let result = check(rc.into());
            libc::close(sock);
            result
        }
    }

    fn umask(&self, mask: u32) {
        // SAFETY: always succeeds.
        unsafe { libc::umask(mask) };
    }

    fn reset_signals(&self) -> io::Result<()> {
        // The kernel's struct sigaction (glibc's signal(3) refuses its reserved signals 32
        // and 33, which would stay ignored if kiln ignored them).
        #[repr(C)]
        struct KernelSigaction {
            handler: usize,
            flags: libc::c_ulong,
            restorer: usize,
            mask: u64,
        }
        let default = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        let empty: u64 = 0;
        // SAFETY: valid kernel structures of the sizes passed.
        unsafe {
            check(libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &empty as *const u64,
                ptr::null_mut::<u64>(),
                8usize,
            ))?;
            for signal in 1..=64 {
                if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                    continue;
                }
                check(libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    &default as *const KernelSigaction,
                    ptr::null_mut::<KernelSigaction>(),
                    8usize,
                ))?;
            }
        }
        Ok(())
    }

    fn parent_death_signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) }.into())
    }

    fn wait_for_parent(&self, fd: RawFd) -> bool {
        let mut byte = 0u8;
        loop {
            // SAFETY: reads one byte into a local.
            let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
            if n == 1 {
                return true;
            }
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
    }

    fn dup_onto(&self, from: RawFd, to: RawFd, cloexec: bool) -> io::Result<()> {
        let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
        // SAFETY: descriptors only.
        unsafe {
            if from == to {
                let fd_flags = if cloexec { libc::FD_CLOEXEC } else { 0 };
                return check(libc::fcntl(to, libc::F_SETFD, fd_flags).into());
            }
            check(libc::dup3(from, to, flags).into())
        }
    }

    fn close_from(&self, first: RawFd) -> io::Result<()> {
        // SAFETY: closing descriptors this process owns.
        check(unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) })
    }

    fn no_new_privs(&self) -> io::Result<()> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) }.into())
    }

    fn new_session_keyring(&self) -> io::Result<()> {
        const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
        // SAFETY: a null name asks for a new anonymous keyring.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_JOIN_SESSION_KEYRING,
                ptr::null::<libc::c_char>(),
            )
        };
        match check(rc) {
            // A kernel without keys support has nothing to leak.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Ok(()),
            other => other,
        }
    }

    fn set_dumpable(&self, dumpable: bool) -> io::Result<()> {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong) }.into())
    }

    fn set_rlimit(&self, resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
        let limit = libc::rlimit64 {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: the raw syscall (no glibc wrapper state); `limit` outlives the call.
        check(unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0,
                resource as libc::c_int,
                &limit as *const libc::rlimit64,
                std::ptr::null_mut::<libc::rlimit64>(),
            )
        })
    }

    fn setsid(&self) -> io::Result<()> {
        // SAFETY: no arguments.
        check(unsafe { libc::setsid() }.into())
    }

    fn drop_bounding_caps(&self, keep: u64) -> io::Result<()> {
        for cap in 0..64u64 {
            if keep & (1 << cap) != 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINVAL) {
                    break; // past the last capability this kernel knows
                }
                return Err(err);
            }
        }
        Ok(())
    }

    fn set_caps(&self, keep: u64) -> io::Result<()> {
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let word = |shift: u32| {
            let bits = (keep >> shift) as u32;
            CapData {
                effective: bits,
                permitted: bits,
                inheritable: 0,
            }
        };
        let data = [word(0), word(32)];
        // SAFETY: header and two data words, as capset(2) expects for version 3.
        check(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) })?;
        // SAFETY: prctl with integer arguments.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        check(rc.into())
    }

    fn clear_groups(&self) -> io::Result<()> {
        // SAFETY: an empty group list.
        check(unsafe { libc::syscall(libc::SYS_setgroups, 0usize, ptr::null::<libc::gid_t>()) })
    }

    fn set_ids(&self, uid: u32, gid: u32) -> io::Result<()> {
        // Raw syscalls: glibc's wrappers would signal the parent's threads (see module docs).
        // SAFETY: integer arguments.
        unsafe {
            check(libc::syscall(libc::SYS_setresgid, gid, gid, gid))?;
            check(libc::syscall(libc::SYS_setresuid, uid, uid, uid))
        }
    }

    fn chdir(&self, path: &CStr) -> io::Result<()> {
        // SAFETY: path is a C string.
        check(unsafe { libc::chdir(path.as_ptr()) }.into())
    }

    fn cwd_reachable(&self) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        // SAFETY: the kernel writes at most buf.len() bytes.
        let rc = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            // ENAMETOOLONG: a deep but reachable directory.
            return match err.raw_os_error() {
                Some(libc::ENAMETOOLONG) => Ok(true),
                _ => Err(err),
            };
        }
        // The kernel prefixes "(unreachable)" when the directory is outside the root.
        Ok(buf[0] == b'/')
    }

    fn execve(
        &self,
        program: &CStr,
        argv: *const *const libc::c_char,
        envp: *const *const libc::c_char,
    ) -> io::Error {
        // SAFETY: argv and envp are null-terminated arrays of C strings owned by the caller.
        unsafe { libc::execve(program.as_ptr(), argv, envp) };
        io::Error::last_os_error()
    }

    fn fork(&self) -> io::Result<libc::pid_t> {
        // A raw clone: glibc's fork(3) would take malloc locks possibly held by threads of
        // the parent that do not exist in this process.
        // SAFETY: no CLONE_VM, so the child gets its own copy of the address space.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        check(rc)?;
        Ok(rc as libc::pid_t)
    }

    fn wait_any(&self) -> io::Result<Option<(libc::pid_t, i32)>> {
        let mut status = 0;
        loop {
            // SAFETY: status is a local.
            let pid = unsafe { libc::wait4(-1, &mut status, libc::__WALL, ptr::null_mut()) };
            if pid >= 0 {
                return Ok(Some((pid, status)));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(err),
            }
        }
    }

    fn kill_all(&self) {
        // SAFETY: kill(-1) from a pid namespace's init reaches only that namespace.
        unsafe { libc::kill(-1, libc::SIGKILL) };
    }

    fn write_all(&self, fd: RawFd, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            // SAFETY: bytes is valid for its length.
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if n < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return;
            }
            bytes = &bytes[n as usize..];
        }
    }

    fn exit(&self, code: i32) -> ! {
        // SAFETY: ends the process without running the parent's atexit handlers.
        unsafe { libc::_exit(code) }
    }
}
