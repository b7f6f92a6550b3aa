//! Recipe v1: schema, parsing with spans, validation, in-place pin rewriting.
