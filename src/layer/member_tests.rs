use super::*;
use crate::layer::read::{ReadLimits, TarReader};
use crate::layer::testtar::Tar;

fn first(tar: &[u8], names: Names) -> Result<Member, MemberError> {
    let mut reader = TarReader::new(tar, ReadLimits::default());
    let entry = reader.next_entry().unwrap().unwrap();
    classify(&entry, names)
}

#[test]
fn members_are_classified() {
    let role = |tar: Vec<u8>| first(&tar, Names::Layer).unwrap().role;
    let file = |name: &str| Tar::new().file(name, b"").finish();
    assert_eq!(role(Tar::new().dir("./", 0o755).finish()), Role::Root);
    assert_eq!(
        role(file("a/.wh..wh..opq")),
        Role::Opaque { dir: "a".into() }
    );
    assert_eq!(role(file(".wh..wh..opq")), Role::Opaque { dir: "".into() });
    assert_eq!(
        role(file("/a/../b/.wh.c")),
        Role::Whiteout {
            target: "b/c".into()
        }
    );
    assert_eq!(
        role(Tar::new().hardlink("h", "/../x").finish()),
        Role::Entry(MemberKind::Hardlink("x".into()))
    );
    assert_eq!(
        role(Tar::new().symlink("s", "../t").finish()),
        Role::Entry(MemberKind::Symlink("../t".into()))
    );
    let m = first(&file("../../x/y"), Names::Layer).unwrap();
    assert_eq!(
        (m.name.as_str(), m.role),
        ("x/y", Role::Entry(MemberKind::File(())))
    );
}

#[test]
fn plain_archives_refuse_every_whiteout_name() {
    for name in ["a/.wh.b", ".wh..wh..opq", ".wh.x/y"] {
        let tar = Tar::new().file(name, b"").finish();
        let err = first(&tar, Names::Plain).unwrap_err();
        assert!(
            matches!(err, MemberError::WhiteoutNotAllowed { .. }),
            "{name}: {err}"
        );
        assert_eq!(err.path(), name);
    }
    let tar = Tar::new().file("a/b", b"").finish();
    assert!(first(&tar, Names::Plain).is_ok());
}
