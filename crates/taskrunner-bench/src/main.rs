//! Placeholder entry point; the comparison binary is built in its own change.
fn main() {}
