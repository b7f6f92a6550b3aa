//! The rebuild verdict as an in-toto statement (predicate type [`REBUILD_PREDICATE_TYPE`]):
//! what was rebuilt, what it was compared against, the verdict and the classes of difference,
//! and the digest of the full JSON report so the report file can be checked against it.
//! The statement's subject is the rebuilt image, whose layout it is attached to.

use serde_json::{json, Value};

use super::report::{DiffReport, Verdict};
use crate::attest::provenance::RemoteCacheUse;
use crate::attest::{PredicateType, Statement};
use crate::digest::Sha256Digest;

/// kiln's own predicate type for rebuild verdicts (documented in the README).
pub const REBUILD_PREDICATE_TYPE: &str = "https://kiln.build/rebuild/v1";

/// What the statement records besides the report.
#[derive(Clone, Debug)]
pub struct RebuildFacts<'a> {
    /// The rebuilt image's name (the subject name).
    pub image_name: &'a str,
    pub rebuilt_digest: &'a Sha256Digest,
    /// How the recipe is named (file name or URI) and the sha256 of its bytes.
    pub recipe_uri: &'a str,
    pub recipe_digest: &'a Sha256Digest,
    /// The weakest verdict the run accepted.
    pub accept: Verdict,
    /// The digest of the report's JSON bytes, as written with `--report`.
    pub report_digest: &'a Sha256Digest,
    /// With `--cache-from`: the caches asked and the layers taken from them, which were not
    /// rebuilt, so the verdict does not prove an independent rebuild.
    pub remote_cache: Option<&'a RemoteCacheUse>,
}

/// The warning `kiln rebuild --cache-from` prints, and its verdict statement records.
pub const NOT_INDEPENDENT: &str = "layers taken from a remote cache (--cache-from) were not \
     rebuilt: the verdict no longer proves an independent rebuild";

/// The statement about `facts.rebuilt_digest`.
pub fn rebuild_statement(report: &DiffReport, facts: &RebuildFacts<'_>) -> Statement {
    Statement::new(
        facts.image_name,
        facts.rebuilt_digest,
        &PredicateType::Uri(REBUILD_PREDICATE_TYPE.to_string()),
        predicate(report, facts),
    )
}

fn predicate(report: &DiffReport, facts: &RebuildFacts<'_>) -> Value {
    let differences: Vec<Value> = report
        .summary
        .iter()
        .map(|s| json!({"class": s.class, "count": s.count, "significant": s.significant}))
        .collect();
    let mut predicate = json!({
        "verdict": report.verdict,
        "accepted": facts.accept,
        "passed": report.verdict.passes(facts.accept),
        "against": {
            "reference": report.a.reference,
            "index": report.a.index,
            "manifest": report.a.manifest,
        },
        "rebuilt": {
            "manifest": facts.rebuilt_digest.to_string(),
        },
        "recipe": {
            "uri": facts.recipe_uri,
            "digest": {"sha256": facts.recipe_digest.hex()},
        },
        "differences": differences,
        "ignored": report.ignored,
        "report": {
            "schema": report.schema,
            "digest": {"sha256": facts.report_digest.hex()},
        },
        "builder": {"id": "https://kiln.build/kiln", "version": env!("CARGO_PKG_VERSION")},
    });
    if let Some(remote) = facts.remote_cache {
        predicate["independent"] = json!(false);
        predicate["remoteCache"] = json!({
            "warning": NOT_INDEPENDENT,
            "sources": remote.sources,
            "layers": remote.layers,
        });
    }
    predicate
}
