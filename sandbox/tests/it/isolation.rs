//! SECURITY.md cases 22-27: what a step can reach.

use std::io::Read;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::time::Duration;

use kiln_sandbox::{IdMapping, SandboxError, SpecError};

use crate::common::{mapping, Ctx};

// Case 22: a step sees only its stdio descriptors.
#[test]
fn step_sees_only_stdio_descriptors() {
    let ctx = Ctx::new();
    let out =
        ctx.stdout("for i in $(seq 0 1023); do test -e /proc/$$/fd/$i && echo $i; done; true");
    assert_eq!(out, "0\n1\n2\n");
}

// Case 22 (runc CVE-2024-21626): a working directory under /proc is refused up front...
#[test]
fn cwd_in_proc_fd_is_refused() {
    let ctx = Ctx::new();
    let mut spec = ctx.spec("pwd");
    spec.cwd = "/proc/self/fd/3".into();
    let err = kiln_sandbox::run(&spec).unwrap_err();
    assert!(
        matches!(err, SandboxError::Spec(SpecError::CwdInProc { .. })),
        "{err:?}"
    );
}

// ... and an image symlink pointing there finds no directory descriptor to escape through.
#[test]
fn cwd_symlink_into_proc_fd_fails() {
    let ctx = Ctx::new();
    for fd in 0..8 {
        std::os::unix::fs::symlink(
            format!("/proc/self/fd/{fd}"),
            ctx.lower.join(format!("w{fd}")),
        )
        .unwrap();
    }
    for fd in 0..8 {
        let mut spec = ctx.spec("pwd");
        spec.cwd = format!("/w{fd}");
        let result = kiln_sandbox::run(&spec);
        assert!(
            matches!(result, Err(SandboxError::Setup { .. })),
            "fd {fd}: {result:?}"
        );
    }
}

// Case 23 (runc CVE-2019-5736): the sandbox's init is a fork of this very binary.
#[test]
fn cannot_write_or_ptrace_the_kiln_binary() {
    let ctx = Ctx::new();
    let exe = std::env::current_exe().unwrap();
    let before = fs_err::read(&exe).unwrap();
    let out = ctx.stdout(
        "for f in /proc/[0-9]*/exe; do \
           (echo x >> $f) 2>/dev/null && echo WROTE $f; \
           (head -c1 $f >/dev/null) 2>/dev/null && echo READ $f; \
         done; \
         readlink /proc/1/exe && echo LINK; \
         (head -c1 /proc/1/mem) 2>/dev/null && echo MEM; \
         readlink /proc/1/fd/0 && echo FDS; \
         readlink /proc/1/cwd && echo CWD; \
         (head -c1 /proc/1/maps) 2>/dev/null && echo MAPS; \
         c=$(tr -d '\\0' < /proc/1/cmdline 2>/dev/null); test -n \"$c\" && echo CMDLINE; \
         (head -c1 /proc/1/environ) 2>/dev/null && echo ENVIRON; \
         ls /proc/1/root/ >/dev/null 2>&1 && echo ROOT; true",
    );
    // Its own processes (sh, the subshells) are busybox: readable, not writable while running.
    assert!(!out.contains("WROTE"), "{out}");
    assert!(!out.contains("READ /proc/1/exe"), "{out}");
    // /proc/1/mem needs PTRACE_MODE_ATTACH, the same check as ptrace(2) itself.
    for denied in [
        "LINK", "MEM", "FDS", "CWD", "MAPS", "CMDLINE", "ENVIRON", "ROOT",
    ] {
        assert!(!out.contains(denied), "{denied}: {out}");
    }
    assert!(
        fs_err::read(&exe).unwrap() == before,
        "the test binary changed"
    );
}

// Case 24: only loopback; the host's 127.0.0.1 is unreachable.
#[test]
fn only_loopback_and_host_localhost_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let ctx = Ctx::new();
    let out = ctx.stdout(&format!(
        "nc -w 2 127.0.0.1 {port} </dev/null && echo CONNECTED; \
         ls /sys/class/net 2>/dev/null; cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '; \
         for i in $(seq 50); do \
           nc -l -p 5555 > /tmp/got & listener=$!; sleep 0.1; \
           echo ping | nc -w 2 127.0.0.1 5555 || kill $listener 2>/dev/null; \
           wait $listener; [ -s /tmp/got ] && break; \
         done; cat /tmp/got"
    ));
    assert!(!out.contains("CONNECTED"), "{out}");
    assert_eq!(
        out.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        ["lo", "ping"],
        "{out}"
    );
    let mut accepted = listener.accept();
    if let Ok((stream, _)) = &mut accepted {
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
    }
    assert!(accepted.is_err(), "the host listener got a connection");
}

// Case 24: host abstract Unix sockets live in the host's network namespace.
#[test]
fn host_abstract_unix_sockets_unreachable() {
    let name = format!("kiln-sandbox-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = UnixListener::bind_addr(&addr).unwrap();
    let host_view = fs_err::read_to_string("/proc/net/unix").unwrap();
    assert!(host_view.contains(&name));
    let ctx = Ctx::new();
    let out = ctx.stdout(&format!("grep -c @{name} /proc/net/unix; true"));
    assert_eq!(out.trim(), "0");
}

// Case 24: DNS fails.
#[test]
fn dns_fails() {
    let ctx = Ctx::new();
    let out = ctx.stdout(
        "nslookup example.com >/dev/null 2>&1 && echo RESOLVED; \
         nslookup example.com 8.8.8.8 >/dev/null 2>&1 && echo RESOLVED8; \
         wget -q -T 2 -O /dev/null http://1.1.1.1/ 2>/dev/null && echo FETCHED; echo done",
    );
    assert_eq!(out, "done\n");
}

// Case 25: no host path or old root in mountinfo.
#[test]
fn mountinfo_shows_no_host_path_or_old_root() {
    let ctx = Ctx::new();
    let out = ctx.stdout("cat /proc/self/mountinfo");
    let tmp = ctx.path().display().to_string();
    for leak in [
        tmp.as_str(),
        "oldroot",
        "/tmp/root",
        "/tmp/skel",
        env!("CARGO_MANIFEST_DIR"),
    ] {
        assert!(!out.contains(leak), "{leak} in:\n{out}");
    }
    let mount_points: Vec<&str> = out.lines().map(|l| l.split(' ').nth(4).unwrap()).collect();
    assert_eq!(mount_points[0], "/", "{out}");
    assert!(
        mount_points
            .iter()
            .all(|m| *m == "/" || m.starts_with("/proc") || m.starts_with("/dev")),
        "{out}"
    );
}

// Case 25: mounts made by a step are invisible to the host.
#[test]
fn mounts_made_by_a_step_are_invisible_to_the_host() {
    let before = fs_err::read_to_string("/proc/self/mountinfo").unwrap();
    let ctx = Ctx::new();
    let out = ctx.stdout(
        "mount -t tmpfs tmpfs /mnt 2>/dev/null && echo DIRECT; \
         unshare -Urm sh -c 'mount -t tmpfs tmpfs /mnt && touch /mnt/inner && echo NESTED'; \
         ls /mnt",
    );
    // No CAP_SYS_ADMIN in the step's namespace; a nested user namespace may mount privately.
    assert_eq!(out, "NESTED\n", "{out}");
    assert_eq!(
        fs_err::read_to_string("/proc/self/mountinfo").unwrap(),
        before
    );
    assert!(!ctx.upper.join("mnt/inner").exists());
}

// Case 26: /proc/sysrq-trigger and /proc/sys are read-only, and cannot be unmasked.
#[test]
fn proc_sys_and_sysrq_trigger_not_writable() {
    let ctx = Ctx::new();
    // Writes that would be harmless even if they succeeded: the current value back, and an
    // unassigned sysrq key (which only prints help to the kernel log).
    let out = ctx.stdout(
        "v=$(cat /proc/sys/kernel/printk_ratelimit); \
         (echo $v > /proc/sys/kernel/printk_ratelimit) 2>/dev/null && echo SYS; \
         (printf _ > /proc/sysrq-trigger) 2>/dev/null && echo SYSRQ; \
         umount /proc/sys 2>/dev/null && echo UNMOUNTED; \
         umount /proc/sysrq-trigger 2>/dev/null && echo UNMOUNTED2; \
         unshare -Urm sh -c 'umount /proc/sys || umount -l /proc/sys' 2>/dev/null && echo NESTED; \
         unshare -Urmpf sh -c 'mount -t proc proc /mnt' 2>/dev/null && echo NEWPROC; \
         (echo 1 > /proc/sys/net/ipv4/ip_forward) 2>/dev/null && echo NETSYS; \
         test -s /proc/kcore && echo KCORE; echo done",
    );
    assert_eq!(out, "done\n");
}

// Case 27: no new privileges; a setuid binary gains nothing.
#[test]
fn no_new_privileges_and_setuid_gains_nothing() {
    let ctx = Ctx::new();
    let out = ctx.stdout("grep -E '^(NoNewPrivs|CapBnd|CapEff)' /proc/self/status");
    let field = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .to_owned()
    };
    assert_eq!(field("NoNewPrivs:"), "1");
    let bounding = u64::from_str_radix(&field("CapBnd:"), 16).unwrap();
    assert_eq!(
        bounding & (1 << 21),
        0,
        "CAP_SYS_ADMIN in the bounding set: {out}"
    );
    assert_eq!(
        bounding & (1 << 19),
        0,
        "CAP_SYS_PTRACE in the bounding set: {out}"
    );

    // A setuid-root copy of busybox in the image, run by an unprivileged step user.
    use std::os::unix::fs::PermissionsExt;
    let suid = ctx.lower.join("bin/busybox-suid");
    fs_err::copy(ctx.lower.join("bin/busybox"), &suid).unwrap();
    fs_err::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut spec =
        ctx.spec("/bin/busybox-suid id -u; /bin/busybox-suid grep CapEff /proc/self/status");
    spec.uid = 1000;
    spec.gid = 1000;
    match mapping() {
        IdMapping::Single => {
            // Only root exists in this mapping: nothing to escalate from.
            assert!(matches!(
                kiln_sandbox::run(&spec),
                Err(SandboxError::Spec(_))
            ));
        }
        _ => {
            let out = String::from_utf8(kiln_sandbox::run(&spec).unwrap().stdout_tail).unwrap();
            assert_eq!(out, "1000\nCapEff:\t0000000000000000\n");
        }
    }
}

#[test]
fn step_is_a_child_of_pid_1_in_its_own_pid_namespace() {
    let ctx = Ctx::new();
    let out = ctx.stdout("echo $$; grep PPid /proc/$$/status; ls /proc | grep -c '^[0-9]'");
    // sh (2), its parent the init (1); visible: 1, 2 and the ls/grep of the pipeline.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2", "{out}");
    assert_eq!(lines[1], "PPid:\t1", "{out}");
    assert!(lines[2].parse::<u32>().unwrap() <= 5, "{out}");
}

#[test]
fn long_output_is_streamed_live() {
    let ctx = Ctx::new();
    let spec = ctx.spec("for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.5; done");
    let mut chunks = Vec::new();
    let started = std::time::Instant::now();
    let outcome = kiln_sandbox::run_with_output(&spec, &mut |stream, bytes| {
        chunks.push((stream, started.elapsed(), bytes.to_vec()));
    })
    .unwrap();
    assert_eq!(outcome.stdout_tail, b"line1\nline2\nline3\n");
    assert_eq!(outcome.stderr_tail, b"err1\nerr2\nerr3\n");
    // The first line arrived well before the step ended.
    assert!(
        chunks[0].1 + Duration::from_millis(600) < outcome.elapsed,
        "{chunks:?}"
    );
}

const HELPER_ENV: &str = "KILN_SANDBOX_TEST_HELPER";

/// Not a test on its own: this test binary, run *inside* a sandbox by `in_sandbox`, probes
/// what busybox cannot (ptrace, connecting to abstract sockets) and prints one result line.
#[test]
fn helper_in_sandbox() {
    let Ok(what) = std::env::var(HELPER_ENV) else {
        return;
    };
    let errno = |rc: i64| {
        if rc < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        }
    };
    let result = match what.split_once(':') {
        Some(("ptrace", _)) => {
            // SAFETY: attaching to pid 1 (the sandbox's init, a fork of this binary's caller).
            let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, 1, 0, 0) };
            errno(rc)
        }
        Some(("write-exe", _)) => {
            // SAFETY: a C string literal.
            let fd = unsafe { libc::open(c"/proc/1/exe".as_ptr(), libc::O_WRONLY) };
            errno(fd.into())
        }
        Some(("abstract", name)) => {
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            match std::os::unix::net::UnixStream::connect_addr(&addr) {
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(-1),
            }
        }
        Some(("key", name)) => {
            let name = std::ffi::CString::new(name).unwrap();
            // SAFETY: KEYCTL_SEARCH (10) of the session keyring (-3) with C strings.
            let rc = unsafe {
                libc::syscall(libc::SYS_keyctl, 10, -3, c"user".as_ptr(), name.as_ptr(), 0)
            };
            errno(rc)
        }
        _ => panic!("unknown helper {what}"),
    };
    println!("HELPER-RESULT {result}");
}

/// Runs `helper_in_sandbox` in a sandbox with the host's libraries bound read-only, and
/// returns the errno it saw (0: success).
fn in_sandbox(ctx: &Ctx, what: &str) -> i32 {
    let mut spec = ctx.spec("");
    for dir in ["/lib", "/lib64", "/usr"] {
        let path = std::path::Path::new(dir);
        match fs_err::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs_err::read_link(path).unwrap();
                std::os::unix::fs::symlink(target, ctx.lower.join(&dir[1..])).unwrap();
            }
            Ok(_) => spec.mounts.push(kiln_sandbox::Mount::Bind {
                source: path.into(),
                target: dir.into(),
                read_only: true,
            }),
            Err(_) => {}
        }
    }
    spec.mounts.push(kiln_sandbox::Mount::Bind {
        source: std::env::current_exe().unwrap(),
        target: "/kiln-test".into(),
        read_only: true,
    });
    spec.argv = [
        "/kiln-test",
        "--exact",
        "isolation::helper_in_sandbox",
        "--nocapture",
    ]
    .map(String::from)
    .to_vec();
    spec.env = vec![(HELPER_ENV.into(), what.into())];
    let out = kiln_sandbox::run(&spec).unwrap_or_else(|e| panic!("{e:?}"));
    let out = String::from_utf8(out.stdout_tail).unwrap();
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("HELPER-RESULT "))
        .unwrap_or_else(|| panic!("no result in {out}"));
    line.parse().unwrap()
}

// Case 23: ptrace(2) itself, not only /proc, is refused on the init (a fork of kiln).
#[test]
fn cannot_ptrace_or_open_the_init_for_writing() {
    assert_eq!(in_sandbox(&Ctx::new(), "ptrace:1"), libc::EPERM);
    assert_eq!(in_sandbox(&Ctx::new(), "write-exe:1"), libc::EACCES);
}

// Case 24: connecting to a host abstract socket fails (it does not exist in the step's
// network namespace).
#[test]
fn cannot_connect_to_host_abstract_socket() {
    let name = format!("kiln-sandbox-connect-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = UnixListener::bind_addr(&addr).unwrap();
    // The control: the host itself can connect.
    std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    let ctx = Ctx::new();
    assert_eq!(
        in_sandbox(&ctx, &format!("abstract:{name}")),
        libc::ECONNREFUSED
    );
}

// Keys in kiln's session keyring are out of the step's reach.
#[test]
fn cannot_search_kiln_session_keyring() {
    let name = format!("kiln-sandbox-secret-{}", std::process::id());
    let c_name = std::ffi::CString::new(name.as_str()).unwrap();
    let payload = b"secret";
    // SAFETY: join a new session keyring (this test's thread only) and add a key to it.
    unsafe {
        let keyring = libc::syscall(libc::SYS_keyctl, 1, c"kiln-sandbox-test".as_ptr());
        assert!(keyring > 0, "{}", std::io::Error::last_os_error());
        let key = libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c_name.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            -3,
        );
        assert!(key > 0, "{}", std::io::Error::last_os_error());
        // The control: this thread finds it.
        let found = libc::syscall(
            libc::SYS_keyctl,
            10,
            -3,
            c"user".as_ptr(),
            c_name.as_ptr(),
            0,
        );
        assert_eq!(found, key);
    }
    assert_eq!(
        in_sandbox(&Ctx::new(), &format!("key:{name}")),
        libc::ENOKEY
    );
}
