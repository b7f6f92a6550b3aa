//! Printing: errors as a chain (`error:` then `Caused by:` lines, then any `hint:`), progress
//! as plain lines on stderr (bars only when stderr is a terminal).

use std::io::Write;

/// Prints an error and its causes to stderr, then each cause's hint ([`crate::hint`]).
pub fn error(err: &anyhow::Error) {
    let mut out = String::new();
    for (i, cause) in err.chain().enumerate() {
        if i == 0 {
            out.push_str(&format!("error: {cause}\n"));
        } else {
            if i == 1 {
                out.push_str("\nCaused by:\n");
            }
            out.push_str(&format!("  {i}: {cause}\n"));
        }
    }
    for h in crate::hint::hints(err.chain()) {
        out.push_str(&format!("hint: {h}\n"));
    }
    let _ = std::io::stderr().write_all(out.as_bytes());
}

/// A progress line on stderr.
pub fn status(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Bytes as a short human size.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Writes one line of results to stdout. A closed pipe (`kiln inspect … | head`) ends the
/// program successfully, as it does for every Unix filter, instead of a panic.
pub fn out(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "error: failed to write to stdout: {e}");
        std::process::exit(2);
    }
}

/// `println!` for results: see [`out`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::printer::out(format_args!($($arg)*))
    };
}
pub(crate) use outln;
