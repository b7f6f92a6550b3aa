//! Every entry of a [`FileTree`] in bytewise path order, copied host directories included.
//!
//! The listed entries come from the tree's map; the contents of each host directory mounted in
//! the tree (see [`super::host`]) are read while the walk passes them, one directory listing at
//! a time, and merged in. Memory is bounded by the listings of the directories on the current
//! path, never by the number of files.
//!
//! Bytewise order of full paths is not the order of a plain depth-first walk: `a.b` sorts
//! between the directory `a` and its child `a/x`, because `.` (0x2e) is below `/` (0x2f). So a
//! directory contributes two items to its parent's sorted listing: its own entry under its
//! name, and its contents under its name followed by `/`. Walking those items in order, and
//! descending into a directory's listing when its contents item comes up, yields exactly the
//! order of a `BTreeMap` of the full paths (every path below `name/` sorts before any sibling
//! that comes after `name/`).
//!
//! The tar writer walks with [`FileTree::entries_read_ahead`]: each host directory is then
//! listed on a thread of its own, which also reads the contents of small files, a bounded
//! number of entries ahead of the writer. For trees of many small files the `statx`, `open`
//! and `read` calls are most of the work, and this takes them off the thread that writes the
//! tar. The order is the same (one thread walks each directory, in sorted order), so are the
//! bytes.

use std::borrow::Cow;
use std::collections::btree_map;
use std::io::Read;
use std::iter::Peekable;
use std::sync::{mpsc, Arc};

use super::host::{self, HostError, HostMount};
use super::tree::{self, Content, Entry, EntryKind, FileTree};

/// A read-ahead thread hands entries over in batches of this many entries or
/// [`READ_AHEAD_BATCH_BYTES`] of contents (one handover per entry costs more than it saves),
/// at most [`READ_AHEAD_BATCHES`] batches ahead of the writer: at most 8 MiB of contents wait
/// in memory per directory being walked.
const READ_AHEAD_BATCH: usize = 256;
const READ_AHEAD_BATCH_BYTES: u64 = 2 * 1024 * 1024;
const READ_AHEAD_BATCHES: usize = 4;
/// Files up to this size are read by the read-ahead thread; larger ones are streamed by the
/// writer.
const READ_AHEAD_MAX: u64 = 64 * 1024;

type Batch = std::vec::IntoIter<Result<(String, Entry), HostError>>;

/// One entry of the walk: borrowed from the tree, or read from a host directory.
pub type WalkEntry<'t> = (Cow<'t, str>, Cow<'t, Entry>);

impl FileTree {
    /// Every entry in bytewise path order (parents before children), reading copied host
    /// directories as it goes; a host directory that cannot be listed ends the walk with its
    /// error. Opaque markers are not entries (see [`FileTree::opaque_dirs`]).
    pub fn entries(&self) -> Entries<'_> {
        self.walk(false)
    }

    /// [`FileTree::entries`], with host directories listed on threads of their own that also
    /// read small files ahead of the caller (their contents come back inline); see the
    /// module docs.
    pub fn entries_read_ahead(&self) -> Entries<'_> {
        self.walk(true)
    }

    fn walk(&self, read_ahead: bool) -> Entries<'_> {
        let mut walk = Entries {
            tree: self,
            listed: self.entries.iter().peekable(),
            mounts: Vec::new(),
            failed: None,
            read_ahead,
        };
        if let Some(root) = self.mounts.get("") {
            walk.start_mount("", root);
        }
        walk
    }
}

/// Where a walked host directory's entries come from.
enum Source {
    Here(MountWalk),
    Ahead(mpsc::Receiver<Batch>, Batch),
}

impl Source {
    fn next(&mut self) -> Option<Result<(String, Entry), HostError>> {
        match self {
            Source::Here(walk) => walk.next(),
            Source::Ahead(rx, batch) => loop {
                if let Some(item) = batch.next() {
                    return Some(item);
                }
                *batch = rx.recv().ok()?;
            },
        }
    }

    /// Walks `mount` on a thread of its own (here, when no thread can be started).
    fn ahead(key: &str, mount: &HostMount) -> Result<Source, HostError> {
        let (tx, rx) = mpsc::sync_channel::<Batch>(READ_AHEAD_BATCHES);
        let (k, m) = (key.to_string(), mount.clone());
        let spawned = std::thread::Builder::new()
            .name("kiln-walk".into())
            .spawn(move || read_ahead(&k, &m, &tx));
        match spawned {
            Ok(_) => Ok(Source::Ahead(rx, Vec::new().into_iter())),
            Err(_) => Ok(Source::Here(MountWalk::new(key, mount)?)),
        }
    }
}

/// The body of a read-ahead thread: the entries of the host directory `mount` (at tree key
/// `key`), small files read, sent in batches until the walk ends, fails or nobody listens.
fn read_ahead(key: &str, mount: &HostMount, tx: &mpsc::SyncSender<Batch>) {
    let mut walk = match MountWalk::new(key, mount) {
        Ok(walk) => walk,
        Err(e) => {
            let _ = tx.send(vec![Err(e)].into_iter());
            return;
        }
    };
    let mut batch = Vec::with_capacity(READ_AHEAD_BATCH);
    let mut bytes = 0;
    loop {
        let item = walk.next().map(|item| item.and_then(read_small));
        let last = !matches!(item, Some(Ok(_)));
        if let Some(Ok((_, entry))) = &item {
            if let EntryKind::File(content) = &entry.kind {
                bytes += content.size();
            }
        }
        batch.extend(item);
        if last || batch.len() == READ_AHEAD_BATCH || bytes >= READ_AHEAD_BATCH_BYTES {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(READ_AHEAD_BATCH));
            bytes = 0;
            // A closed channel: the walk was dropped, nobody wants the rest.
            if tx.send(full.into_iter()).is_err() || last {
                return;
            }
        }
    }
}

/// Reads the contents of a small host file into the entry.
fn read_small((path, mut entry): (String, Entry)) -> Result<(String, Entry), HostError> {
    if let EntryKind::File(Content::File {
        path: host,
        size,
        link: None,
    }) = &entry.kind
    {
        if *size <= READ_AHEAD_MAX {
            let mut bytes = Vec::with_capacity(*size as usize);
            host::open_file(host)?
                .take(size + 1)
                .read_to_end(&mut bytes)?;
            let read = bytes.len() as u64;
            if read != *size {
                return Err(HostError::Changed {
                    path: host.clone(),
                    expected: *size,
                    found: if read > *size {
                        format!("more than {size}")
                    } else {
                        read.to_string()
                    },
                });
            }
            entry.kind = EntryKind::File(Content::Inline(Arc::from(bytes)));
        }
    }
    Ok((path, entry))
}

/// A host directory being walked and its next entry.
struct Pending {
    path: String,
    entry: Entry,
    walk: Source,
}

/// The iterator of [`FileTree::entries`].
pub struct Entries<'t> {
    tree: &'t FileTree,
    listed: Peekable<btree_map::Iter<'t, String, Entry>>,
    /// Host directories being walked, each with its next entry read ahead.
    mounts: Vec<Pending>,
    /// An error to report on the next call (then the walk ends).
    failed: Option<HostError>,
    /// Walk host directories on threads of their own (see the module docs).
    read_ahead: bool,
}

impl<'t> Entries<'t> {
    fn start_mount(&mut self, key: &str, mount: &HostMount) {
        let source = if self.read_ahead {
            Source::ahead(key, mount)
        } else {
            MountWalk::new(key, mount).map(Source::Here)
        };
        if let Err(e) = source.and_then(|walk| self.push(walk)) {
            self.failed = Some(e);
        }
    }

    /// Reads the next entry of `walk` and keeps the walk if it has one.
    fn push(&mut self, mut walk: Source) -> Result<(), HostError> {
        if let Some((path, entry)) = walk.next().transpose()? {
            self.mounts.push(Pending { path, entry, walk });
        }
        Ok(())
    }
}

impl<'t> Iterator for Entries<'t> {
    type Item = Result<WalkEntry<'t>, HostError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.mounts.clear();
            self.listed = btree_map::Iter::default().peekable();
            return Some(Err(e));
        }
        // The smallest next path among the listed entries and every walked directory.
        let best = (0..self.mounts.len()).min_by(|&a, &b| {
            let (a, b) = (&self.mounts[a], &self.mounts[b]);
            a.path.cmp(&b.path)
        });
        let listed_first = match (self.listed.peek(), best) {
            (Some(_), None) => true,
            (Some((key, _)), Some(b)) => **key < self.mounts[b].path,
            (None, _) => false,
        };
        if listed_first {
            let (key, entry) = self.listed.next().expect("peeked");
            if let Some(mount) = self.tree.mounts.get(key) {
                self.start_mount(key, mount);
            }
            return Some(Ok((Cow::Borrowed(key.as_str()), Cow::Borrowed(entry))));
        }
        let b = best?;
        let Pending { path, entry, walk } = self.mounts.swap_remove(b);
        if let Err(e) = self.push(walk) {
            self.failed = Some(e);
        }
        Some(Ok((Cow::Owned(path), Cow::Owned(entry))))
    }
}

/// The entries below one mounted host directory, in bytewise path order.
struct MountWalk {
    mount: HostMount,
    /// The directories being listed, outermost first.
    frames: Vec<Frame>,
}

struct Frame {
    /// The tree path of the directory listed.
    dir: String,
    items: std::vec::IntoIter<Item>,
}

/// A child's own entry, or (`contents`) the entries below a child directory.
struct Item {
    child: host::Child,
    contents: bool,
}

impl Item {
    /// The bytes this item sorts by: the name, and `/` after it for a directory's contents.
    fn sort_key(&self) -> impl Iterator<Item = &u8> {
        let slash: &[u8] = if self.contents { b"/" } else { b"" };
        self.child.name.as_bytes().iter().chain(slash)
    }
}

impl MountWalk {
    fn new(key: &str, mount: &HostMount) -> Result<Self, HostError> {
        let items = list(&mount.host)?;
        Ok(MountWalk {
            mount: mount.clone(),
            frames: vec![Frame {
                dir: key.to_string(),
                items,
            }],
        })
    }

    fn next(&mut self) -> Option<Result<(String, Entry), HostError>> {
        loop {
            let frame = self.frames.last_mut()?;
            let Some(item) = frame.items.next() else {
                self.frames.pop();
                continue;
            };
            let path = tree::join(&frame.dir, &item.child.name);
            if !item.contents {
                return Some(Ok((path, self.mount.entry(item.child))));
            }
            match list(&item.child.host) {
                Ok(items) => self.frames.push(Frame { dir: path, items }),
                Err(e) => {
                    self.frames.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The sorted items of one host directory.
fn list(dir: &std::path::Path) -> Result<std::vec::IntoIter<Item>, HostError> {
    let mut items = Vec::new();
    for child in host::read_dir_sorted(dir)? {
        if child.found.is_dir() {
            items.push(Item {
                child: child.clone(),
                contents: true,
            });
        }
        items.push(Item {
            child,
            contents: false,
        });
    }
    items.sort_by(|a, b| a.sort_key().cmp(b.sort_key()));
    Ok(items.into_iter())
}

#[cfg(test)]
#[path = "tree_walk_tests.rs"]
mod tests;
