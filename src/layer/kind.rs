//! What a filesystem object of a layer is: one model for the three places that name it, the
//! tar member classifier ([`super::member`]), the layer tree ([`super::tree`]) and `kiln
//! diff`'s scanner, so that a kind added or read differently in one is seen by all of them.
//!
//! They differ only in what a regular file carries (`F`: nothing for a classified member, its
//! content for the tree, its size and digest for `diff`) and in whether the kind can be a
//! whiteout (`W`: only the tree holds one as an entry, written as `.wh.NAME`; elsewhere `W` is
//! [`Infallible`], so that a whiteout cannot be built, and matches need no arm for it).

use std::convert::Infallible;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind<F, W = Infallible> {
    Dir,
    File(F),
    /// The target exactly as written (relative or absolute, never empty); resolved inside the
    /// image root.
    Symlink(String),
    /// A hard link to another entry (a normalized path, never the root).
    Hardlink(String),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
    /// Deletes the path from lower layers.
    Whiteout(W),
}

impl<F, W> Kind<F, W> {
    /// The kind in prose, for messages (`regular file`, `character device`).
    pub fn name(&self) -> &'static str {
        self.names().0
    }

    /// The kind as a token, for reports (`file`, `char-device`).
    pub fn type_name(&self) -> &'static str {
        self.names().1
    }

    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Kind::Dir => ("directory", "dir"),
            Kind::File(_) => ("regular file", "file"),
            Kind::Symlink(_) => ("symlink", "symlink"),
            Kind::Hardlink(_) => ("hardlink", "hardlink"),
            Kind::CharDevice { .. } => ("character device", "char-device"),
            Kind::BlockDevice { .. } => ("block device", "block-device"),
            Kind::Fifo => ("fifo", "fifo"),
            Kind::Whiteout(_) => ("whiteout", "whiteout"),
        }
    }
}

impl<F> Kind<F> {
    /// The same kind with a file's `F` replaced by what `file` makes of it, as a kind of any
    /// other model (one without whiteouts fits every model).
    pub fn try_map_file<G, V, E>(
        self,
        file: impl FnOnce(F) -> Result<G, E>,
    ) -> Result<Kind<G, V>, E> {
        Ok(match self {
            Kind::Dir => Kind::Dir,
            Kind::File(f) => Kind::File(file(f)?),
            Kind::Symlink(target) => Kind::Symlink(target),
            Kind::Hardlink(target) => Kind::Hardlink(target),
            Kind::CharDevice { major, minor } => Kind::CharDevice { major, minor },
            Kind::BlockDevice { major, minor } => Kind::BlockDevice { major, minor },
            Kind::Fifo => Kind::Fifo,
            Kind::Whiteout(never) => match never {},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_mapping() {
        type Member = Kind<()>;
        let all: [Member; 7] = [
            Kind::Dir,
            Kind::File(()),
            Kind::Symlink("t".into()),
            Kind::Hardlink("h".into()),
            Kind::CharDevice { major: 1, minor: 3 },
            Kind::BlockDevice { major: 8, minor: 0 },
            Kind::Fifo,
        ];
        let names: Vec<_> = all.iter().map(|k| (k.name(), k.type_name())).collect();
        assert_eq!(
            names,
            [
                ("directory", "dir"),
                ("regular file", "file"),
                ("symlink", "symlink"),
                ("hardlink", "hardlink"),
                ("character device", "char-device"),
                ("block device", "block-device"),
                ("fifo", "fifo"),
            ]
        );
        for k in all {
            let mapped: Kind<u64, ()> = k.clone().try_map_file(|()| Ok::<_, ()>(5)).unwrap();
            match (&k, &mapped) {
                (Kind::File(()), Kind::File(5)) => {}
                (Kind::File(()), other) => panic!("{other:?}"),
                _ => assert_eq!(format!("{k:?}"), format!("{mapped:?}")),
            }
        }
        let failed: Result<Kind<u64>, &str> = Member::File(()).try_map_file(|()| Err("no"));
        assert_eq!(failed, Err("no"));
        assert_eq!(Kind::<u64, ()>::Whiteout(()).name(), "whiteout");
    }
}
