//! `url` inputs with an `update` rule: the newest release the rule's list names, downloaded
//! and hashed (and, from a checksums file, checked against the hash listed there).

use serde::Serialize;

use super::UpdateError;
use crate::digest::Sha256Digest;
use crate::fetch::Fetcher;
use crate::recipe::{compare_versions, Input, InputSource, UpdateRule};

/// The most bytes kiln reads of a checksums file or an index page.
pub const MAX_VERSION_LIST: u64 = 16 << 20;

/// A `url` input moved to a newer release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct InputChange {
    pub name: String,
    pub old_version: String,
    pub new_version: String,
    pub old_url: String,
    pub new_url: String,
    pub old_sha256: Option<Sha256Digest>,
    pub new_sha256: Sha256Digest,
    pub new_size: u64,
}

/// The newest release of `input` when it is newer than the one pinned, else `None`.
pub fn newer_release(
    input: &Input,
    rule: &UpdateRule,
    fetcher: &Fetcher,
) -> Result<Option<InputChange>, UpdateError> {
    let InputSource::Url { url, sha256, .. } = &input.source else {
        return Ok(None);
    };
    let list_url = rule.versions.url();
    let what = format!("the release list of input `{}`", input.name);
    let bytes = fetcher
        .read_unpinned(list_url, &what, MAX_VERSION_LIST)
        .map_err(|source| UpdateError::Fetch {
            what: what.clone(),
            url: list_url.to_string(),
            source: Box::new(source),
        })?;
    let text = String::from_utf8_lossy(&bytes);
    let Some((newest, listed)) = rule.versions_in(&text).pop() else {
        return Err(UpdateError::NoVersions {
            input: input.name.clone(),
            url: list_url.to_string(),
            template: rule.url_template.clone(),
        });
    };
    if compare_versions(&newest, &rule.current).is_le() {
        return Ok(None);
    }
    let new_url = rule.url(&newest);
    let (digest, size) = fetcher
        .resolve_sized(&new_url, &input.name)
        .map_err(|source| UpdateError::Fetch {
            what: format!("input `{}` {newest}", input.name),
            url: new_url.clone(),
            source: Box::new(source),
        })?;
    if let Some(listed) = listed.filter(|l| *l != digest.hex()) {
        return Err(UpdateError::ChecksumMismatch {
            input: input.name.clone(),
            url: new_url,
            listed,
            actual: digest,
        });
    }
    Ok(Some(InputChange {
        name: input.name.clone(),
        old_version: rule.current.clone(),
        new_version: newest,
        old_url: url.clone(),
        new_url,
        old_sha256: *sha256,
        new_sha256: digest,
        new_size: size,
    }))
}
