//! Tar header styles: kiln's own, and the one Go's `archive/tar` writes for buildah, podman and
//! containers/storage, so that a recipe can rebuild their layers byte for byte.
//!
//! A layer's diff_id is the sha256 of its tar, so two builders that put the same files in a
//! layer still get different diff_ids when their tar writers make other choices. Those choices
//! are not content, and `[[layer]] tar = "go"` makes kiln's writer take Go's:
//!
//! - **Order** (`go`): a depth-first walk with each directory's names sorted bytewise
//!   (`filepath.WalkDir`, what containers/storage's `TarWithOptions` uses): `a/x` before `a.b`,
//!   where kiln's bytewise order of full paths puts `a.b` first. The layer's entries are held in
//!   memory to sort them (about 300 bytes per entry; contents still stream). The first path of
//!   a hard link group in that order carries the content. `go-bytewise` keeps kiln's order,
//!   which is that of containers/storage's `ExportChanges` (changes sorted by path, each
//!   whiteout where the deleted path was): what the vfs driver writes for a layer over a base.
//! - **Mode**: the file-type bits in the mode field, as Go's `tar.FileInfoHeader` sets them
//!   (`0040755` for a directory, `0100644` for a file, `0120777` for a symlink; hard links
//!   carry the regular-file bits). Whiteouts `.wh.NAME` have mode 0; an opaque marker has its
//!   directory's permission bits and owner (both without type bits), as podman 4.3 writes
//!   them with the vfs and overlay drivers.
//! - **Format**: ustar when every field fits, with Go's name split (the *last* `/` within the
//!   first 156 bytes, where kiln takes the first that leaves 100 bytes for the name); otherwise
//!   the whole header is PAX: a `path` record for any name over 100 bytes or not ASCII (even
//!   one ustar could split), `linkpath` likewise, and the extended header is named
//!   `DIR/PaxHeaders.0/NAME` (ASCII only, cut to 100 bytes, trailing `/` trimmed) with mode,
//!   uid, gid and mtime 0 and devmajor/devminor left as NUL bytes. The main header then holds
//!   the name without its non-ASCII characters, cut to 100 bytes, and no prefix.
//!
//! Everything else is the same in both styles (numeric owners with empty names, zero-padded
//! octal numbers, `%06o\0 ` checksums, `ustar\0` `00` magic, two zero blocks at the end), so
//! there is nothing to choose there.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tree::{Entry, EntryKind, FileTree};
use super::write::WriteError;

/// How the tar writer formats headers and orders entries.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TarStyle {
    /// kiln's deterministic layout (see [`super::write`]).
    #[default]
    Kiln,
    /// What Go's `archive/tar` writes for containers/storage's `TarWithOptions` (buildah and
    /// podman `COPY`/`ADD` layers, overlay-driver diffs): Go's headers in walk order.
    Go,
    /// Go's headers in kiln's bytewise order, whiteouts at the path they delete: what
    /// containers/storage's `ExportChanges` writes (the vfs driver's diffs of a layer over a
    /// base).
    #[serde(rename = "go-bytewise")]
    GoBytewise,
}

impl TarStyle {
    pub fn name(self) -> &'static str {
        match self {
            TarStyle::Kiln => "kiln",
            TarStyle::Go => "go",
            TarStyle::GoBytewise => "go-bytewise",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [TarStyle::Kiln, TarStyle::Go, TarStyle::GoBytewise]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// Whether headers are formatted as Go's `archive/tar` writes them.
    pub fn go_headers(self) -> bool {
        matches!(self, TarStyle::Go | TarStyle::GoBytewise)
    }
}

/// The order of a depth-first walk with sorted names: bytewise, with `/` below every other byte.
pub(crate) fn walk_cmp(a: &str, b: &str) -> Ordering {
    let key = |s: &str| {
        s.bytes()
            .map(|c| if c == b'/' { 0 } else { c })
            .collect::<Vec<_>>()
    };
    key(a).cmp(&key(b))
}

/// Every entry of `tree` in walk order, with each hard link group's content moved to its first
/// path in that order.
pub(crate) fn walk_order(tree: &FileTree) -> Result<Vec<(String, Entry)>, WriteError> {
    let mut entries = Vec::new();
    for item in tree.entries() {
        let (path, entry) = item.map_err(|source| WriteError::Host {
            source: Box::new(source),
        })?;
        entries.push((path.into_owned(), entry.into_owned()));
    }
    entries.sort_by(|a, b| walk_cmp(&a.0, &b.0));
    let index: BTreeMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.clone(), i))
        .collect();
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (_, entry)) in entries.iter().enumerate() {
        if let EntryKind::Hardlink(target) = &entry.kind {
            groups.entry(target.clone()).or_default().push(i);
        }
    }
    for (target, links) in groups {
        let t = index
            .get(&target)
            .copied()
            .filter(|&t| matches!(entries[t].1.kind, EntryKind::File(_)))
            .ok_or_else(|| WriteError::InvalidHardlink {
                path: entries[links[0]].0.clone(),
                target: target.clone(),
            })?;
        let first = links.iter().copied().chain([t]).min().expect("not empty");
        if first != t {
            let first_path = entries[first].0.clone();
            let content = std::mem::replace(
                &mut entries[t].1.kind,
                EntryKind::Hardlink(first_path.clone()),
            );
            entries[first].1.kind = content;
            for l in links.into_iter().filter(|&l| l != first) {
                entries[l].1.kind = EntryKind::Hardlink(first_path.clone());
            }
        }
    }
    Ok(entries)
}

/// The file-type bits Go's `tar.FileInfoHeader` puts in the mode field.
pub(crate) fn type_bits(kind: &EntryKind) -> u32 {
    match kind {
        EntryKind::Dir => 0o040000,
        EntryKind::File(_) | EntryKind::Hardlink(_) => 0o100000,
        EntryKind::Symlink(_) => 0o120000,
        EntryKind::CharDevice { .. } => 0o020000,
        EntryKind::BlockDevice { .. } => 0o060000,
        EntryKind::Fifo => 0o010000,
        EntryKind::Whiteout(()) => 0,
    }
}

/// Go's `splitUSTARPath`: the whole name when it fits, else the last `/` within the first 156
/// bytes; `None` when the name needs PAX (too long to split, or not ASCII).
pub(crate) fn split_ustar_path(path: &str) -> Option<(&[u8], &[u8])> {
    let b = path.as_bytes();
    if !path.is_ascii() {
        return None;
    }
    if b.len() <= 100 {
        return Some((b"", b));
    }
    let mut length = b.len();
    if length > 156 {
        length = 156;
    } else if b[length - 1] == b'/' {
        length -= 1;
    }
    let i = b[..length].iter().rposition(|&c| c == b'/')?;
    let suffix = b.len() - i - 1;
    if i == 0 || suffix > 100 || suffix == 0 || i > 155 {
        return None;
    }
    Some((&b[..i], &b[i + 1..]))
}

/// Go's `toASCII`: drops every non-ASCII character (and NUL).
pub(crate) fn to_ascii(s: &str) -> Vec<u8> {
    s.bytes().filter(|&c| c < 0x80 && c != 0).collect()
}

/// The name of the PAX extended header before the entry named `name`:
/// `path.Join(dir, "PaxHeaders.0", file)`, ASCII only, cut to 100 bytes, trailing `/` trimmed.
pub(crate) fn pax_header_name(name: &str) -> Vec<u8> {
    let (dir, file) = match name.rfind('/') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    };
    let parts: Vec<&str> = [dir, "PaxHeaders.0", file]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    let mut out = to_ascii(&parts.join("/"));
    out.truncate(100);
    while out.last() == Some(&b'/') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_puts_a_directory_s_children_before_its_dotted_sibling() {
        let mut paths = vec!["a.b", "a/x", "a", "a-c/y", "a-c", "b", "a/x/z"];
        paths.sort_by(|a, b| walk_cmp(a, b));
        assert_eq!(paths, ["a", "a/x", "a/x/z", "a-c", "a-c/y", "a.b", "b"]);
    }

    #[test]
    fn ustar_split_table() {
        let long_name = "n".repeat(101);
        let dir60 = "d".repeat(60);
        let two = format!("{dir60}/{dir60}/file");
        let cases: Vec<(String, Option<(String, String)>)> = vec![
            ("short".into(), Some((String::new(), "short".into()))),
            ("é".into(), None),
            (long_name.clone(), None),
            (format!("dir/{long_name}"), None),
            // Go splits at the last `/` that fits; kiln's own rule takes the first.
            (
                two.clone(),
                Some((format!("{dir60}/{dir60}"), "file".into())),
            ),
            (
                format!("{}/{}", "p".repeat(155), "f".repeat(100)),
                Some(("p".repeat(155), "f".repeat(100))),
            ),
            (format!("{}/f", "p".repeat(156)), None),
            (
                format!("{dir60}/{}/", "q".repeat(60)),
                Some((dir60.clone(), format!("{}/", "q".repeat(60)))),
            ),
        ];
        crate::layer::write::tests::check_split(split_ustar_path, cases);
    }

    #[test]
    fn pax_header_names_follow_go() {
        let long = format!("srv/www/{}.txt", "a".repeat(120));
        let cases = [
            ("file", "PaxHeaders.0/file".to_string()),
            ("srv/www/css/", "srv/www/css/PaxHeaders.0".to_string()),
            ("dir/é.txt", "dir/PaxHeaders.0/.txt".to_string()),
            (
                long.as_str(),
                format!("srv/www/PaxHeaders.0/{}", "a".repeat(79)),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(
                String::from_utf8(pax_header_name(name)).unwrap(),
                want,
                "{name}"
            );
        }
    }
}
