//! Provenance (SLSA v1 in-toto statements), DSSE envelopes, keys and signatures.

pub mod provenance;
