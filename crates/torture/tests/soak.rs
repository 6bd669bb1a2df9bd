//! A short soak: writers, snapshot-checking readers and reopens for a few seconds, no errors.

#[test]
fn a_short_soak_finds_no_errors() {
    let r = torture::soak::soak(3, 3, 2, std::time::Duration::from_secs(1), 9);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.commits > 0 && r.checks > 0, "{r:?}");
    assert!(r.reopens >= 1, "{r:?}");
}
