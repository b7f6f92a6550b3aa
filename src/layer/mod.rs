//! Layers: the file-tree model, the deterministic tar writer, the safe extractor, compression.

pub mod tree;
