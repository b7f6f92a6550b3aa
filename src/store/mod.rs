//! The content-addressed cache: atomic writes, a lock per digest, verification on use.
