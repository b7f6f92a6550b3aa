//! Layers: the file-tree model, the deterministic tar writer, the safe extractor, compression.
//!
//! - [`read`]: a streaming tar reader with hard caps (hostile archives fail fast, with bounded
//!   memory);
//! - [`tree`]: the file-tree model of one layer and its edit operations (symlink-aware, never
//!   escaping the image root); [`from_tar`] and [`host`] fill it from archives and host paths;
//! - [`extract`]: applies layer tars onto a real directory, resolving every path inside it.

pub mod extract;
pub mod from_tar;
pub mod host;
mod in_root;
pub mod read;
mod tar_header;
pub mod tree;
// write, compress, decompress: added by the compress branch

#[cfg(test)]
mod testtar;
