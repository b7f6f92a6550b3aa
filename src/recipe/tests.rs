//! Table-driven tests of the whole recipe parser: one full recipe with every key, and each
//! refusal with its exact message (and so its exact line:column and names).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::types::{Base, ImageSection};
use super::values::{Mode, Owner};
use super::*;
use crate::digest::Sha256Digest;

const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const HEX2: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

/// Every key of DESIGN.md's "Recipe format (v1)", plus the compression extension.
const FULL: &str = r#"# a comment
[image]
name = "hello"
epoch = 1700000000
platform = "linux/arm64/v8"
compression = "zstd"
compression-level = 19

[base]
ref = "docker://registry.example/library/debian@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

[inputs.busybox]
url = "https://example.org/busybox-1.36.tar.gz"
sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
[inputs.site]
path = "site"

[[layer]]
[[layer.step]]
extract = "busybox"
dest = "/"
[[layer.step]]
copy = "site"
dest = "/srv//www/"
mode = "0644"
owner = "0:0"
[[layer.step]]
write = "/etc/motd"
content = "hello\n"
[[layer.step]]
mkdir = "/tmp"
mode = "1777"
[[layer.step]]
symlink = "/bin/sh"
target = "busybox"
[[layer.step]]
remove = "/var/cache/apt"

[[layer]]
[[layer.step]]
run = ["/bin/sh", "-c", "busybox --install -s /bin"]
env = { LANG = "C.UTF-8" }
workdir = "/"
[[layer.step]]
run = "echo hi > /x"
user = "1000:1000"
[[layer.step]]
write = "/etc/app.conf"
content = ""
mode = "0600"
owner = "1000:1000"

[config]
entrypoint = ["/bin/sh"]
cmd = []
env = { PATH = "/usr/bin:/bin" }
workdir = "/"
user = "65532:65532"
exposed-ports = ["8080/tcp", "53/udp", "8080"]
labels = { "org.opencontainers.image.source" = "https://example.org/repo" }
stop-signal = "SIGTERM"
"#;

fn p<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn step(line: usize, kind: StepKind) -> Step {
    Step {
        kind,
        span: Span::new(line, 1),
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The error as the CLI prints it: the message, then its hint on a line of its own.
fn printed(e: &RecipeError) -> String {
    match e.hint() {
        Some(h) => format!("{e}\nhint: {h}"),
        None => e.to_string(),
    }
}

#[test]
fn full_recipe_parses_to_the_expected_structure() {
    let recipe = Recipe::parse(FULL, "recipes/hello/recipe.toml", "recipes/hello").unwrap();
    let inputs = [
        Input {
            name: "busybox".into(),
            source: InputSource::Url {
                url: "https://example.org/busybox-1.36.tar.gz".into(),
                sha256: Some(Sha256Digest::from_hex(HEX2).unwrap()),
                size: None,
            },
            span: Span::new(12, 1),
            update: None,
        },
        Input {
            name: "site".into(),
            source: InputSource::Path {
                path: "site".into(),
                resolved: PathBuf::from("recipes/hello/site"),
                sha256: None,
            },
            span: Span::new(15, 1),
            update: None,
        },
    ];
    let expected = Recipe {
        repositories: BTreeMap::new(),
        file: "recipes/hello/recipe.toml".into(),
        dir: "recipes/hello".into(),
        sha256: Sha256Digest::of(FULL.as_bytes()),
        image: ImageSection {
            name: p("hello"),
            epoch: 1_700_000_000,
            platform: p("linux/arm64/v8"),
            platforms: vec![p("linux/arm64/v8")],
            compression: Compression::Zstd,
            compression_level: Some(19),
            history: None,
            annotations: BTreeMap::new(),
        },
        base: Some(Base {
            reference: format!("docker://registry.example/library/debian@sha256:{HEX}")
                .parse()
                .unwrap(),
            digest: Some(Sha256Digest::from_hex(HEX).unwrap()),
            span: Span::new(9, 1),
        }),
        inputs: inputs.into_iter().map(|i| (i.name.clone(), i)).collect(),
        layers: vec![
            Layer {
                span: Span::new(18, 1),
                tar: TarStyle::Kiln,
                steps: vec![
                    step(
                        19,
                        StepKind::Extract {
                            input: "busybox".into(),
                            dest: p("/"),
                        },
                    ),
                    step(
                        22,
                        StepKind::Copy {
                            input: "site".into(),
                            dest: p("/srv/www"),
                            mode: Some(p("0644")),
                            owner: Some(Owner::ROOT),
                        },
                    ),
                    step(
                        27,
                        StepKind::Write {
                            path: p("/etc/motd"),
                            content: "hello\n".into(),
                            mode: Mode::FILE,
                            owner: Owner::ROOT,
                        },
                    ),
                    step(
                        30,
                        StepKind::Mkdir {
                            path: p("/tmp"),
                            mode: p("1777"),
                            owner: Owner::ROOT,
                        },
                    ),
                    step(
                        33,
                        StepKind::Symlink {
                            path: p("/bin/sh"),
                            target: "busybox".into(),
                            owner: Owner::ROOT,
                        },
                    ),
                    step(
                        36,
                        StepKind::Remove {
                            path: p("/var/cache/apt"),
                        },
                    ),
                ],
            },
            Layer {
                span: Span::new(39, 1),
                tar: TarStyle::Kiln,
                steps: vec![
                    step(
                        40,
                        StepKind::Run {
                            argv: vec![
                                "/bin/sh".into(),
                                "-c".into(),
                                "busybox --install -s /bin".into(),
                            ],
                            env: map(&[("LANG", "C.UTF-8")]),
                            workdir: Some(p("/")),
                            user: None,
                        },
                    ),
                    step(
                        44,
                        StepKind::Run {
                            argv: vec!["/bin/sh".into(), "-c".into(), "echo hi > /x".into()],
                            env: BTreeMap::new(),
                            workdir: None,
                            user: Some("1000:1000".into()),
                        },
                    ),
                    step(
                        47,
                        StepKind::Write {
                            path: p("/etc/app.conf"),
                            content: String::new(),
                            mode: p("0600"),
                            owner: p("1000:1000"),
                        },
                    ),
                ],
            },
        ],
        config: ConfigSection {
            entrypoint: Some(vec!["/bin/sh".into()]),
            cmd: Some(vec![]),
            env: map(&[("PATH", "/usr/bin:/bin")]),
            workdir: Some(p("/")),
            user: Some("65532:65532".into()),
            exposed_ports: vec!["53/udp".into(), "8080/tcp".into()],
            labels: map(&[(
                "org.opencontainers.image.source",
                "https://example.org/repo",
            )]),
            stop_signal: Some("SIGTERM".into()),
            at: Default::default(),
        },
    };
    assert_eq!(recipe, expected);
    assert!(recipe.unpinned_inputs().is_empty());
}

#[test]
fn defaults_apply_to_a_minimal_recipe() {
    let recipe = Recipe::parse("[image]\nname = \"x\"\n", "r.toml", ".").unwrap();
    assert_eq!(recipe.image.epoch, 0);
    assert_eq!(recipe.image.platform, Platform::host());
    assert_eq!(recipe.image.compression, Compression::Gzip);
    assert_eq!(recipe.image.compression_level, None);
    assert_eq!(recipe.base, None);
    assert!(recipe.inputs.is_empty() && recipe.layers.is_empty());
    assert_eq!(recipe.config, ConfigSection::default());
}

#[test]
fn inline_and_dotted_forms_parse_like_tables() {
    let text = r#"image = { name = "x" }
inputs.a.url = "https://e/a.tar"
layer = [{ step = [{ extract = "a" }, { mkdir = "/d" }] }]
"#;
    let recipe = Recipe::parse(text, "r.toml", ".").unwrap();
    assert_eq!(recipe.layers.len(), 1);
    assert_eq!(recipe.layers[0].steps.len(), 2);
    assert_eq!(recipe.layers[0].steps[1].span, Span::new(3, 39));
    assert_eq!(
        recipe
            .unpinned_inputs()
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
}

#[test]
fn recipe_serializes_for_the_provenance() {
    let recipe = Recipe::parse(FULL, "recipe.toml", ".").unwrap();
    let json = serde_json::to_value(&recipe).unwrap();
    assert_eq!(json["image"]["platform"], "linux/arm64/v8");
    assert_eq!(json["image"]["compression"], "zstd");
    assert_eq!(
        json["layers"][0]["steps"][2]["kind"]["write"]["mode"],
        "0644"
    );
    assert_eq!(
        json["layers"][0]["steps"][1]["kind"]["copy"]["owner"],
        "0:0"
    );
    assert_eq!(
        json["inputs"]["busybox"]["source"]["url"]["sha256"],
        format!("sha256:{HEX2}")
    );
    let back: Recipe = serde_json::from_value(json).unwrap();
    assert_eq!(back, recipe);
}

const HEAD: &str = "[image]\nname = \"hello\"\n[inputs.busybox]\nurl = \"https://e/b.tar\"\n[inputs.site]\npath = \"site\"\n";

/// Each case: the recipe text after [`HEAD`] (lines 1–6) and the exact error message.
#[test]
fn refusals_name_the_place_and_the_key() {
    let cases: &[(&str, &str)] = &[
        // unknown keys, everywhere
        ("[[layer]]\n[[layer.step]]\nextrct = \"busybox\"\n",
         "recipe.toml:9:1: unknown key `extrct` in [[layer.step]]; expected one of: extract, copy, write, mkdir, symlink, remove, run, dest, mode, owner, content, target, env, workdir, user, packages, from, generate"),
        ("[config]\n  entry-point = []\n",
         "recipe.toml:8:3: unknown key `entry-point` in [config]; expected one of: entrypoint, cmd, env, workdir, user, exposed-ports, labels, stop-signal"),
        ("[layers]\n", "recipe.toml:7:2: unknown key `layers` in the top level; expected one of: image, base, inputs, repositories, layer, config"),
        ("[inputs.x]\nurl = \"https://e/x\"\nsha = \"abc\"\n",
         "recipe.toml:9:1: unknown key `sha` in [inputs.x]; expected one of: url, path, sha256, size, update"),
        // `update` rules
        ("[inputs.x]\nurl = \"https://e/x-1.2.tar\"\nupdate = { url-template = \"https://e/x-{v}.tar\", index = \"https://e/\" }\n",
         "recipe.toml:9:27: invalid `update` of [inputs.x]: expected `{version}` exactly once, in the file name"),
        ("[inputs.x]\nurl = \"https://e/x-1.2.tar\"\nupdate = { url-template = \"https://e/{version}/x.tar\", index = \"https://e/\" }\n",
         "recipe.toml:9:27: invalid `update` of [inputs.x]: expected `{version}` exactly once, in the file name"),
        ("[inputs.x]\nurl = \"https://e/x-latest.tar\"\n[inputs.x.update]\nurl-template = \"https://e/x-{version}.tar\"\nindex = \"https://e/\"\n",
         "recipe.toml:10:16: invalid `update` of [inputs.x]: the input's url `https://e/x-latest.tar` does not match it with a version (digits and dots) in place of `{version}`"),
        ("[inputs.x]\nurl = \"https://e/x-1.2.tar\"\n[inputs.x.update]\nurl-template = \"https://e/x-{version}.tar\"\n",
         "recipe.toml:9:1: invalid `update` of [inputs.x]: give exactly one of `checksums` (a sha256sum file) or `index` (a page listing the releases)"),
        ("[inputs.x]\nurl = \"https://e/x-1.2.tar\"\n[inputs.x.update]\nurl-template = \"https://e/x-{version}.tar\"\nindex = \"ftp://e/\"\n",
         "recipe.toml:11:9: invalid `update` of [inputs.x]: expected an http://, https:// or file:// URL"),
        ("[inputs.x]\nurl = \"https://e/x-1.2.tar\"\n[inputs.x.update]\nurl-template = \"https://e/x-{version}.tar\"\nindex = \"https://e/\"\npattern = \"x\"\n",
         "recipe.toml:12:1: unknown key `pattern` in [inputs.x.update]; expected one of: url-template, checksums, index"),
        ("[inputs.x]\npath = \"x-1.2.tar\"\nupdate = { url-template = \"https://e/x-{version}.tar\", index = \"https://e/\" }\n",
         "recipe.toml:9:1: invalid `update` of [inputs.x]: only a `url` input can be updated"),
        ("[base]\nref = \"oci:x@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\ndigest = 1\n",
         "recipe.toml:9:1: unknown key `digest` in [base]; expected one of: ref"),
        ("[[layer]]\nsteps = []\n", "recipe.toml:8:1: unknown key `steps` in [[layer]]; expected one of: step, tar"),
        ("[[layer]]\ntar = \"gnu\"\n[[layer.step]]\nmkdir = \"/d\"\n",
         "recipe.toml:8:7: unknown tar style `gnu`; expected one of: kiln, go, go-bytewise"),
        ("[[layer]]\ntar = 1\n[[layer.step]]\nmkdir = \"/d\"\n",
         "recipe.toml:8:7: `tar` in [[layer]] must be a string, found integer"),
        // wrong types
        ("[config]\nentrypoint = \"/bin/sh\"\n",
         "recipe.toml:8:14: `entrypoint` in [config] must be an array of strings, found string"),
        ("[config]\ncmd = [\"a\", 1]\n", "recipe.toml:8:13: `cmd` in [config] must be an array of strings, found integer"),
        ("[config]\nenv = { A = 1 }\n", "recipe.toml:8:13: `A` in [config.env] must be a string, found integer"),
        ("[[layer]]\n[[layer.step]]\nmkdir = \"/d\"\nmode = 0644\n",
         "recipe.toml:10:8: invalid TOML: unexpected leading zero, expected nothing\nhint: write modes as quoted octal strings, such as mode = \"0644\""),
        ("[[layer]]\n[[layer.step]]\nmkdir = \"/d\"\nmode = 644\n", "recipe.toml:10:8: `mode` in [[layer.step]] must be a quoted octal string such as \"0644\", found integer"),
        ("[layer]\n", "recipe.toml:7:1: `layer` in the top level must be an array of tables ([[layer]]), found table"),
        ("[[layer]]\n[layer.step]\n", "recipe.toml:8:1: `step` in [[layer]] must be an array of tables ([[layer.step]]), found table"),
        ("[[layer]]\n[[layer.step]]\nrun = 3\n", "recipe.toml:9:7: `run` in [[layer.step]] must be a string or an array of strings, found integer"),
        // step kinds
        ("[[layer]]\n[[layer.step]]\ndest = \"/\"\n",
         "recipe.toml:8:1: [[layer.step]] has no kind; expected exactly one of: extract, copy, write, mkdir, symlink, remove, run, packages"),
        ("[[layer]]\n[[layer.step]]\ncopy = \"site\"\nwrite = \"/x\"\ndest = \"/\"\n",
         "recipe.toml:10:1: [[layer.step]] has both `copy` and `write`; a step does exactly one thing, split it into two steps"),
        ("[[layer]]\n[[layer.step]]\ncopy = \"site\"\ndest = \"/\"\ntarget = \"x\"\n",
         "recipe.toml:11:1: `target` does not apply to a `copy` step; `copy` takes: dest, mode, owner"),
        ("[[layer]]\n[[layer.step]]\nremove = \"/x\"\nmode = \"0644\"\n",
         "recipe.toml:10:1: `mode` does not apply to a `remove` step; `remove` takes: (none)"),
        // inputs referred to by steps
        ("[[layer]]\n[[layer.step]]\nextract = \"busybx\"\n",
         "recipe.toml:9:11: `extract` refers to unknown input `busybx`; known inputs: busybox, site"),
        // input sources
        ("[inputs.x]\nurl = \"https://e/x\"\npath = \"x\"\n", "recipe.toml:9:1: [inputs.x] has both `url` and `path`; give exactly one"),
        ("[inputs.x]\nsha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
         "recipe.toml:7:1: [inputs.x] has neither `url` nor `path`; give exactly one"),
        ("[inputs.x]\nurl = \"https://e/x\"\nsha256 = \"E3B0\"\n",
         "recipe.toml:9:10: invalid sha256 `E3B0` for input `x`: expected 64 lowercase hex digits"),
        ("[inputs.x]\nurl = \"https://e/x\"\nsize = -1\n",
         "recipe.toml:9:8: invalid `size = -1` for input `x`: a `url` input's size is a byte count >= 0 (`kiln lock` writes it); a `path` input has none"),
        ("[inputs.x]\npath = \"x\"\nsize = 3\n",
         "recipe.toml:9:8: invalid `size = 3` for input `x`: a `url` input's size is a byte count >= 0 (`kiln lock` writes it); a `path` input has none"),
        ("[inputs.x]\nurl = \"ftp://e/x\"\n",
         "recipe.toml:8:7: invalid url `ftp://e/x` for input `x`: expected http://, https:// or file:// without spaces"),
        ("[inputs.x]\npath = \"/etc/passwd\"\n",
         "recipe.toml:8:8: invalid path `/etc/passwd` for input `x`: it must be relative to the recipe's directory"),
        ("[inputs.\"a/b\"]\npath = \"x\"\n",
         "recipe.toml:7:9: invalid `a/b` in [inputs]: `a/b` is not a valid input name: expected a letter or digit followed by letters, digits, `.`, `_` or `-`"),
        // modes, owners, paths
        ("[[layer]]\n[[layer.step]]\nmkdir = \"/d\"\nmode = \"0o755\"\n",
         "recipe.toml:10:8: invalid `mode` in [[layer.step]]: `0o755` is not an octal mode: expected 3 or 4 octal digits such as \"0644\" or \"1777\""),
        ("[[layer]]\n[[layer.step]]\nmkdir = \"/d\"\nmode = \"17777\"\n",
         "recipe.toml:10:8: invalid `mode` in [[layer.step]]: `17777` is not an octal mode: expected 3 or 4 octal digits such as \"0644\" or \"1777\""),
        ("[[layer]]\n[[layer.step]]\nmkdir = \"/d\"\nowner = \"root\"\n",
         "recipe.toml:10:9: invalid `owner` in [[layer.step]]: `root` is not an owner: expected numeric \"uid:gid\" such as \"0:0\""),
        ("[[layer]]\n[[layer.step]]\ncopy = \"site\"\ndest = \"srv/www\"\n",
         "recipe.toml:10:8: invalid `dest` in [[layer.step]]: `srv/www` is not an absolute path"),
        ("[[layer]]\n[[layer.step]]\nwrite = \"/a/../etc/passwd\"\ncontent = \"\"\n",
         "recipe.toml:9:9: invalid `write` in [[layer.step]]: `/a/../etc/passwd` contains `..`; paths inside the image must not climb"),
        ("[[layer]]\n[[layer.step]]\nremove = \"/\"\n", "recipe.toml:9:10: a `remove` step cannot apply to `/`"),
        ("[config]\nworkdir = \"app\"\n", "recipe.toml:8:11: invalid `workdir` in [config]: `app` is not an absolute path"),
        // missing keys
        ("[[layer]]\n[[layer.step]]\nwrite = \"/etc/motd\"\n", "recipe.toml:8:1: [[layer.step]] is missing `content`"),
        ("[[layer]]\n[[layer.step]]\nsymlink = \"/bin/sh\"\n", "recipe.toml:8:1: [[layer.step]] is missing `target`"),
        ("[[layer]]\n[[layer.step]]\ncopy = \"site\"\n", "recipe.toml:8:1: [[layer.step]] is missing `dest`"),
        ("[[layer]]\n[[layer.step]]\nsymlink = \"/bin/sh\"\ntarget = \"\"\n", "recipe.toml:10:10: `target` in [[layer.step]] must not be empty"),
        // run
        ("[[layer]]\n[[layer.step]]\nrun = []\n", "recipe.toml:9:7: `run` needs a non-empty command"),
        ("[[layer]]\n[[layer.step]]\nrun = \"  \"\n", "recipe.toml:9:7: `run` needs a non-empty command"),
        ("[[layer]]\n[[layer.step]]\nrun = \"true\"\nenv = { \"A=B\" = \"x\" }\n",
         "recipe.toml:10:9: invalid environment variable name `A=B` in `env` of [[layer.step]]: it must be non-empty and contain no `=`"),
        // layers
        ("[[layer]]\n[[layer]]\n[[layer.step]]\nmkdir = \"/d\"\n",
         "recipe.toml:7:1: empty [[layer]] (layer 1); every layer needs at least one [[layer.step]]"),
        // base
        ("[base]\nref = \"docker://registry.example/library/debian:12\"\n",
         "recipe.toml:8:7: [base] ref `docker://registry.example/library/debian:12` is not pinned\nhint: append `@sha256:<manifest digest>` or run `kiln lock` to resolve it"),
        ("[base]\nref = \"debian@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
         "recipe.toml:8:7: invalid [base] ref `debian@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`: no known transport; expected oci:PATH[:TAG][@sha256:HEX], oci-archive:FILE[:TAG][@sha256:HEX], docker-archive:FILE or docker://[HOST[:PORT]/]REPO[:TAG][@sha256:HEX]"),
        ("[base]\nref = \"docker://reg.example/a..b@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
         "recipe.toml:8:7: invalid [base] ref `docker://reg.example/a..b@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`: the path component `a..b` is not lowercase [a-z0-9] runs joined by `.`, `_`, `__` or `-`"),
        ("[base]\nref = \"docker-archive:base.tar@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
         "recipe.toml:8:7: invalid [base] ref `docker-archive:base.tar@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`: a docker-archive: tarball has no manifest digest to pin; use oci: or oci-archive:"),
        ("[base]\n", "recipe.toml:7:1: [base] is missing `ref`"),
        // shapes
        ("[inputs.x]\nurl = \"https://e/x\"\n[inputs]\ny = \"https://e/y\"\n",
         "recipe.toml:10:5: `y` in [inputs] must be a table, found string"),
        ("[[layer.step]]\nmkdir = \"/d\"\n",
         "recipe.toml:7:3: `layer` in the top level must be an array of tables ([[layer]]), found table"),
        // config
        ("[config]\nexposed-ports = [\"80/tcp\", \"http\"]\n",
         "recipe.toml:8:28: invalid exposed port `http`: expected PORT[/tcp|/udp|/sctp] with PORT in 1..=65535"),
        // syntax
        ("[config\n", "recipe.toml:7:8: invalid TOML: unclosed table, expected `]`"),
    ];
    let mut failures = Vec::new();
    for (tail, want) in cases {
        let text = format!("{HEAD}{tail}");
        match Recipe::parse(&text, "recipe.toml", ".") {
            Ok(_) => failures.push(format!("accepted:\n{tail}")),
            Err(e) if printed(&e) != *want => {
                failures.push(format!("{tail}\n  got:  {}\n  want: {want}", printed(&e)))
            }
            Err(e) => {
                let at = e.location().expect("every parse error has a location");
                assert_eq!(at.file, Path::new("recipe.toml"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Errors in `[image]` (their own table so the head does not interfere).
#[test]
fn image_section_refusals() {
    let cases: &[(&str, &str)] = &[
        ("[image]\nname = \"Hello World\"\n",
         "r.toml:2:8: invalid `name` in [image]: `Hello World` is not a valid OCI reference name: expected components of [A-Za-z0-9] joined by one of `-._:@+` or `--`, separated by `/`"),
        ("[image]\nepoch = 1\n", "r.toml:1:1: [image] is missing `name`"),
        ("", "r.toml:1:1: the top level is missing `image`"),
        ("[image]\nname = \"x\"\nepoch = -1\n", "r.toml:3:9: `epoch` must be >= 0, found -1"),
        ("[image]\nname = \"x\"\nepoch = \"0\"\n", "r.toml:3:9: `epoch` in [image] must be an integer, found string"),
        ("[image]\nname = \"x\"\nplatform = \"linux\"\n",
         "r.toml:3:12: invalid `platform` in [image]: `linux` is not a platform: expected os/arch[/variant] in lowercase, such as \"linux/amd64\" or \"linux/arm/v7\""),
        ("[image]\nname = \"x\"\ncompression = \"xz\"\n", "r.toml:3:15: unknown compression `xz`; expected one of: gzip, zstd"),
        ("[image]\nname = \"x\"\ncompression-level = 10\n", "r.toml:3:21: compression-level 10 is out of range for gzip: expected 0 to 9"),
        ("[image]\nname = \"x\"\ncompression = \"zstd\"\ncompression-level = 0\n",
         "r.toml:4:21: compression-level 0 is out of range for zstd: expected 1 to 22"),
        ("image.name = \"x\"\nimage.nmae = \"y\"\n",
         "r.toml:2:7: unknown key `nmae` in [image]; expected one of: name, epoch, platform, platforms, compression, compression-level, history, annotations"),
        ("[image]\nname = \"x\"\nhistory = \"COPY\"\n",
         "r.toml:3:11: `history` in [image] must be an array of tables ([[image.history]]), found string"),
        ("[image]\nname = \"x\"\n[[image.history]]\ncreated_by = \"COPY\"\n",
         "r.toml:4:1: unknown key `created_by` in [[image.history]]; expected one of: created-by, comment, author, empty-layer"),
        ("[image]\nname = \"x\"\n[[image.history]]\nempty-layer = \"yes\"\n",
         "r.toml:4:15: `empty-layer` in [[image.history]] must be true or false, found string"),
        ("[image]\nname = \"x\"\nhistory = [{ created-by = \"a\" }, { created-by = \"b\" }]\n[[layer]]\n[[layer.step]]\nmkdir = \"/d\"\n",
         "r.toml:3:11: [image] history has 2 entries for layers but the recipe has 1 [[layer]]; give one entry per layer, and `empty-layer = true` to the others"),
        ("[image]\nname = \"x\"\nannotations = { a = 1 }\n",
         "r.toml:3:21: `a` in [image.annotations] must be a string, found integer"),
        ("[image]\nname = \"x\"\nplatforms = [\"linux/amd64\", \"linux/amd64\"]\n",
         "r.toml:3:13: `platforms` must list distinct platforms such as [\"linux/amd64\", \"linux/arm64\"], and replaces `platform` (give one of the two)"),
        ("[image]\nname = \"x\"\nplatforms = [\"linux\"]\n",
         "r.toml:3:13: invalid `platforms` in [image]: `linux` is not a platform: expected os/arch[/variant] in lowercase, such as \"linux/amd64\" or \"linux/arm/v7\""),
    ];
    for (text, want) in cases {
        let err = Recipe::parse(text, "r.toml", ".").unwrap_err();
        assert_eq!(err.to_string(), *want, "{text}");
    }
}

/// What a rebuild of another builder's image needs: its history entries, its manifest
/// annotations and its tar style.
#[test]
fn history_annotations_and_tar_style_parse() {
    let text = r#"[image]
name = "x"
annotations = { "org.opencontainers.image.base.name" = "" }
[[image.history]]
created-by = "/bin/sh -c #(nop) COPY dir:abc in / "
[[image.history]]
created-by = "/bin/sh -c #(nop) CMD [\"sh\"]"
comment = "FROM e8952cbeabbc"
author = "me"
empty-layer = true
[[layer]]
tar = "go"
[[layer.step]]
mkdir = "/d"
[[layer]]
[[layer.step]]
mkdir = "/e"
tar = "kiln"
"#;
    let err = Recipe::parse(text, "r.toml", ".").unwrap_err();
    assert_eq!(
        err.to_string(),
        "r.toml:18:1: unknown key `tar` in [[layer.step]]; expected one of: extract, copy, write, mkdir, symlink, remove, run, dest, mode, owner, content, target, env, workdir, user, packages, from, generate",
        "`tar` belongs to the layer, not a step"
    );
    let text = text.replace("mkdir = \"/e\"\ntar = \"kiln\"\n", "mkdir = \"/e\"\n");
    let text = text.replace("[[layer]]\n[[layer.step]]\nmkdir = \"/e\"\n", "");
    let r = Recipe::parse(&text, "r.toml", ".").unwrap();
    assert_eq!(r.layers.len(), 1);
    assert_eq!(r.layers[0].tar, TarStyle::Go);
    assert_eq!(
        r.image.annotations,
        map(&[("org.opencontainers.image.base.name", "")])
    );
    assert_eq!(
        r.image.history,
        Some(vec![
            HistoryEntry {
                created_by: Some("/bin/sh -c #(nop) COPY dir:abc in / ".into()),
                ..Default::default()
            },
            HistoryEntry {
                created_by: Some("/bin/sh -c #(nop) CMD [\"sh\"]".into()),
                comment: Some("FROM e8952cbeabbc".into()),
                author: Some("me".into()),
                empty_layer: true,
            },
        ])
    );
}

#[test]
fn unpinned_inputs_and_base() {
    let text = "[image]\nname = \"x\"\n[base]\nref = \"oci:base:latest\"\n[inputs.b]\nurl = \"https://e/b\"\n[inputs.a]\nurl = \"https://e/a\"\n[inputs.c]\npath = \"c\"\n";
    let err = Recipe::parse(text, "r.toml", ".").unwrap_err();
    assert!(matches!(err, RecipeError::UnpinnedBase { .. }));
    assert_eq!(
        printed(&err),
        "r.toml:4:7: [base] ref `oci:base:latest` is not pinned\nhint: append `@sha256:<manifest digest>` or run `kiln lock` to resolve it"
    );
    let recipe = Recipe::parse_unpinned(text, "r.toml", ".").unwrap();
    assert_eq!(recipe.base.as_ref().unwrap().digest, None);
    let names: Vec<&str> = recipe
        .unpinned_inputs()
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let pinned = pin_base_ref(text, &format!("oci:base@sha256:{HEX}").parse().unwrap()).unwrap();
    let recipe = Recipe::parse(&pinned, "r.toml", ".").unwrap();
    assert_eq!(recipe.unpinned_inputs().len(), 2);
}

#[test]
fn load_reads_the_file_and_resolves_paths_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recipe.toml");
    fs_err::write(
        &file,
        "[image]\nname = \"x\"\n[inputs.site]\npath = \"site\"\n",
    )
    .unwrap();
    let recipe = Recipe::load(&file).unwrap();
    assert_eq!(recipe.dir, dir.path());
    match &recipe.inputs["site"].source {
        InputSource::Path { resolved, .. } => assert_eq!(resolved, &dir.path().join("site")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        recipe.sha256,
        Sha256Digest::of(&fs_err::read(&file).unwrap())
    );

    let missing = dir.path().join("nope.toml");
    assert!(
        matches!(Recipe::load(&missing), Err(RecipeError::Read { path, .. }) if path == missing)
    );

    fs_err::write(&file, b"[image]\nname = \"\xff\"\n").unwrap();
    let err = Recipe::load(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:2:9: recipe is not valid UTF-8", file.display())
    );
}

/// One-character deletions and truncations of the full recipe either parses or gives
/// an error with a location inside the text; nothing panics, and lock rewriting stays valid.
#[test]
fn mangled_recipes_never_panic() {
    let chars: Vec<(usize, char)> = FULL.char_indices().collect();
    let mut variants: Vec<String> = Vec::new();
    for &(i, c) in chars.iter().step_by(3) {
        variants.push(format!("{}{}", &FULL[..i], &FULL[i + c.len_utf8()..]));
    }
    for (i, _) in FULL.match_indices('\n').step_by(2) {
        variants.push(FULL[..i].to_string());
    }
    for text in &variants {
        match Recipe::parse(text, "r.toml", ".") {
            Ok(_) => {}
            Err(e) => {
                let at = e.location().expect("location");
                assert!(
                    at.line >= 1 && at.line <= text.lines().count().max(1) + 1,
                    "{e}"
                );
            }
        }
        if let Ok(out) = pin_input_sha256(text, "busybox", &Sha256Digest::of(b"x")) {
            toml_edit::Document::parse(out.as_str()).expect("rewritten recipe parses");
        }
    }
}
