//! No code: this crate exists for its dependency list, which gives every third-party crate one
//! feature set whatever packages cargo builds (see its `Cargo.toml`).
