//! The `podswitch` binary.
fn main() {}
