//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The shared test data directory: `$SKYSCAN_TESTDATA` if set, else
/// `../../shared/testdata` relative to this crate — located at run time
/// from `$CARGO_MANIFEST_DIR` (cargo sets it for tests), so that a test
/// binary reused from a shared target directory looks beside the checkout
/// that runs it, not the one that built it (the repository sits at
/// `<root>/main`, the shared data at `<root>/shared`, here and in CI).
/// Panics with a clear message if it is missing: ground-truth tests must
/// fail, not pass silently, without their data.
pub fn testdata_dir() -> PathBuf {
    let dir = match std::env::var_os("SKYSCAN_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../shared/testdata"),
    };
    assert!(
        dir.is_dir(),
        "test data directory {} not found: set SKYSCAN_TESTDATA to the shared/testdata \
         directory (it normally sits beside the repository as ../shared/testdata)",
        dir.display()
    );
    dir
}

/// Read a test data file to a string, panicking with its path if missing.
#[allow(dead_code)]
pub fn read_testdata(relative: &str) -> String {
    let path = testdata_dir().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read test data {}: {err}", path.display()))
}
