//! The argument structs. Doc comments here are what `kiln --help` shows.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::build::output::OutputFormat;
use crate::platform::Platform;

/// kiln: hermetic, reproducible container-image rebuilds.
///
/// A recipe (TOML) pins every input by sha256; `kiln build` assembles the layers
/// deterministically and writes an OCI image whose digest is the same on every machine, with a
/// SLSA provenance attestation attached.
///
/// Image references use the transports skopeo and podman know: oci:PATH[:TAG][@sha256:HEX],
/// oci-archive:FILE, docker-archive:FILE, docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX].
#[derive(Debug, Parser)]
#[command(name = "kiln", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a recipe into an OCI image; prints the manifest digest as the last line of stdout.
    Build(BuildArgs),
    /// Pin a recipe: download every `url` input without a sha256 and write the hash into the
    /// recipe in place (comments and formatting are kept).
    Lock(LockArgs),
    /// Fill the cache with a recipe's inputs and its registry base image, so that a later
    /// `build --offline` succeeds.
    Fetch(FetchArgs),
    /// Show an image: digest, platform, config, layers (sizes, diff_ids) and attached referrers.
    Inspect(InspectArgs),
    /// Manage signing keys (ECDSA P-256, cosign-compatible files).
    Key(KeyArgs),
    /// Sign an image: append a cosign simple-signing signature to its `sha256-<hex>.sig` tag.
    Sign(SignArgs),
    /// Attest an image: append a DSSE-enveloped in-toto statement to its `sha256-<hex>.att`
    /// tag.
    Attest(AttestArgs),
    /// Verify an image's signatures (and attestations) with a public key. Exit 0 only when
    /// every requested check passes, 1 when one fails, 2 on errors.
    Verify(VerifyArgs),
    /// Copy an image between any two transports (oci:, oci-archive:, docker-archive:,
    /// docker://), with its referrers (provenance) and signatures; prints the manifest digest.
    Copy(CopyArgs),
    /// Compare two images: digests, config, layers, the applied filesystem and tar headers,
    /// with a verdict (identical, same-layers, equivalent, different) and a hint for every
    /// class of difference. Exit 0 when the verdict passes, 1 when it does not, 2 on error.
    Diff(DiffArgs),
    /// Build a recipe, compare the result with REF, record the verdict as an in-toto
    /// statement attached to the rebuilt image. Exit codes as for `diff`.
    Rebuild(RebuildArgs),
    /// Match an image's (or a RECIPE.lock's) Debian packages against OSV vulnerability records,
    /// offline. Exit 0 when the gate passes, 1 when a finding at or above --fail-on (or one
    /// kiln could not evaluate) remains, 2 on errors.
    Scan(ScanArgs),
    /// Write an SBOM of an image's Debian packages (and, from kiln's provenance, the recipe's
    /// inputs): SPDX 2.3 or CycloneDX 1.5 JSON, deterministic bytes.
    Sbom(SbomArgs),
    /// Check or trim the cache.
    Cache(CacheCommandArgs),
    /// Approve an image as a reviewer: append a signed in-toto statement
    /// (https://kiln.build/approval/v1: reviewer key id, comment, image digest, time) to its
    /// `sha256-<hex>.att` tag.
    Approve(ApproveArgs),
    /// Evaluate a policy against what is attached to an image and, only when every rule
    /// passes, copy it by digest with its signatures and attestations to a repository of
    /// verified images and attest the promotion (https://kiln.build/promotion/v1). Exit 0
    /// promoted, 1 refused (nothing written), 2 on errors.
    Promote(PromoteArgs),
    /// List the tags of a registry repository with their digests and promotion status
    /// (promotion statements signed by a --promoted-by key: which key, which policy, when).
    List(ListArgs),
    /// Re-pin recipes to what their sources offer now (base image tags, Debian packages, url
    /// inputs with an `update` rule), and when anything moved: rewrite the recipe and its
    /// lock, build the previous and the updated image, compare and rescan them, and report.
    /// Exit 0 nothing changed, 1 updated, 2 on errors.
    Update(UpdateArgs),
}

#[derive(Debug, Args)]
pub struct CacheCommandArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Re-hash every cache entry, move bad ones to quarantine/, drop records that are not
    /// authentic. Exit 0 when everything was good, 1 when anything was bad, 2 on errors.
    Verify(CacheVerifyArgs),
    /// Remove entries and records not used for N days (last use: the later of a file's access
    /// and modification times, which kiln sets on every use). Waits for other kiln processes
    /// using the cache to finish.
    Gc(CacheGcArgs),
}

#[derive(Debug, Args)]
pub struct CacheVerifyArgs {
    /// The cache [default: $XDG_CACHE_HOME/kiln, else ~/.cache/kiln].
    #[arg(long, value_name = "DIR", env = "KILN_CACHE")]
    pub cache: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CacheGcArgs {
    /// Keep what was used within this many days; 0 removes everything not in use right now.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub keep_days: u64,
    /// The cache [default: $XDG_CACHE_HOME/kiln, else ~/.cache/kiln].
    #[arg(long, value_name = "DIR", env = "KILN_CACHE")]
    pub cache: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How registries are reached. Shared by every command that may talk to one.
#[derive(Debug, Args, Clone)]
pub struct RegistryArgs {
    /// Require HTTPS with a certificate the system trusts. `--tls-verify=false` accepts any
    /// certificate and allows plain HTTP (loopback registries may always use plain HTTP).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Credentials file (containers-auth.json format), consulted before $REGISTRY_AUTH_FILE,
    /// ${XDG_RUNTIME_DIR}/containers/auth.json and ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The image to read, e.g. oci:out/hello:hello or docker://HOST/REPO@sha256:….
    pub source: String,
    /// Where to write it, e.g. docker://HOST/REPO:TAG or oci-archive:hello.tar.
    pub destination: String,
    /// The platform to pick from a multi-platform index [default: linux/<host arch>].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<Platform>,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Where inputs come from. Shared by `build`, `lock` and `fetch`.
#[derive(Debug, Args, Clone)]
pub struct CacheArgs {
    /// The content-addressed cache [default: $XDG_CACHE_HOME/kiln, else ~/.cache/kiln].
    #[arg(long, value_name = "DIR", env = "KILN_CACHE")]
    pub cache: Option<PathBuf>,
    /// Never use the network: inputs must be in the cache or a mirror.
    #[arg(long)]
    pub offline: bool,
    /// A directory of files named by their sha256 (hex), consulted before the network.
    /// Repeatable.
    #[arg(long, value_name = "DIR")]
    pub mirror: Vec<PathBuf>,
    /// The most bytes downloaded for an input whose size the recipe does not pin (an unpinned
    /// input for `kiln lock`, or a recipe locked before sizes were recorded). Pinned inputs
    /// stop at their `size`. Accepts a K, M, G or T suffix (powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "8G", value_parser = parse_size)]
    pub max_download_size: u64,
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn sizes_parse_with_binary_suffixes() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("0", Ok(0)),
            ("1234", Ok(1234)),
            ("2K", Ok(2048)),
            ("3MiB", Ok(3 << 20)),
            ("8G", Ok(crate::fetch::DEFAULT_MAX_DOWNLOAD_SIZE)),
            ("1T", Ok(1 << 40)),
            ("1X", Err("suffix")),
            ("G", Err("not a size")),
            ("-1", Err("not a size")),
            ("99999999999T", Err("too large")),
        ];
        for (text, want) in cases {
            match (super::parse_size(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}

/// `N`, or `N` with a K, M, G or T suffix (powers of 1024; `KiB`, `MiB`, … also accepted).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match &text[digits.len()..] {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        other => return Err(format!("unknown size suffix `{other}`: use K, M, G or T")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size in bytes"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Where to write the image [default: out/<image name>].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The output format: an OCI layout directory, or a tarball of one, or a tarball that
    /// `docker load` / `podman load` accept.
    #[arg(long, value_enum, default_value = "oci")]
    pub format: OutputFormat,
    #[command(flatten)]
    pub run: BuildRunArgs,
    /// How the provenance names the recipe (for example a git URL) [default: its file name].
    #[arg(long, value_name = "URI")]
    pub recipe_uri: Option<String>,
    /// An id for this build recorded in the provenance (for example a CI run URL).
    #[arg(long, value_name = "ID")]
    pub invocation_id: Option<String>,
    /// After writing the output, push the image (with its provenance) to this registry
    /// reference, e.g. docker://HOST/REPO:TAG.
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Sign the image and attest its provenance with this private key (cosign or PKCS#8
    /// PEM; password from KILN_PASSWORD or COSIGN_PASSWORD). Needs --format oci.
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    /// The identity --sign-key signs (HOST/REPO:TAG) [default: the --push destination, else
    /// the image's name].
    #[arg(long, value_name = "REF", requires = "sign_key")]
    pub identity: Option<String>,
    /// Attach SPDX 2.3 and CycloneDX 1.5 SBOMs of the image (what `kiln sbom` writes) beside
    /// the provenance, as in-toto statements (spdxjson, cyclonedx); with --sign-key they are
    /// also signed attestations. Needs --format oci.
    #[arg(long)]
    pub sbom: bool,
    /// Report for machines: one JSON object per line on stdout (`input`, `base`, `layer`,
    /// `warning` events, then `image` with the manifest digest, or `error`); download
    /// progress and `run` steps' output stay on stderr.
    #[arg(long)]
    pub json: bool,
    /// Build twice from scratch without the layer cache (inputs may come from the cache) and
    /// compare the two images: exit 1 with kiln's diff report when they differ; otherwise
    /// write the image as usual.
    #[arg(long)]
    pub check: bool,
    /// After the build, share its layers through a registry repository used as a layer
    /// cache (docker://HOST/REPO, no tag): every layer blob (skipped when the repository has
    /// it), then one record per layer, tagged kiln-cache-<hex of the layer's cache key>, that
    /// maps the key to the blob's digest and diff_id. A failed push is a warning: the image is
    /// built either way.
    #[arg(long, value_name = "REF")]
    pub cache_to: Option<String>,
    /// Sign the --cache-to records with this private key (as for `kiln sign --key`), so that
    /// readers can insist on it with --cache-trust. Unsigned without it.
    #[arg(long, value_name = "KEY", requires = "cache_to")]
    pub cache_key: Option<PathBuf>,
    /// Print the build plan (canonical JSON: every input's and the base's digest, every
    /// layer's steps and cache key) and stop: nothing is fetched, built or written. Its sha256
    /// is the plan digest the provenance records.
    #[arg(long, conflicts_with_all = ["check", "json", "push", "sign_key", "output"])]
    pub plan: bool,
}

/// How a build runs: where its inputs come from and how fast; shared by `build` and `rebuild`.
#[derive(Debug, Args)]
pub struct BuildRunArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Compression threads [default: the number of CPUs]. The image is the same for any value.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Take layers from a registry repository that `kiln build --cache-to` filled
    /// (docker://HOST/REPO; repeatable, asked in order). Before building a layer, kiln looks
    /// its cache key up; on a hit it pulls the layer, verified by digest and by diff_id, and
    /// neither fetches that layer's inputs nor runs its steps. The provenance records which
    /// layers came from which cache. A miss, an unreachable cache or a record that does not
    /// check out is a warning, and the layer is built locally. `kiln rebuild` asks no cache
    /// unless given this, and then warns (and its verdict records) that the verdict no longer
    /// proves an independent rebuild.
    #[arg(long, value_name = "REF")]
    pub cache_from: Vec<String>,
    /// Use only --cache-from records signed by this public key (PEM; repeatable: any of
    /// them). Without it, any record is used: a layer is still checked against the digest and
    /// diff_id its record names, but whoever can push to the cache decides what it contains.
    #[arg(long, value_name = "PUB", requires = "cache_from")]
    pub cache_trust: Vec<PathBuf>,
    /// The wall-clock limit of each `run` step; a step still running then is killed and the
    /// build fails.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub step_timeout: u64,
    /// The most processes (and threads) a `run` step may have at once; 0 for no limit.
    /// Enforced by a cgroup where kiln may make one (as root), else by RLIMIT_NPROC.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub step_pids_max: u64,
    /// The most memory a `run` step may use (K/M/G/T suffixes); 0 for no limit. Enforced by a
    /// cgroup for the whole step where kiln may make one, else by RLIMIT_DATA per process.
    #[arg(long, value_name = "BYTES", default_value = "8G", value_parser = parse_size)]
    pub step_memory_max: u64,
    /// The most bytes a `run` step may write (the sum of the files it creates or changes, and
    /// any one file; K/M/G/T suffixes); 0 for no limit.
    #[arg(long, value_name = "BYTES", default_value = "16G", value_parser = parse_size)]
    pub step_write_max: u64,
    /// Rootless only (ignored as root): how kiln maps ids when a recipe has `run` steps.
    /// `auto` uses the user's range in /etc/subuid and /etc/subgid when there is one (steps
    /// can then own files as any id up to 65535), else `single` (only uid/gid 0 exist in the
    /// steps, which are the invoking user).
    #[arg(
        long,
        value_enum,
        value_name = "MAPPING",
        default_value = "auto",
        env = "KILN_ID_MAPPING"
    )]
    pub id_mapping: IdMappingArg,
}

/// `--id-mapping` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdMappingArg {
    Auto,
    Single,
    Subordinate,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The recipe file, rewritten in place.
    pub recipe: PathBuf,
    /// Re-resolve inputs that are already pinned too, and update their hashes (and re-resolve
    /// the base image's tag).
    #[arg(long)]
    pub update: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image reference, e.g. oci:out/hello:hello.
    pub reference: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The platform to pick from a multi-platform index [default: linux/<host arch>].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<Platform>,
    /// The cache registry blobs are read into [default: $XDG_CACHE_HOME/kiln].
    #[arg(long, value_name = "DIR", env = "KILN_CACHE")]
    pub cache: Option<PathBuf>,
    /// Print the in-toto statements of this predicate type (slsaprovenance1, spdxjson,
    /// cyclonedx, vuln, or a URI) attached to the image, from its `.att` tag and its
    /// referrers, one JSON document each, instead of the summary. Signatures are not checked:
    /// use `kiln verify` for that.
    #[arg(long, value_name = "TYPE")]
    pub attestation: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an ECDSA P-256 key pair: PREFIX.key (cosign's encrypted format, password from
    /// KILN_PASSWORD or COSIGN_PASSWORD, empty allowed) and PREFIX.pub (SPKI PEM).
    Generate(KeyGenerateArgs),
}

#[derive(Debug, Args)]
pub struct KeyGenerateArgs {
    /// Where to write PREFIX.key and PREFIX.pub (existing files are never overwritten).
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image: oci:PATH[:TAG][@sha256:HEX] or docker://HOST/REPO[:TAG][@sha256:HEX].
    pub reference: String,
    /// The private key: cosign's encrypted format (password from KILN_PASSWORD or
    /// COSIGN_PASSWORD), or an unencrypted PKCS#8 / SEC1 PEM.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The `docker-reference` to sign (HOST/REPO:TAG) [default: the reference as given; for a
    /// layout, the image's name in it].
    #[arg(long, value_name = "REF")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The image: oci:PATH[:TAG][@sha256:HEX] or docker://HOST/REPO[:TAG][@sha256:HEX].
    pub reference: String,
    /// The private key (as for `kiln sign`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The predicate: a JSON file (only the predicate, not a whole statement).
    #[arg(long, value_name = "FILE")]
    pub predicate: PathBuf,
    /// The predicate type: slsaprovenance1, spdxjson, cyclonedx, vuln, or a URI.
    #[arg(long = "type", value_name = "TYPE")]
    pub predicate_type: String,
    /// The statement's subject name [default: HOST/REPO; for a layout, the image's name].
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The image: oci:PATH[:TAG][@sha256:HEX] or docker://HOST/REPO[:TAG][@sha256:HEX].
    pub reference: String,
    /// The reviewer's private key (as for `kiln sign`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Why the image is approved (recorded in the statement).
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The image: docker://HOST/REPO[:TAG][@sha256:HEX] or oci:PATH[:TAG][@sha256:HEX].
    pub reference: String,
    /// The policy (TOML; see examples/policy.toml).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The repository of verified images: docker://HOST/REPO[:TAG].
    #[arg(long, value_name = "REF")]
    pub to: String,
    /// The private key that signs the promotion statement (as for `kiln sign`).
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Evaluate and print the table only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the evaluation as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The repository: docker://HOST/REPO.
    pub repository: String,
    /// A promoter's public key; only promotion statements it signed count. Repeatable.
    #[arg(long, value_name = "PUB", required = true)]
    pub promoted_by: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image: oci:PATH[:TAG][@sha256:HEX] or docker://HOST/REPO[:TAG][@sha256:HEX].
    pub reference: String,
    /// The public key (PEM `PUBLIC KEY`, as `kiln key generate` and cosign write it).
    #[arg(long, value_name = "PUB", required_unless_present = "policy")]
    pub key: Option<PathBuf>,
    /// Evaluate this promotion policy (TOML) instead of one key's signatures: every rule must
    /// pass, as for `kiln promote`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key", "attestations", "recipe", "identity", "platform"])]
    pub policy: Option<PathBuf>,
    /// With --policy: also require a promotion statement signed by this public key under
    /// this policy.
    #[arg(long, value_name = "PUB", requires = "policy")]
    pub promoted_by: Option<PathBuf>,
    /// Also require an attestation of this predicate type (slsaprovenance1, spdxjson,
    /// cyclonedx, vuln, or a URI). Repeatable.
    #[arg(long = "attestation", value_name = "TYPE")]
    pub attestations: Vec<String>,
    /// Require the provenance to record this recipe's sha256 (implies --attestation
    /// slsaprovenance1).
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,
    /// Require the signatures to name this identity: HOST/REPO:TAG exactly, or any tag or
    /// digest of HOST/REPO when no tag is given [default: any; the digest binds the image].
    #[arg(long, value_name = "REF")]
    pub identity: Option<String>,
    /// Of a multi-platform index: verify the index's signature and this platform's image
    /// (its signatures and attestations) [default: with --attestation, every platform's
    /// image; without, the index's signature only, as cosign does].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Print the verification report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How strict a comparison is, and which paths it leaves out. Shared by `diff` and `rebuild`.
#[derive(Debug, Args, Clone)]
pub struct DiffCheckArgs {
    /// Pass when the images are `equivalent` (same files, contents, modes, owners and links;
    /// only timestamps, entry order, tar format, layer boundaries, history or compression
    /// differ). Same as `--accept equivalent`.
    #[arg(long, conflicts_with = "accept")]
    pub semantic: bool,
    /// The weakest verdict that passes [default: identical].
    #[arg(long, value_name = "VERDICT", value_parser = ["identical", "same-layers", "equivalent"])]
    pub accept: Option<String>,
    /// Leave paths matching GLOB out of the file comparison (`*`, `?`, and `**` for any
    /// number of directories; `/var/log/**` drops /var/log and everything below). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub ignore: Vec<String>,
    /// The platform to pick from multi-platform indexes [default: linux/<host arch>].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first image (e.g. the upstream one): oci:PATH[:TAG], oci-archive:FILE,
    /// docker-archive:FILE, docker://HOST/REPO[:TAG][@sha256:HEX].
    pub a: String,
    /// The second image (e.g. the rebuilt one).
    pub b: String,
    /// Print the report as JSON (schema https://kiln.build/diff/v1) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub check: DiffCheckArgs,
    /// Lines shown per class of difference in the text report (the JSON has them all).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_lines: usize,
    /// The cache registry blobs are read into [default: $XDG_CACHE_HOME/kiln].
    #[arg(long, value_name = "DIR", env = "KILN_CACHE")]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// The image to reproduce (a pinned reference is best: docker://HOST/REPO@sha256:…).
    #[arg(long, value_name = "REF")]
    pub against: String,
    /// Also write the full diff report here, as JSON.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Where to write the rebuilt image (an OCI layout) [default: out/<image name>].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub check: DiffCheckArgs,
    #[command(flatten)]
    pub run: BuildRunArgs,
    /// Sign the rebuilt image and attest its provenance and the verdict
    /// (https://kiln.build/rebuild/v1) with this private key (as for `build --sign-key`).
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    /// The identity --sign-key signs (HOST/REPO:TAG) [default: the image's name].
    #[arg(long, value_name = "REF", requires = "sign_key")]
    pub identity: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The image (oci:out/hello:hello, docker://…) or a RECIPE.lock file (scanned before
    /// building).
    pub target: String,
    /// OSV records: a directory (searched recursively for *.json) or a zip (osv.dev's
    /// Debian/all.zip).
    #[arg(long, value_name = "DIR|ZIP", required_unless_present_any = ["from_trivy", "from_grype"])]
    pub db: Option<PathBuf>,
    /// Take the findings from a Trivy JSON report of this image (trivy image -f json) instead
    /// of matching OSV records; refused unless it is about this image's digest.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["db", "from_grype"])]
    pub from_trivy: Option<PathBuf>,
    /// Take the findings from a Grype JSON report of this image (grype -o json) instead of
    /// matching OSV records; refused unless it is about this image's digest.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["db"])]
    pub from_grype: Option<PathBuf>,
    /// Attach the result to the image as a cosign `vuln` attestation
    /// (https://cosign.sigstore.dev/attestation/vuln/v1) signed with --key; its scan time is
    /// now, or SOURCE_DATE_EPOCH when set.
    #[arg(long, requires = "key")]
    pub attest: bool,
    /// The private key --attest signs with (cosign or PKCS#8 PEM).
    #[arg(long, value_name = "FILE", requires = "attest")]
    pub key: Option<PathBuf>,
    /// Exit 1 when a finding of this severity or above remains after --ignore (`unknown`:
    /// any finding).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,
    /// Accepted findings: a TOML file of [[ignore]] entries with id, reason and expires
    /// (YYYY-MM-DD); an expired entry is an error.
    #[arg(long, value_name = "FILE")]
    pub ignore: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "sarif")]
    pub json: bool,
    /// Print the report as SARIF 2.1.0.
    #[arg(long)]
    pub sarif: bool,
    /// The OSV ecosystem [default: Debian:VERSION_ID from the image's os-release, or from the
    /// lock's suite].
    #[arg(long, value_name = "NAME")]
    pub ecosystem: Option<String>,
    /// The platform to pick from a multi-platform index [default: linux/<host arch>].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<Platform>,
    /// The cache registry blobs are read into [default: $XDG_CACHE_HOME/kiln].
    #[arg(long, value_name = "DIR", env = "KILN_CACHE")]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Args)]
pub struct SbomArgs {
    /// The image, e.g. oci:out/hello:hello.
    pub reference: String,
    #[arg(long, value_enum)]
    pub format: SbomFormat,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The name the SBOM gives the image [default: the reference as given; `kiln build
    /// --sbom` names it as its attestations do: the --push repository, else the image name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The platform to pick from a multi-platform index [default: linux/<host arch>].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<Platform>,
    /// The cache registry blobs are read into [default: $XDG_CACHE_HOME/kiln].
    #[arg(long, value_name = "DIR", env = "KILN_CACHE")]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SbomFormat {
    SpdxJson,
    CyclonedxJson,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The recipe files; each one (and its RECIPE.lock) is rewritten in place when something
    /// changed, and left untouched otherwise.
    #[arg(required = true)]
    pub recipes: Vec<PathBuf>,
    /// OSV records (a directory or an osv.dev zip): scan the previous and the updated image
    /// and report the vulnerabilities fixed, still open and introduced.
    #[arg(long, value_name = "DIR")]
    pub db: Option<PathBuf>,
    /// The OSV ecosystem (e.g. Debian:12) for images without an /etc/os-release.
    #[arg(long, value_name = "NAME")]
    pub ecosystem: Option<String>,
    /// Write the report as Markdown (a pull-request body).
    #[arg(long, value_name = "FILE.md")]
    pub report: Option<PathBuf>,
    /// Write the report as JSON (schema https://kiln.build/update/v1).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Where updated images are written, as OCI layouts named after `[image] name`.
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub output_dir: PathBuf,
    /// Push the updated image to docker://HOST/REPO[:TAG] (with one recipe only).
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Sign the updated image (and its provenance) in its layout with this private key.
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    #[command(flatten)]
    pub run: BuildRunArgs,
}
