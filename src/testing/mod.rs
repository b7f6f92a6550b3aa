//! Test support shared by unit tests and the integration tests in `tests/it`.

pub mod http_server;
pub mod registry;
pub mod tls;
