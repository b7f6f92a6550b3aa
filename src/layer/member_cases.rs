//! The hostile-whiteout case table: layers every reader of layers (`build`'s extractor and
//! lower index, the tree reader, `diff`'s scanner) is given on top of the same lower layer,
//! with the one outcome all of them must agree on (see [`crate::layer::member`] for the
//! rules). Shared by the unit tests and the integration tests in `tests/it`.

use super::testtar::Tar;

/// The outcome every reader must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Accepted: the applied tree of [`lower`] and the layer, as sorted paths (directories
    /// with a trailing `/`).
    Tree(&'static [&'static str]),
    /// Refused, with an error naming this member (as written in the archive).
    Refused(&'static str),
}

pub struct Case {
    pub name: &'static str,
    /// The layer's tar (uncompressed).
    pub layer: fn() -> Vec<u8>,
    pub expect: Expect,
}

/// The layer below every case.
pub fn lower() -> Vec<u8> {
    Tar::new()
        .dir("etc", 0o755)
        .file("etc/gone", b"gone")
        .file("etc/keep", b"keep")
        .file("f", b"f")
        .dir("var", 0o755)
        .file("var/old", b"old")
        .dir("var/sub", 0o755)
        .file("var/sub/deep", b"deep")
        .finish()
}

/// The applied tree of [`lower`] alone.
pub const LOWER_TREE: &[&str] = &[
    "etc/",
    "etc/gone",
    "etc/keep",
    "f",
    "var/",
    "var/old",
    "var/sub/",
    "var/sub/deep",
];

fn empty(name: &str) -> Vec<u8> {
    Tar::new().file(name, b"").finish()
}

pub const CASES: &[Case] = &[
    Case {
        name: "whiteout",
        layer: || empty("etc/.wh.gone"),
        expect: Expect::Tree(&[
            "etc/",
            "etc/keep",
            "f",
            "var/",
            "var/old",
            "var/sub/",
            "var/sub/deep",
        ]),
    },
    Case {
        name: "whiteout-of-a-directory",
        layer: || empty(".wh.var"),
        expect: Expect::Tree(&["etc/", "etc/gone", "etc/keep", "f"]),
    },
    Case {
        name: "whiteout-of-nothing",
        layer: || empty("etc/.wh.absent"),
        expect: Expect::Tree(LOWER_TREE),
    },
    Case {
        name: "whiteout-with-dot-components",
        layer: || empty("./etc/../etc/.wh.gone"),
        expect: Expect::Tree(&[
            "etc/",
            "etc/keep",
            "f",
            "var/",
            "var/old",
            "var/sub/",
            "var/sub/deep",
        ]),
    },
    Case {
        name: "opaque-directory",
        layer: || {
            Tar::new()
                .dir("var", 0o755)
                .file("var/.wh..wh..opq", b"")
                .file("var/new", b"n")
                .finish()
        },
        expect: Expect::Tree(&["etc/", "etc/gone", "etc/keep", "f", "var/", "var/new"]),
    },
    Case {
        name: "opaque-marker-after-its-siblings",
        layer: || {
            Tar::new()
                .dir("var", 0o755)
                .file("var/new", b"n")
                .file("var/.wh..wh..opq", b"")
                .finish()
        },
        expect: Expect::Tree(&["etc/", "etc/gone", "etc/keep", "f", "var/", "var/new"]),
    },
    Case {
        name: "opaque-root",
        layer: || {
            Tar::new()
                .file(".wh..wh..opq", b"")
                .file("new", b"n")
                .finish()
        },
        expect: Expect::Tree(&["new"]),
    },
    Case {
        name: "opaque-root-dot-slash",
        layer: || {
            Tar::new()
                .dir("./", 0o755)
                .file("./.wh..wh..opq", b"")
                .dir("./etc", 0o755)
                .file("./etc/new", b"n")
                .finish()
        },
        expect: Expect::Tree(&["etc/", "etc/new"]),
    },
    Case {
        name: "whiteout-after-an-entry-of-the-same-layer",
        layer: || {
            Tar::new()
                .dir("etc", 0o755)
                .file("etc/gone", b"back")
                .file("etc/.wh.gone", b"")
                .finish()
        },
        expect: Expect::Tree(LOWER_TREE),
    },
    Case {
        name: "whiteout-of-a-directory-this-layer-recreated",
        layer: || {
            Tar::new()
                .dir("var", 0o755)
                .file("var/new", b"n")
                .file(".wh.var", b"")
                .finish()
        },
        expect: Expect::Tree(&["etc/", "etc/gone", "etc/keep", "f", "var/", "var/new"]),
    },
    Case {
        name: "whiteout-then-directory-again",
        layer: || {
            Tar::new()
                .file(".wh.var", b"")
                .dir("var", 0o755)
                .file("var/new", b"n")
                .finish()
        },
        expect: Expect::Tree(&["etc/", "etc/gone", "etc/keep", "f", "var/", "var/new"]),
    },
    Case {
        name: "type-changes-and-duplicates",
        layer: || {
            Tar::new()
                .dir("f", 0o755)
                .file("f/x", b"x")
                .file("var", b"now a file")
                .file("dup", b"1")
                .dir("dup", 0o755)
                .file("dup/y", b"y")
                .finish()
        },
        expect: Expect::Tree(&[
            "dup/", "dup/y", "etc/", "etc/gone", "etc/keep", "f/", "f/x", "var",
        ]),
    },
    Case {
        name: "names-above-the-root-are-clamped",
        layer: || {
            Tar::new()
                .file("../../up", b"u")
                .file("/abs", b"a")
                .finish()
        },
        expect: Expect::Tree(&[
            "abs",
            "etc/",
            "etc/gone",
            "etc/keep",
            "f",
            "up",
            "var/",
            "var/old",
            "var/sub/",
            "var/sub/deep",
        ]),
    },
    Case {
        name: "whiteout-of-nothing-named",
        layer: || empty("etc/.wh."),
        expect: Expect::Refused("etc/.wh."),
    },
    Case {
        name: "whiteout-of-dot",
        layer: || empty(".wh.."),
        expect: Expect::Refused(".wh.."),
    },
    Case {
        name: "whiteout-of-dot-dot",
        layer: || empty("etc/.wh..."),
        expect: Expect::Refused("etc/.wh..."),
    },
    Case {
        name: "reserved-aufs-name",
        layer: || empty(".wh..wh.plnk"),
        expect: Expect::Refused(".wh..wh.plnk"),
    },
    Case {
        name: "whiteout-with-content",
        layer: || Tar::new().file("etc/.wh.gone", b"data").finish(),
        expect: Expect::Refused("etc/.wh.gone"),
    },
    Case {
        name: "whiteout-as-directory",
        layer: || Tar::new().dir("etc/.wh.gone", 0o755).finish(),
        expect: Expect::Refused("etc/.wh.gone"),
    },
    Case {
        name: "whiteout-as-symlink",
        layer: || Tar::new().symlink("etc/.wh.gone", "keep").finish(),
        expect: Expect::Refused("etc/.wh.gone"),
    },
    Case {
        name: "opaque-marker-as-directory",
        layer: || Tar::new().dir("var/.wh..wh..opq", 0o755).finish(),
        expect: Expect::Refused("var/.wh..wh..opq"),
    },
    Case {
        name: "entry-below-a-whiteout-name",
        layer: || Tar::new().file(".wh.var/x", b"x").finish(),
        expect: Expect::Refused(".wh.var/x"),
    },
    Case {
        name: "root-as-symlink",
        layer: || Tar::new().symlink("./", "/etc").finish(),
        expect: Expect::Refused("./"),
    },
    Case {
        name: "root-as-file",
        layer: || Tar::new().file(".", b"").finish(),
        expect: Expect::Refused("."),
    },
    Case {
        name: "hardlink-to-the-root",
        layer: || Tar::new().hardlink("h", "./").finish(),
        expect: Expect::Refused("h"),
    },
    Case {
        name: "symlink-without-target",
        layer: || Tar::new().symlink("s", "").finish(),
        expect: Expect::Refused("s"),
    },
];
