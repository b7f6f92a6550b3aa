//! The scan result as cosign's `vuln` predicate
//! (`https://cosign.sigstore.dev/attestation/vuln/v1`), the shape `cosign attest --type vuln`
//! and Trivy's `--format cosign-vuln` write:
//!
//! ```json
//! {"invocation": {"parameters": [...], "uri": "", "event_id": "", "builder.id": ""},
//!  "scanner": {"uri": "...", "version": "...", "db": {"uri": "...", "version": "..."},
//!              "result": {...}},
//!  "metadata": {"scanStartedOn": "RFC 3339", "scanFinishedOn": "RFC 3339"}}
//! ```
//!
//! `scanner.result` is kiln's `--json` report ([`Report`]), so `scanner.result.summary` holds
//! the finding counts by severity that `kiln promote`'s `[scan]` rule reads, and
//! `metadata.scanFinishedOn` the time its age limit is measured from. The times are the only
//! wall-clock values kiln writes: the attestation is about a scan (an event), not the image.
//! They are passed in (the CLI reads the clock, or `SOURCE_DATE_EPOCH`); nothing here reads it.

use serde_json::{json, Value};

use super::Report;

/// `scanner.uri` of scans kiln made itself.
pub const KILN_SCANNER_URI: &str = "https://kiln.build/scanner/v1";

/// Who matched the packages against which database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanner {
    pub uri: String,
    pub version: String,
    /// Where the vulnerability data came from (the `--db` path, or the imported report's).
    pub db_uri: String,
    /// Which state of it (kiln: `sha256:` of the records read; Trivy/Grype: their DB version).
    pub db_version: String,
}

impl Scanner {
    /// kiln itself, with the OSV database at `db_uri` whose content digest is `db_version`.
    pub fn kiln(db_uri: String, db_version: String) -> Self {
        Self {
            uri: KILN_SCANNER_URI.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            db_uri,
            db_version,
        }
    }
}

/// When the scan ran, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanTimes {
    pub started: i64,
    pub finished: i64,
}

/// The `vuln` predicate for `report`, made by `scanner` at `times`, invoked with `parameters`
/// (the command-line arguments that decide the result: database, ecosystem, gate, ignore file).
pub fn predicate(
    report: &Report,
    scanner: &Scanner,
    parameters: &[String],
    times: ScanTimes,
) -> Value {
    json!({
        "invocation": {
            "parameters": parameters,
            "uri": "",
            "event_id": "",
            "builder.id": "",
        },
        "scanner": {
            "uri": scanner.uri,
            "version": scanner.version,
            "db": {"uri": scanner.db_uri, "version": scanner.db_version},
            "result": serde_json::to_value(report).expect("a report serializes"),
        },
        "metadata": {
            "scanStartedOn": crate::build::rfc3339(times.started),
            "scanFinishedOn": crate::build::rfc3339(times.finished),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::osv::DatabaseFacts;

    #[test]
    fn predicate_has_cosign_shape_and_the_paths_policy_reads() {
        let report = Report::new(
            "oci:out/app".into(),
            Some(crate::Sha256Digest::of(b"m").to_string()),
            "Debian:12".into(),
            3,
            DatabaseFacts::default(),
            Vec::new(),
            None,
            Vec::new(),
            None,
        );
        let scanner = Scanner::kiln("osv".into(), "sha256:00".into());
        let p = predicate(
            &report,
            &scanner,
            &["--db".into(), "osv".into()],
            ScanTimes {
                started: 1_700_000_000,
                finished: 1_700_000_060,
            },
        );
        assert_eq!(p["invocation"]["parameters"], json!(["--db", "osv"]));
        assert_eq!(p["invocation"]["builder.id"], "");
        assert_eq!(p["scanner"]["uri"], KILN_SCANNER_URI);
        assert_eq!(
            p["scanner"]["db"],
            json!({"uri": "osv", "version": "sha256:00"})
        );
        assert_eq!(
            p.pointer("/scanner/result/summary/critical"),
            Some(&json!(0))
        );
        assert_eq!(
            p.pointer("/metadata/scanStartedOn"),
            Some(&json!("2023-11-14T22:13:20Z"))
        );
        assert_eq!(
            p.pointer("/metadata/scanFinishedOn"),
            Some(&json!("2023-11-14T22:14:20Z"))
        );
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["invocation", "metadata", "scanner"]);
    }
}
