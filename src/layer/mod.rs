//! Layers: the file-tree model, the deterministic tar writer, the safe extractor, compression.
//!
//! - [`read`]: a streaming tar reader with hard caps (hostile archives fail fast, with bounded
//!   memory);
//! - [`member`]: what one tar member of a layer means (whiteouts, opaque markers, types,
//!   links, name rules): the one set of rules every reader of layers uses;
//! - [`tree`]: the file-tree model of one layer and its edit operations (symlink-aware, never
//!   escaping the image root); [`from_tar`] and [`host`] fill it from archives and host paths
//!   (a copied directory stays on the host until the layer is written); [`tree_walk`] lists
//!   every entry in the writer's order, reading copied directories as it goes;
//! - [`extract`]: applies layer tars onto a real directory, resolving every path inside it.
//! - [`upper`]: turns the overlay upper directory of a sandboxed `run` step back into entries.

pub mod compress;
pub(crate) mod decompress;
pub(crate) mod extract;
pub(crate) mod from_tar;
pub(crate) mod host;
mod in_root;
pub(crate) mod kind;
pub(crate) mod member;
pub(crate) use in_root::{read_regular, ReadInRootError};
pub(crate) mod read;
pub(crate) mod tar_header;
pub(crate) mod tar_style;
pub(crate) mod tree;
pub(crate) mod tree_walk;
pub(crate) mod upper;
pub(crate) mod write;

#[cfg(test)]
pub(crate) mod member_cases;
#[cfg(test)]
pub(crate) mod testtar;

/// The digest of a host file or directory as a `path` input: the sha256 of the deterministic
/// tar of its normalized tree (root-owned, mtime 0), so it depends only on what git would
/// track: names, contents, the executable bit, symlinks and hardlinks.
pub(crate) fn host_path_digest(
    host: &std::path::Path,
) -> Result<crate::digest::Sha256Digest, HostDigestError> {
    let opts = host::HostOptions {
        mode: None,
        owner: None,
        epoch: 0,
    };
    let tree = host::host_tree(host, &opts)?;
    let mut hasher = crate::digest::Hasher::new();
    write::write_tar(&tree, 0, &mut hasher)?;
    Ok(hasher.finish())
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HostDigestError {
    #[error(transparent)]
    Host(#[from] host::HostError),
    #[error(transparent)]
    Write(#[from] write::WriteError),
}
