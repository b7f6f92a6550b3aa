//! Issue 11: errors name the right thing (layer number, input, recipe position), and
//! downloads are bounded (a pin's size, `--max-download-size`, `file://` regular files only).

use crate::http_server::{Reply, Server};
use crate::support::*;

/// A recipe writing one file, with `inputs` (TOML) before its layer.
fn recipe(inputs: &str) -> String {
    format!(
        "[image]\nname = \"l\"\n{inputs}[[layer]]\n[[layer.step]]\nwrite = \"/hello\"\n\
         content = \"hi\\n\"\n"
    )
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn input_digest_mismatch_names_the_recipe_position() {
    let ctx = TestContext::new();
    ctx.write("site.txt", "hello\n");
    let text = recipe(&format!(
        "[inputs.site]\npath = \"site.txt\"\nsha256 = \"{}\"\n",
        "0".repeat(64)
    ));
    ctx.write("r.toml", &text);
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml", "-o", "out"])));
    let line = line_of(&text, "[inputs.site]");
    assert!(
        err.contains(&format!("r.toml:{line}:1: input `site`")) && err.contains("digest mismatch"),
        "{err}"
    );
}

#[test]
fn url_digest_mismatch_names_the_recipe_position() {
    let ctx = TestContext::new();
    let file = ctx.write("blob.bin", "bytes\n");
    let text = recipe(&format!(
        "[inputs.blob]\nurl = \"file://{}\"\nsha256 = \"{}\"\n",
        file.display(),
        "0".repeat(64)
    ));
    ctx.write("r.toml", &text);
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml", "-o", "out"])));
    let line = line_of(&text, "[inputs.blob]");
    assert!(
        err.contains(&format!("r.toml:{line}:1: failed to fetch input `blob`"))
            && err.contains("digest mismatch"),
        "{err}"
    );
}

#[test]
fn unpinned_input_names_the_recipe_position() {
    let ctx = TestContext::new();
    let text =
        recipe("[inputs.a]\npath = \"x\"\n[inputs.b]\nurl = \"https://example.invalid/b\"\n");
    ctx.write("r.toml", &text);
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml", "-o", "out"])));
    let line = line_of(&text, "[inputs.b]");
    assert!(err.contains(&format!("r.toml:{line}:1:")), "{err}");
    assert!(err.contains("kiln lock"), "{err}");
}

/// A one-route HTTP server on 127.0.0.1 (the shared test server) answering every request with
/// `head` (status line and headers) followed by `body_chunk` repeated `chunks` times (`None`:
/// until the client goes).
fn serve(head: &'static str, body_chunk: &'static [u8], chunks: Option<usize>) -> String {
    Server::start(move |_| {
        Reply::Stream(Box::new(move |conn| {
            if conn.write_all(head.as_bytes()).is_err() {
                return;
            }
            let mut sent = 0;
            while chunks.is_none_or(|n| sent < n) && conn.write_all(body_chunk).is_ok() {
                sent += 1;
            }
        }))
    })
    .url("/input")
}

const ENDLESS: &str = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
static ZEROS: [u8; 65536] = [0; 65536];

/// What the store holds besides its empty directories: nothing may be left by a refused
/// download, not even a temporary file.
fn cache_files(ctx: &TestContext) -> Vec<String> {
    let root = ctx.join("xdg-cache/kiln");
    if !root.exists() {
        return Vec::new();
    }
    listing(&root)
        .into_iter()
        .filter(|l| l.contains(" bytes "))
        .filter(|l| {
            ["blobs/", "tmp/", "scratch/"]
                .iter()
                .any(|d| l.starts_with(d))
        })
        .collect()
}

#[test]
fn endless_body_stops_at_the_pinned_size() {
    let ctx = TestContext::new();
    let url = serve(ENDLESS, &ZEROS, None);
    let text = recipe(&format!(
        "[inputs.big]\nurl = \"{url}\"\nsha256 = \"{}\"\nsize = 1000000\n",
        "ab".repeat(32)
    ));
    ctx.write("r.toml", &text);
    let started = std::time::Instant::now();
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml", "-o", "out"])));
    assert!(started.elapsed().as_secs() < 60, "stopped promptly");
    assert!(
        err.contains("download of input `big`")
            && err.contains("is larger than its pinned size of 1000000 bytes"),
        "{err}"
    );
    assert!(cache_files(&ctx).is_empty(), "{:?}", cache_files(&ctx));
    assert!(!ctx.join("out").exists());
}

#[test]
fn endless_body_without_a_pinned_size_stops_at_the_cap() {
    let ctx = TestContext::new();
    let url = serve(ENDLESS, &ZEROS, None);
    // A recipe locked before sizes were recorded.
    let text = recipe(&format!(
        "[inputs.big]\nurl = \"{url}\"\nsha256 = \"{}\"\n",
        "ab".repeat(32)
    ));
    ctx.write("r.toml", &text);
    let err = stderr(&run_err(ctx.kiln().args([
        "build",
        "r.toml",
        "-o",
        "out",
        "--max-download-size",
        "2M",
    ])));
    assert!(
        err.contains("is larger than --max-download-size (2097152 bytes)"),
        "{err}"
    );
    assert!(cache_files(&ctx).is_empty(), "{:?}", cache_files(&ctx));
    // `kiln lock` of an unpinned endless input stops at the cap too, and writes no pin.
    let unpinned = recipe(&format!("[inputs.big]\nurl = \"{url}\"\n"));
    ctx.write("u.toml", &unpinned);
    let err = stderr(&run_err(ctx.kiln().args([
        "lock",
        "u.toml",
        "--max-download-size",
        "1M",
    ])));
    assert!(err.contains("--max-download-size (1048576 bytes)"), "{err}");
    assert_eq!(
        std::fs::read_to_string(ctx.join("u.toml")).unwrap(),
        unpinned
    );
    assert!(cache_files(&ctx).is_empty(), "{:?}", cache_files(&ctx));
}

#[test]
fn huge_content_length_is_refused_before_the_body() {
    let ctx = TestContext::new();
    let url = serve(
        "HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\nConnection: close\r\n\r\n",
        &ZEROS,
        Some(4),
    );
    ctx.write(
        "u.toml",
        recipe(&format!("[inputs.big]\nurl = \"{url}\"\n")),
    );
    let err = stderr(&run_err(ctx.kiln().args(["lock", "u.toml"])));
    assert!(
        err.contains("is larger than --max-download-size (8589934592 bytes)")
            && err.contains("the server announced 1099511627776 bytes"),
        "{err}"
    );
    assert!(cache_files(&ctx).is_empty(), "{:?}", cache_files(&ctx));
}

#[test]
fn file_urls_must_name_regular_files() {
    let ctx = TestContext::new();
    ctx.write(
        "u.toml",
        recipe("[inputs.zero]\nurl = \"file:///dev/zero\"\n"),
    );
    let started = std::time::Instant::now();
    let err = stderr(&run_err(ctx.kiln().args(["lock", "u.toml"])));
    assert!(
        err.contains("input `zero` at /dev/zero is a character device, not a regular file"),
        "{err}"
    );
    let text = recipe(&format!(
        "[inputs.zero]\nurl = \"file:///dev/zero\"\nsha256 = \"{}\"\n",
        "ab".repeat(32)
    ));
    ctx.write("r.toml", &text);
    let err = stderr(&run_err(ctx.kiln().args(["build", "r.toml", "-o", "out"])));
    assert!(
        err.contains("is a character device, not a regular file"),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 60);
    assert!(cache_files(&ctx).is_empty(), "{:?}", cache_files(&ctx));
}

#[test]
fn lock_records_the_size_and_build_holds_the_download_to_it() {
    let ctx = TestContext::new();
    let file = ctx.write("blob.bin", "twelve bytes");
    let url = format!("file://{}", file.display());
    let unpinned = recipe(&format!("[inputs.blob]\nurl = \"{url}\"\n"));
    ctx.write("r.toml", &unpinned);
    run_ok(ctx.kiln().args(["lock", "r.toml"]));
    let locked = std::fs::read_to_string(ctx.join("r.toml")).unwrap();
    let digest = kiln::Sha256Digest::of(b"twelve bytes").hex();
    assert!(
        locked.contains(&format!(
            "url = \"{url}\"\nsha256 = \"{digest}\"\nsize = 12\n"
        )),
        "{locked}"
    );
    run_ok(ctx.kiln().args(["build", "r.toml", "-o", "out"]));

    // A recipe pinned before sizes were recorded gets its size from the verified bytes.
    let old = recipe(&format!(
        "[inputs.blob]\nurl = \"{url}\"\nsha256 = \"{digest}\"\n"
    ));
    ctx.write("old.toml", &old);
    run_ok(ctx.kiln().args(["lock", "old.toml"]));
    let relocked = std::fs::read_to_string(ctx.join("old.toml")).unwrap();
    assert!(relocked.contains("size = 12\n"), "{relocked}");

    // A pinned size is a limit: the file growing upstream is stopped there.
    std::fs::write(&file, "twelve bytes and more").unwrap();
    let err = stderr(&run_err(
        ctx.kiln()
            .env("XDG_CACHE_HOME", ctx.join("fresh-cache"))
            .args(["build", "r.toml", "-o", "out2"]),
    ));
    assert!(err.contains("its pinned size of 12 bytes"), "{err}");
}
