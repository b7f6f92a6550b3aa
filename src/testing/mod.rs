//! Test support shared by unit tests and the integration tests in `tests/it`.

pub mod registry;
