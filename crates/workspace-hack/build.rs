//! Empty: present so that cargo resolves this crate's host-side `[build-dependencies]` (syn's
//! features for the derive macros) together with the proc-macros'.

fn main() {}
