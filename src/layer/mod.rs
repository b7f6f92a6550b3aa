//! Layers: the file-tree model, the deterministic tar writer, the safe extractor, compression.

pub mod compress;
pub mod decompress;
pub mod extract;
pub mod from_tar;
pub mod host;
pub mod read;
pub mod tree;
pub mod write;

#[cfg(test)]
mod testtar;
