use std::path::PathBuf;

use super::*;
use crate::syscall::recording::Recording;

fn spec() -> SandboxSpec {
    let mut spec = SandboxSpec::new(
        vec![PathBuf::from("/l0"), PathBuf::from("/l1")],
        "/u",
        "/w",
        vec!["/bin/sh".into()],
    );
    spec.hostname = "box".into();
    spec.mounts = vec![
        Mount::Bind {
            source: "/host/cache".into(),
            target: "/var/cache/x".into(),
            read_only: true,
        },
        Mount::Bind {
            source: "/host/file".into(),
            target: "/etc/resolv.conf".into(),
            read_only: false,
        },
        Mount::Tmpfs {
            target: "/scratch".into(),
        },
    ];
    spec
}

fn fds() -> PlanFds {
    PlanFds {
        skel: 9,
        lowers: vec![5, 6],
        upper: 7,
        work: 8,
        binds: vec![Some((10, true)), Some((11, false)), None],
    }
}

fn recorded() -> Vec<String> {
    let plan = Plan::build(&spec(), &fds(), Some(5)).unwrap();
    let rec = Recording::default();
    plan.execute(&rec).unwrap();
    rec.calls()
}

fn position(calls: &[String], needle: &str) -> usize {
    calls
        .iter()
        .position(|c| c == needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {calls:#?}"))
}

#[test]
fn starts_private_and_ends_with_pivot() {
    let calls = recorded();
    assert_eq!(calls[0], "mount - / - rec,private -");
    assert_eq!(calls[1], "open /l0 at 5 dir");
    assert_eq!(calls.last().unwrap(), "pivot-root /tmp/root");
    assert_eq!(calls[calls.len() - 2], "loopback-up");
    assert_eq!(calls[calls.len() - 3], "sethostname box");
}

#[test]
fn overlay_uses_descriptors_with_skeleton_on_top() {
    let calls = recorded();
    let overlay = "mount overlay /tmp/root overlay - lowerdir=/proc/self/fd/9:/proc/self/fd/6:\
                   /proc/self/fd/5,upperdir=/proc/self/fd/7,workdir=/proc/self/fd/8,userxattr";
    let at = position(&calls, overlay);
    assert!(position(&calls, "open /tmp/skel at 9 dir") < at);
    // Host paths are opened before /tmp is covered, and never named in mount options.
    let covered = position(&calls, "mount tmpfs /tmp tmpfs nosuid,nodev mode=0755");
    for (path, fd) in [
        ("/l0", 5),
        ("/l1", 6),
        ("/u", 7),
        ("/w", 8),
        ("/host/cache", 10),
    ] {
        assert!(position(&calls, &format!("open {path} at {fd} dir")) < covered);
    }
    assert!(position(&calls, "open /host/file at 11 file") < covered);
    assert!(!calls
        .iter()
        .any(|c| c.starts_with("mount") && (c.contains("/l0") || c.contains("/u,"))));
}

#[test]
fn skeleton_holds_every_mount_point_before_the_overlay() {
    let calls = recorded();
    let overlay = calls
        .iter()
        .position(|c| c.starts_with("mount overlay"))
        .unwrap();
    for entry in [
        "mkdir /tmp/skel/proc 755",
        "mkdir /tmp/skel/dev 755",
        "mkdir /tmp/skel/var 755",
        "mkdir /tmp/skel/var/cache 755",
        "mkdir /tmp/skel/var/cache/x 755",
        "mkdir /tmp/skel/etc 755",
        "create /tmp/skel/etc/resolv.conf 644",
        "mkdir /tmp/skel/scratch 755",
    ] {
        assert!(position(&calls, entry) < overlay, "{entry}");
    }
    // Parents come before children.
    assert!(
        position(&calls, "mkdir /tmp/skel/var 755")
            < position(&calls, "mkdir /tmp/skel/var/cache/x 755")
    );
}

#[test]
fn proc_is_fresh_and_its_sensitive_parts_read_only() {
    let calls = recorded();
    let proc_mount = position(
        &calls,
        "mount proc /tmp/root/proc proc nosuid,nodev,noexec -",
    );
    for name in ["sys", "sysrq-trigger"] {
        let path = format!("/tmp/root/proc/{name}");
        let bind = position(&calls, &format!("mount {path} {path} - bind,rec -"));
        let ro = position(&calls, &format!("read-only {path} recursive"));
        assert!(proc_mount < bind && bind < ro, "{name}");
    }
    position(&calls, "mount /dev/null /tmp/root/proc/kcore - bind,rec -");
    position(
        &calls,
        "mount /dev/null /tmp/root/proc/1/cmdline - bind,rec -",
    );
}

#[test]
fn dev_is_minimal() {
    let calls = recorded();
    position(
        &calls,
        "mount tmpfs /tmp/root/dev tmpfs nosuid,noexec mode=0755,size=64k",
    );
    let ro = position(&calls, "read-only /tmp/root/dev");
    for node in DEV_NODES {
        let path = format!("/tmp/root/dev/{node}");
        let create = position(&calls, &format!("create {path} 666"));
        let bind = position(&calls, &format!("mount /dev/{node} {path} - bind,rec -"));
        assert!(create < ro && ro < bind);
    }
    position(
        &calls,
        "mount devpts /tmp/root/dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620,gid=5",
    );
    position(&calls, "symlink /tmp/root/dev/ptmx -> pts/ptmx");
    position(
        &calls,
        "mount tmpfs /tmp/root/dev/shm tmpfs nosuid,nodev,noexec mode=1777",
    );
    let dev_nodes: Vec<_> = calls
        .iter()
        .filter(|c| c.starts_with("create /tmp/root/dev/"))
        .collect();
    assert_eq!(dev_nodes.len(), DEV_NODES.len());
}

#[test]
fn extra_mounts_after_dev_and_read_only_when_asked() {
    let calls = recorded();
    let bind = position(
        &calls,
        "mount /proc/self/fd/10 /tmp/root/var/cache/x - bind,rec -",
    );
    let ro = position(&calls, "read-only /tmp/root/var/cache/x recursive");
    assert!(bind < ro);
    position(
        &calls,
        "mount /proc/self/fd/11 /tmp/root/etc/resolv.conf - bind,rec -",
    );
    assert!(!calls
        .iter()
        .any(|c| c.starts_with("read-only /tmp/root/etc/resolv.conf")));
    position(
        &calls,
        "mount tmpfs /tmp/root/scratch tmpfs nosuid,nodev mode=0755",
    );
    assert!(position(&calls, "read-only /tmp/root/dev") < bind);
}

#[test]
fn failure_reports_the_failing_op_and_stops() {
    let plan = Plan::build(&spec(), &fds(), None).unwrap();
    let rec = Recording::failing("mount overlay", libc::EPERM);
    let (index, err) = plan.execute(&rec).unwrap_err();
    assert_eq!(plan.ops[index].kind(), OpKind::Overlay);
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    assert!(rec.calls().last().unwrap().starts_with("mount overlay"));
    assert!(plan.ops[index]
        .to_string()
        .starts_with("mount overlay (overlay) on /tmp/root"));
}

#[test]
fn optional_masks_tolerate_missing_paths() {
    let plan = Plan::build(&spec(), &fds(), None).unwrap();
    let rec = Recording::failing("mount /dev/null /tmp/root/proc/timer_stats", libc::ENOENT);
    plan.execute(&rec).unwrap();
    let rec = Recording::failing("mount tmpfs /tmp/root/dev ", libc::ENOENT);
    assert!(plan.execute(&rec).is_err());
}
