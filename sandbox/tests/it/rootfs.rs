//! The overlay rootfs: what reaches the upper dir, what the step sees of the host.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use kiln_sandbox::{IdMapping, SandboxError, SpecError, OPAQUE_XATTR};

use crate::common::{mapping, Ctx};

#[test]
fn changes_land_in_upper_dir_and_lower_is_untouched() {
    let ctx = Ctx::new();
    fs_err::create_dir_all(ctx.lower.join("opaque/sub")).unwrap();
    fs_err::write(ctx.lower.join("opaque/sub/old"), "old").unwrap();
    ctx.stdout(
        "echo new > /new-file && rm /data/keep && rm -rf /opaque && mkdir /opaque && \
         echo fresh > /opaque/f",
    );
    assert_eq!(
        fs_err::read_to_string(ctx.upper.join("new-file")).unwrap(),
        "new\n"
    );
    // Deleted lower file: an overlay whiteout (character device 0/0).
    let whiteout = fs_err::symlink_metadata(ctx.upper.join("data/keep")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    // Replaced lower directory: opaque.
    let opaque = read_xattr(&ctx.upper.join("opaque"), OPAQUE_XATTR);
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    // The lower dir is read-only to the step.
    assert_eq!(
        fs_err::read_to_string(ctx.lower.join("data/keep")).unwrap(),
        "lower content\n"
    );
    assert!(ctx.lower.join("opaque/sub/old").exists());
    // The sandbox's own mount points never reach the layer.
    let mut names: Vec<_> = fs_err::read_dir(&ctx.upper)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["data", "new-file", "opaque"]);
}

fn read_xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: C strings and a buffer of the given size.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

#[test]
fn environment_umask_hostname_and_cwd_are_fixed() {
    let ctx = Ctx::new();
    let mut spec = ctx.spec("");
    spec.argv = vec!["/bin/env".into()];
    spec.env = vec![("B".into(), "2".into()), ("A".into(), "1".into())];
    let out = kiln_sandbox::run(&spec).unwrap();
    assert_eq!(String::from_utf8(out.stdout_tail).unwrap(), "B=2\nA=1\n");

    let mut spec = ctx.spec("umask; hostname; pwd");
    spec.cwd = "/var".into();
    let out = kiln_sandbox::run(&spec).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout_tail).unwrap(),
        "0022\nkiln-test\n/var\n"
    );
}

#[test]
fn argv0_is_searched_in_the_given_path() {
    let ctx = Ctx::new();
    let mut spec = ctx.spec("");
    spec.argv = vec!["echo".into(), "found".into()];
    let out = kiln_sandbox::run(&spec).unwrap();
    assert_eq!(out.stdout_tail, b"found\n");
}

#[test]
fn host_paths_are_invisible() {
    let ctx = Ctx::new();
    let checkout = env!("CARGO_MANIFEST_DIR");
    let tmp = ctx.path().display();
    let out = ctx.stdout(&format!(
        "test -e {checkout} && echo CHECKOUT; test -e {tmp} && echo TMP; true"
    ));
    assert_eq!(out, "");
    // /root and /etc/hostname are the image's.
    assert_eq!(ctx.stdout("ls -A /root"), "");
    assert_eq!(ctx.stdout("cat /etc/hostname"), "image-hostname\n");
    assert_eq!(
        ctx.stdout("ls /dev"),
        "fd\nfull\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n"
    );
}

// SECURITY.md case 26: an image whose /proc or /dev is a symlink (here to a *host* path, the
// worst case) does not redirect the sandbox's own mounts.
#[test]
fn image_symlinks_do_not_redirect_sandbox_mounts() {
    let ctx = Ctx::new();
    let canary = ctx.path().join("host-canary");
    fs_err::create_dir(&canary).unwrap();
    std::os::unix::fs::symlink(&canary, ctx.lower.join("proc")).unwrap();
    std::os::unix::fs::symlink(&canary, ctx.lower.join("dev")).unwrap();
    fs_err::create_dir(ctx.lower.join("evil")).unwrap();
    std::os::unix::fs::symlink("/evil", ctx.lower.join("evil-link")).unwrap();
    let out = ctx.stdout(
        "test -L /proc && echo PROC-LINK; test -L /dev && echo DEV-LINK; \
         test -c /dev/null && echo null-ok; head -c 4 /proc/self/stat >/dev/null && echo proc-ok",
    );
    assert_eq!(out, "null-ok\nproc-ok\n");
    assert_eq!(fs_err::read_dir(&canary).unwrap().count(), 0);
    assert!(fs_err::read_dir(&ctx.upper).unwrap().next().is_none());

    // A real /dev directory whose null is a symlink to a host file.
    let ctx = Ctx::new();
    let canary_file = ctx.path().join("host-file");
    fs_err::write(&canary_file, "host\n").unwrap();
    fs_err::create_dir(ctx.lower.join("dev")).unwrap();
    std::os::unix::fs::symlink(&canary_file, ctx.lower.join("dev/null")).unwrap();
    std::os::unix::fs::symlink(&canary_file, ctx.lower.join("dev/zero")).unwrap();
    let out = ctx.stdout("echo overwritten > /dev/null; test -c /dev/zero && echo zero-ok");
    assert_eq!(out, "zero-ok\n");
    assert_eq!(fs_err::read_to_string(&canary_file).unwrap(), "host\n");
}

#[test]
fn chown_is_recorded_or_refused_never_silently_changed() {
    let ctx = Ctx::new();
    let result = ctx.run("touch /owned && chown 65532:65532 /owned");
    match mapping() {
        IdMapping::Single => {
            // Only container id 0 exists: a clear failure, not a file silently owned by 0.
            let err = result.unwrap_err();
            let tail = String::from_utf8_lossy(err.stderr_tail().unwrap()).into_owned();
            assert!(matches!(err, SandboxError::StepFailed { .. }), "{err:?}");
            assert!(tail.contains("Invalid argument"), "{tail}");
            assert!(err.to_string().contains("only uid/gid 0 exist"), "{err}");
        }
        _ => {
            let outcome = result.unwrap();
            let meta = fs_err::metadata(ctx.upper.join("owned")).unwrap();
            assert_eq!(outcome.id_map.uid_to_container(meta.uid()), Some(65532));
            assert_eq!(outcome.id_map.gid_to_container(meta.gid()), Some(65532));
            if mapping() == IdMapping::Identity {
                assert_eq!((meta.uid(), meta.gid()), (65532, 65532));
            }
        }
    }
}

#[test]
fn runs_as_the_requested_user_when_mapped() {
    let ctx = Ctx::new();
    let mut spec = ctx.spec("id -u; id -g; touch /tmp/mine; stat -c %u:%g /tmp/mine");
    spec.uid = 65532;
    spec.gid = 65532;
    let result = kiln_sandbox::run(&spec);
    match mapping() {
        IdMapping::Single => assert!(
            matches!(
                result,
                Err(SandboxError::Spec(SpecError::UnmappedId { id: 65532, .. }))
            ),
            "{result:?}"
        ),
        _ => {
            let out = String::from_utf8(result.unwrap().stdout_tail).unwrap();
            assert_eq!(out, "65532\n65532\n65532:65532\n");
        }
    }
}

// SECURITY.md case 29: outputs that are symlinks to host paths are recorded as symlinks.
#[test]
fn symlink_outputs_stay_symlinks() {
    let ctx = Ctx::new();
    ctx.stdout("ln -s /etc/shadow /x && ln -s ../../../../root/.ssh /data/y");
    let x = fs_err::symlink_metadata(ctx.upper.join("x")).unwrap();
    assert!(x.file_type().is_symlink());
    assert_eq!(
        fs_err::read_link(ctx.upper.join("x")).unwrap().to_str(),
        Some("/etc/shadow")
    );
    assert_eq!(
        fs_err::read_link(ctx.upper.join("data/y"))
            .unwrap()
            .to_str(),
        Some("../../../../root/.ssh")
    );
}

#[test]
fn several_lower_dirs_stack_bottom_first() {
    let ctx = Ctx::new();
    let top = ctx.path().join("top");
    fs_err::create_dir_all(top.join("data")).unwrap();
    fs_err::write(top.join("data/keep"), "top content\n").unwrap();
    let mut spec = ctx.spec("cat /data/keep");
    spec.lower_dirs.push(top);
    let out = kiln_sandbox::run(&spec).unwrap();
    assert_eq!(out.stdout_tail, b"top content\n");
}

#[test]
fn extra_mounts_bind_and_tmpfs() {
    let ctx = Ctx::new();
    let shared = ctx.path().join("shared");
    fs_err::create_dir(&shared).unwrap();
    fs_err::write(shared.join("in"), "from host\n").unwrap();
    let mut spec = ctx.spec(
        "cat /mnt/shared/in; touch /mnt/shared/x 2>/dev/null && echo WRITABLE; \
         echo scratch > /scratch/f && cat /scratch/f",
    );
    spec.mounts = vec![
        kiln_sandbox::Mount::Bind {
            source: shared.clone(),
            target: "/mnt/shared".into(),
            read_only: true,
        },
        kiln_sandbox::Mount::Tmpfs {
            target: "/scratch".into(),
        },
    ];
    let out = kiln_sandbox::run(&spec).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout_tail).unwrap(),
        "from host\nscratch\n"
    );
    assert!(!shared.join("x").exists());
    // Mount points come from the skeleton layer, not the upper dir.
    assert!(fs_err::read_dir(&ctx.upper).unwrap().next().is_none());
}

#[test]
fn id_mapping_is_the_requested_one() {
    let ctx = Ctx::new();
    let outcome = ctx
        .run("cat /proc/self/uid_map /proc/self/gid_map")
        .unwrap();
    let requested = crate::common::requested_mapping();
    let got = outcome.id_map.mapping();
    match requested {
        IdMapping::Auto if nix_is_root() => assert_eq!(got, IdMapping::Identity),
        IdMapping::Auto => assert_ne!(got, IdMapping::Identity),
        other => assert_eq!(got, other),
    }
    let expected: String = [outcome.id_map.uid_ranges(), outcome.id_map.gid_ranges()]
        .iter()
        .flat_map(|ranges| ranges.iter())
        .map(|r| format!("{} {} {}", r.container, r.host, r.count))
        .collect::<Vec<_>>()
        .join("\n");
    let seen: Vec<String> = String::from_utf8(outcome.stdout_tail)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(seen.join("\n"), expected);
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
