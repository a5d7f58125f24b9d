//! The crate stays pure: clippy forbids reading the clock, and it depends on nothing but sha2,
//! the shared vocabulary (itself pure: no I/O, no clock) and serde's derives (the journal's
//! shape; serde does no I/O of its own).

#[test]
fn clippy_forbids_reading_the_clock() {
    let clippy = include_str!("../clippy.toml");
    assert!(clippy.contains("disallowed-methods"));
    assert!(clippy.contains(r#"path = "std::time::SystemTime::now""#));
    assert!(clippy.contains(r#"path = "std::time::Instant::now""#));
}

#[test]
fn only_dependencies_are_sha2_serde_and_the_vocabulary() {
    let manifest = include_str!("../Cargo.toml");
    let dependencies: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .lines()
        .take_while(|line| !line.starts_with('['))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(
        dependencies,
        [
            r#"cert-vocabulary = { workspace = true, features = ["serde"] }"#,
            "serde.workspace = true",
            "sha2.workspace = true"
        ]
    );
}
