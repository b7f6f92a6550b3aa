//! Issue 11: errors name the right thing (layer number, input, recipe position), and
//! downloads are bounded (a pin's size, `--max-download-size`, `file://` regular files only).

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
