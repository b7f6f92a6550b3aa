//! Integration tests: they drive the real `kiln` binary in temporary directories.
