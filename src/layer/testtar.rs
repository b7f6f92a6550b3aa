//! Test-only raw tar builder: writes exactly the bytes a hostile archive would contain
//! (`../x`, absolute names, bad checksums, oversized extension headers), which a well-behaved
//! tar writer refuses to produce.

use std::io::Read;

pub const BLOCK: usize = 512;

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

pub fn set_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

/// A ustar header with a valid checksum. `name`/`link` longer than 100 bytes are cut.
pub fn header(name: &[u8], typeflag: u8, size: u64, mode: u32, link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_000);
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    set_checksum(&mut h);
    h
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

#[derive(Default)]
pub struct Tar {
    pub out: Vec<u8>,
}

impl Tar {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn raw(&mut self, h: [u8; BLOCK], data: &[u8]) -> &mut Self {
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(data);
        pad(&mut self.out);
        self
    }
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.file_mode(name, data, 0o644)
    }
    pub fn file_mode(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.raw(
            header(name.as_bytes(), b'0', data.len() as u64, mode, b""),
            data,
        )
    }
    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(header(name.as_bytes(), b'5', 0, mode, b""), b"")
    }
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            header(name.as_bytes(), b'2', 0, 0o777, target.as_bytes()),
            b"",
        )
    }
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            header(name.as_bytes(), b'1', 0, 0o644, target.as_bytes()),
            b"",
        )
    }
    pub fn device(&mut self, name: &str, typeflag: u8, major: u64, minor: u64) -> &mut Self {
        let mut h = header(name.as_bytes(), typeflag, 0, 0o666, b"");
        octal(&mut h[329..337], major);
        octal(&mut h[337..345], minor);
        set_checksum(&mut h);
        self.raw(h, b"")
    }
    pub fn gnu_long(&mut self, typeflag: u8, value: &[u8]) -> &mut Self {
        let mut data = value.to_vec();
        data.push(0);
        let mut h = header(b"././@LongLink", typeflag, data.len() as u64, 0, b"");
        h[257..265].copy_from_slice(b"ustar  \0");
        set_checksum(&mut h);
        self.raw(h, &data)
    }
    /// A PAX header (`x` or `g`) with the given records.
    pub fn pax(&mut self, typeflag: u8, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body_len = k.len() + v.len() + 3; // ' ' '=' '\n'
            let mut len = body_len + 1;
            while len != body_len + len.to_string().len() {
                len = body_len + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.raw(
            header(b"pax", typeflag, data.len() as u64, 0o644, b""),
            &data,
        )
    }
    /// The archive with its two NUL end blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut v = self.out.clone();
        v.resize(v.len() + 2 * BLOCK, 0);
        v
    }
}

/// A reader that yields `header` then `len` bytes of `b'a'` lazily (a 1 GiB name without
/// allocating it), counting what was consumed.
pub struct Lazy {
    pub header: Vec<u8>,
    pub pos: u64,
    pub len: u64,
}

impl Lazy {
    /// A GNU long-name header (`././@LongLink`) announcing a name of `len` bytes.
    pub fn gnu_long_name(len: u64) -> Self {
        let mut h = header(b"././@LongLink", b'L', len, 0, b"");
        h[257..265].copy_from_slice(b"ustar  \0");
        set_checksum(&mut h);
        Self {
            header: h.to_vec(),
            pos: 0,
            len,
        }
    }

    /// A PAX extended header of `len` bytes.
    pub fn pax(len: u64) -> Self {
        Self {
            header: header(b"pax", b'x', len, 0o644, b"").to_vec(),
            pos: 0,
            len,
        }
    }
}

/// 42 symlinks in a loop (`l0` → `/l1` … `l41` → `l0`), then a file below `l0`: resolving
/// `l0/x` must stop with ELOOP, and quickly.
pub fn symlink_loop() -> Vec<u8> {
    let mut t = Tar::new();
    for i in 0..41 {
        t.symlink(&format!("l{i}"), &format!("/l{}", i + 1));
    }
    t.symlink("l41", "l0").file("l0/x", b"");
    t.finish()
}

impl Read for Lazy {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let total = self.header.len() as u64 + self.len;
        if self.pos >= total || buf.is_empty() {
            return Ok(0);
        }
        let n = if (self.pos as usize) < self.header.len() {
            let rest = &self.header[self.pos as usize..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            n
        } else {
            let n = (total - self.pos).min(buf.len() as u64) as usize;
            buf[..n].fill(b'a');
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// Runs the system's GNU tar over `dir` (sorted names, numeric owner) and returns the archive.
/// A missing tar fails the test.
pub fn gnu_tar(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .args(["--sort=name", "--numeric-owner", "-C"])
        .arg(dir)
        .args(args)
        .args(["-cf", "-", "."])
        .output();
    match out {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => panic!(
            "tar {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("these tests need GNU tar (part of every Debian system): {e}"),
    }
}

/// A directory exercising long names, long link targets, hardlinks, modes and symlinks.
pub fn interop_fixture(long_links: bool) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let deep = format!("{}/{}", "dir-".repeat(20), "x".repeat(60));
    fs_err::create_dir_all(d.join(&deep)).unwrap();
    fs_err::write(
        d.join(&deep).join("leaf-with-a-rather-long-name.txt"),
        "deep",
    )
    .unwrap();
    fs_err::write(d.join("big"), vec![b'z'; 70_000]).unwrap();
    fs_err::write(d.join("exec"), "#!/bin/sh\n").unwrap();
    fs_err::set_permissions(d.join("exec"), std::fs::Permissions::from_mode(0o4751)).unwrap();
    fs_err::hard_link(d.join("big"), d.join("big-link")).unwrap();
    std::os::unix::fs::symlink("exec", d.join("rel-link")).unwrap();
    if long_links {
        std::os::unix::fs::symlink(format!("/{deep}"), d.join("long-link")).unwrap();
    }
    fs_err::create_dir(d.join("empty")).unwrap();
    fs_err::set_permissions(d.join("empty"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    tmp
}
