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
    /// The wall-clock limit of each `run` step; a step still running then is killed and the
    /// build fails.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub step_timeout: u64,
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
