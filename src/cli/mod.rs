//! The command line: clap argument structs (their doc comments are `--help`) and thin glue that
//! calls the library and maps errors to exit codes. Only this module prints.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
