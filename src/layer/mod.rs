//! Layers: the file-tree model, the deterministic tar writer, the safe extractor, compression.

pub mod compress;
pub mod decompress;
pub mod tree;
pub mod write;
