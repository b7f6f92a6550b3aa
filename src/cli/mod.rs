//! The command line: clap argument structs (their doc comments are `--help`) and thin glue that
//! calls the library and maps errors to exit codes. Only this module prints: results to stdout,
//! progress and errors to stderr.
//!
//! Not library API: the binary's one entry is [`main`]; everything else here is private.

mod args;
mod build;
mod cache;
mod copy;
mod diff;
mod inspect;
mod key;
mod lock;
mod printer;
mod progress;
mod promote;
mod rebuild;
mod scan;
mod sign;
mod update;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C and SIGTERM: remove this process's scratch and staging directories, then exit
    // as a shell expects (128 + the signal number).
    if let Err(e) = crate::store::scratch::on_termination(|signal| std::process::exit(128 + signal))
    {
        printer::error(&anyhow::Error::new(e).context("failed to install signal handlers"));
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Build(args) => build::run(args),
        Command::Lock(args) => lock::run_lock(args),
        Command::Fetch(args) => lock::run_fetch(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Key(args) => key::run(args),
        Command::Sign(args) => sign::run_sign(args),
        Command::Attest(args) => sign::run_attest(args),
        Command::Verify(args) => sign::run_verify(args),
        Command::Copy(args) => copy::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Rebuild(args) => rebuild::run(args),
        Command::Cache(args) => cache::run(args),
        Command::Approve(args) => promote::run_approve(args),
        Command::Promote(args) => promote::run_promote(args),
        Command::List(args) => promote::run_list(args),
        Command::Scan(args) => scan::run(args),
        Command::Sbom(args) => scan::run_sbom(args),
        Command::Update(args) => update::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            printer::error(&err);
            ExitCode::from(2)
        }
    }
}
