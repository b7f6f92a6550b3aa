//! The diff report: the verdict, every difference with its class, and one root-cause hint per
//! class. This is also the `--json` schema ([`SCHEMA`]); fields are only ever added to it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::compression::CompressionFacts;
use super::scan::TarFacts;

/// The `schema` field of every report; bumped only on incompatible changes.
pub const SCHEMA: &str = "https://kiln.build/diff/v1";

/// How close two images are, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The same manifest digest.
    Identical,
    /// The same diff_ids (uncompressed layers) and the same runtime config; compression,
    /// manifest or config metadata (created, history) differ.
    SameLayers,
    /// The same files, contents, modes, owners, xattrs and links and the same runtime config;
    /// only timestamps, entry order, tar format, layer boundaries, history or compression
    /// differ.
    Equivalent,
    Different,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Identical => "identical",
            Verdict::SameLayers => "same-layers",
            Verdict::Equivalent => "equivalent",
            Verdict::Different => "different",
        }
    }

    /// Whether this verdict is at least as close as `accept`.
    pub fn passes(self, accept: Verdict) -> bool {
        self <= accept
    }
}

/// The class of one difference. The declaration order is the order of importance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Type,
    Content,
    Added,
    Removed,
    LinkTarget,
    Hardlink,
    Mode,
    Owner,
    Xattr,
    /// A runtime field of the config (entrypoint, cmd, env, user, workdir, labels, ports …) or
    /// the platform.
    Config,
    Mtime,
    LayerBoundaries,
    Compression,
    EntryOrder,
    TarFormat,
    /// The mode field carries file-type bits in one layer and not in the other.
    ModeTypeBits,
    /// One layer has an entry for the root directory (`./`), the other none.
    RootEntry,
    /// devmajor/devminor of non-device entries written differently (octal zeros or NULs).
    DeviceFields,
    /// Header checksums spelled differently.
    ChecksumStyle,
    /// PAX extended headers with different records.
    PaxRecords,
    /// A different end: a missing end-of-archive marker, or other padding after it.
    EndOfArchive,
    /// Directories that are tar entries in one image and only implied in the other.
    ParentEntries,
    /// The tars differ in bytes no other class names.
    TarBytes,
    OwnerNames,
    DuplicateEntries,
    History,
    Created,
    /// Build-tool metadata in the config (author, docker's container_config …).
    ConfigMetadata,
    /// Manifest annotations and media types.
    ManifestMetadata,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Type => "type",
            Class::Content => "content",
            Class::Added => "added",
            Class::Removed => "removed",
            Class::LinkTarget => "link-target",
            Class::Hardlink => "hardlink",
            Class::Mode => "mode",
            Class::Owner => "owner",
            Class::Xattr => "xattr",
            Class::Config => "config",
            Class::Mtime => "mtime",
            Class::LayerBoundaries => "layer-boundaries",
            Class::Compression => "compression",
            Class::EntryOrder => "entry-order",
            Class::TarFormat => "tar-format",
            Class::ModeTypeBits => "mode-type-bits",
            Class::RootEntry => "root-entry",
            Class::DeviceFields => "device-fields",
            Class::ChecksumStyle => "checksum-style",
            Class::PaxRecords => "pax-records",
            Class::EndOfArchive => "end-of-archive",
            Class::ParentEntries => "parent-entries",
            Class::TarBytes => "tar-bytes",
            Class::OwnerNames => "owner-names",
            Class::DuplicateEntries => "duplicate-entries",
            Class::History => "history",
            Class::Created => "created",
            Class::ConfigMetadata => "config-metadata",
            Class::ManifestMetadata => "manifest-metadata",
        }
    }

    /// Whether a difference of this class makes two images `different`.
    pub fn is_significant(self) -> bool {
        self <= Class::Config
    }

    /// What would remove differences of this class, in one line.
    pub fn hint(self) -> &'static str {
        match self {
            Class::Type => "a path changed kind (file, directory, symlink): the steps that create it differ",
            Class::Content => "file bytes differ: check that both builds use the same pinned inputs and steps; `diffoscope` on the two files shows where",
            Class::Added | Class::Removed => "the file sets differ: compare the steps, `remove` steps and whiteouts that create or delete these paths",
            Class::LinkTarget => "symlink targets differ: create links with the same target text (relative vs absolute counts)",
            Class::Hardlink => "hard-link groups differ: archive hard links consistently (kiln links each copy to the first path in sort order)",
            Class::Mode => "permissions differ: set modes explicitly (recipe `mode`, `tar --mode=…`) instead of inheriting the umask or the checkout",
            Class::Owner => "owners differ: set numeric owners explicitly (recipe `owner = \"0:0\"`, `tar --owner=0 --group=0 --numeric-owner`)",
            Class::Xattr => "extended attributes differ: drop all but security.capability when archiving (`tar --no-xattrs`)",
            Class::Config => "the runtime config differs: set the recipe's [config] (entrypoint, cmd, env, user, workdir, labels, ports) to the other image's values",
            Class::Mtime => "timestamps differ: clamp mtimes to SOURCE_DATE_EPOCH (`tar --mtime=@$SOURCE_DATE_EPOCH --clamp-mtime`; kiln's `image.epoch`)",
            Class::LayerBoundaries => "the same files are split into different layers: use the same layer boundaries (one [[layer]] per upstream layer) to get the same diff_ids",
            Class::Compression => "identical tars compress to different blobs: use a fixed gzip header (mtime 0, no file name, `gzip -n`) and the same compressor and level",
            Class::EntryOrder => "tar entries are in a different order: sort entries bytewise by path (`tar --sort=name`)",
            Class::TarFormat => "tar header formats differ (ustar, gnu, pax, v7): write one format (`tar --format=ustar`; kiln writes ustar, with PAX records only when a value does not fit)",
            Class::ModeTypeBits => "the tar mode field carries file-type bits in one image (`0040755`, `0100644`: Go's archive/tar as in podman, buildah and umoci) and not in the other (`0000755`: GNU tar, kiln); permissions are the same: write the mode field one way",
            Class::RootEntry => "one layer has an entry for the root directory itself (`./`: `tar -C dir .`, umoci) and the other none: archive the directory's members (`tar -C dir -cf x.tar bin etc …`) or keep the root entry in both",
            Class::DeviceFields => "devmajor/devminor of entries that are not devices are written differently (octal zeros: POSIX ustar, Go, kiln; NULs: GNU format, Python): write one tar format (`tar --format=ustar`)",
            Class::ChecksumStyle => "header checksums are spelled differently (6 digits, NUL, space: POSIX, GNU tar, Go, kiln; other writers use 7 digits and a NUL, or leading spaces); the sums agree: use the same tar writer",
            Class::PaxRecords => "PAX extended headers carry different records (GNU tar's `--format=posix` adds `atime`, `ctime` and sub-second `mtime`; long names add `path`): write PAX records only where a value does not fit (`--pax-option=delete=atime,delete=ctime`, `--mtime` in whole seconds)",
            Class::EndOfArchive => "the bytes after the last tar entry differ: a missing end-of-archive marker (umoci's `insert` writes neither padding nor marker: Go's archive/tar, podman and kiln read it, GNU tar and Python stop with an unexpected EOF), or padding after the two 512-byte NUL blocks (GNU tar pads to 10240-byte records): end with exactly two NUL blocks (`tar -b 1`, kiln)",
            Class::ParentEntries => "directories are tar entries in one image (`bin/`: podman, buildah, GNU tar) and only implied by the paths below them in the other (kiln writes no entry for a directory no step names); implied directories read as 0755 root-owned: add `mkdir` steps (with the mode, owner and epoch the other image has) to list them",
            Class::TarBytes => "the layers hold the same entries, but their tar bytes differ where no other class looks (header field spelling, padding inside headers): compare the two layers with `diffoscope`",
            Class::OwnerNames => "tar uname/gname differ: write numeric owners with empty names (`tar --numeric-owner`)",
            Class::DuplicateEntries => "a layer holds the same path more than once: write each path once per layer",
            Class::History => "config history differs: write the same history entries, with `created` at SOURCE_DATE_EPOCH",
            Class::Created => "config `created` differs: set it to SOURCE_DATE_EPOCH",
            Class::ConfigMetadata => "build-tool metadata in the config differs; it changes neither the filesystem nor the runtime",
            Class::ManifestMetadata => "manifest annotations or media types differ; they change the manifest digest only",
        }
    }
}

/// Digests and layers of one side.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSide {
    pub reference: String,
    /// The index the reference resolved to, when it was one.
    pub index: Option<String>,
    pub manifest: String,
    pub manifest_media_type: String,
    pub config: String,
    pub platform: String,
    pub layers: Vec<LayerSide>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerSide {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    pub diff_id: String,
    pub compression: Option<CompressionFacts>,
    /// Present when the layer was read (its tar-level facts).
    pub tar: Option<TarFacts>,
}

/// How layer `index` of A compares with layer `index` of B.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerDiff {
    pub index: usize,
    pub status: LayerStatus,
    /// For `compression-only`: the header facts that differ (empty when only the deflate
    /// streams differ). For `different`: the tar-level classes of this layer pair, and
    /// `files` when the applied filesystems differ.
    pub explanation: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerStatus {
    /// The same blob.
    Same,
    /// The same uncompressed tar (diff_id), a different blob.
    CompressionOnly,
    /// Different uncompressed tars.
    Different,
    OnlyInA,
    OnlyInB,
}

/// A difference in the manifest, the config, or at tar level.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDiff {
    pub class: Class,
    /// `entrypoint`, `env`, `labels`, `annotations`, `tar format` …
    pub field: String,
    /// The variable, label, port, history index … within the field, if any.
    pub key: Option<String>,
    /// The layer, for tar-level differences of paired layers.
    pub layer: Option<usize>,
    pub a: serde_json::Value,
    pub b: serde_json::Value,
}

/// What one side has at a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileFacts {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Octal permission and special bits.
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// xattr values in hex.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardlink_group: Option<String>,
    /// The layer (0-based) that last set this path.
    pub layer: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

/// One path that differs, with every class that applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDiff {
    /// Absolute path in the image.
    pub path: String,
    pub classes: Vec<Class>,
    pub a: Option<FileFacts>,
    pub b: Option<FileFacts>,
}

/// The count of differences of one class and what would remove them.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassSummary {
    pub class: Class,
    pub count: usize,
    pub significant: bool,
    pub hint: String,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    pub schema: &'static str,
    pub verdict: Verdict,
    pub a: ImageSide,
    pub b: ImageSide,
    /// Per class, most important first.
    pub summary: Vec<ClassSummary>,
    pub manifest: Vec<FieldDiff>,
    pub layers: Vec<LayerDiff>,
    pub config: Vec<FieldDiff>,
    /// Paths in the applied filesystems that differ, sorted by path.
    pub files: Vec<FileDiff>,
    pub tar: Vec<FieldDiff>,
    /// The `--ignore` patterns applied to `files`.
    pub ignored: Vec<String>,
    /// Whether the layers were read (they are not when the manifests or diff_ids match).
    pub files_compared: bool,
}

impl DiffReport {
    /// Builds the per-class summary from the differences found.
    pub(crate) fn summarize(&mut self) {
        let mut counts: BTreeMap<Class, usize> = BTreeMap::new();
        for f in &self.files {
            for c in &f.classes {
                *counts.entry(*c).or_default() += 1;
            }
        }
        for d in self.manifest.iter().chain(&self.config).chain(&self.tar) {
            *counts.entry(d.class).or_default() += 1;
        }
        let compression = self
            .layers
            .iter()
            .filter(|l| l.status == LayerStatus::CompressionOnly)
            .count();
        if compression > 0 {
            *counts.entry(Class::Compression).or_default() += compression;
        }
        self.summary = counts
            .into_iter()
            .map(|(class, count)| ClassSummary {
                class,
                count,
                significant: class.is_significant(),
                hint: self.hint_for(class),
            })
            .collect();
    }

    /// The class hint, made specific where the facts allow.
    fn hint_for(&self, class: Class) -> String {
        if class == Class::Compression {
            let facts: Vec<&String> = self
                .layers
                .iter()
                .filter(|l| l.status == LayerStatus::CompressionOnly)
                .flat_map(|l| l.explanation.iter())
                .collect();
            if facts.iter().all(|f| f.is_empty()) || facts.is_empty() {
                return "identical tars compress to different blobs with the same headers: \
                        the encoder or its level differs; compress with the same encoder, \
                        level and settings"
                    .to_string();
            }
        }
        class.hint().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significance_follows_the_verdict_definitions() {
        for c in [
            Class::Content,
            Class::Mode,
            Class::Owner,
            Class::Config,
            Class::Type,
        ] {
            assert!(c.is_significant(), "{c:?}");
        }
        for c in [
            Class::Mtime,
            Class::EntryOrder,
            Class::TarFormat,
            Class::History,
            Class::Created,
            Class::Compression,
            Class::LayerBoundaries,
        ] {
            assert!(!c.is_significant(), "{c:?}");
        }
        assert!(Verdict::Identical.passes(Verdict::Equivalent));
        assert!(Verdict::Equivalent.passes(Verdict::Equivalent));
        assert!(!Verdict::Equivalent.passes(Verdict::SameLayers));
        assert!(!Verdict::Different.passes(Verdict::Equivalent));
        assert_eq!(
            serde_json::to_value(Class::LinkTarget).unwrap(),
            "link-target"
        );
        assert_eq!(
            serde_json::to_value(Verdict::SameLayers).unwrap(),
            "same-layers"
        );
    }
}
