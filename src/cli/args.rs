//! The argument structs. Doc comments here are what `kiln --help` shows.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::build::output::OutputFormat;

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
    /// Fill the cache with a recipe's inputs, so that a later `build --offline` succeeds.
    Fetch(FetchArgs),
    /// Show an image: digest, platform, config, layers (sizes, diff_ids) and attached referrers.
    Inspect(InspectArgs),
    /// Compare two images: digests, config, layers, the applied filesystem and tar headers,
    /// with a verdict (identical, same-layers, equivalent, different) and a hint for every
    /// class of difference. Exit 0 when the verdict passes, 1 when it does not, 2 on error.
    Diff(DiffArgs),
    /// Build a recipe, compare the result with REF, record the verdict as an in-toto
    /// statement attached to the rebuilt image. Exit codes as for `diff`.
    Rebuild(RebuildArgs),
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
    pub cache: CacheArgs,
    /// Compression threads [default: the number of CPUs]. The image is the same for any value.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// How the provenance names the recipe (for example a git URL) [default: its file name].
    #[arg(long, value_name = "URI")]
    pub recipe_uri: Option<String>,
    /// An id for this build recorded in the provenance (for example a CI run URL).
    #[arg(long, value_name = "ID")]
    pub invocation_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The recipe file, rewritten in place.
    pub recipe: PathBuf,
    /// Re-resolve inputs that are already pinned too, and update their hashes.
    #[arg(long)]
    pub update: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    #[command(flatten)]
    pub cache: CacheArgs,
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
    pub platform: Option<String>,
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
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first image (e.g. the upstream one): oci:PATH[:TAG], oci-archive:FILE,
    /// docker-archive:FILE.
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
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// The image to reproduce (pinned references recommended: oci:PATH@sha256:…).
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
    pub cache: CacheArgs,
    /// Compression threads [default: the number of CPUs]. The image is the same for any value.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}
