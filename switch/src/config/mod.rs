//! The config file: TOML, the keys of DESIGN.md's contract.
