//! Layers: the file-tree model, the deterministic tar writer, the safe extractor, compression.

pub mod extract;
pub mod from_tar;
pub mod host;
pub mod read;
pub mod tree;
// write, compress, decompress: added by the compress branch

#[cfg(test)]
mod testtar;
