//! The launcher's library: the whole live system from one command, the benchmarks behind
//! BENCHMARKS.md and the fault soak, each as named steps over the five programs run as child
//! processes.
//!
//! # Layout
//! - [`up`]: build, generate and train if needed, run simulator + monitor + dashboard.
//! - [`bench`]: reproduce BENCHMARKS.md; [`apibench`]: the payments API under load.
//! - [`soak`]: kill the monitor and simulator at random under a live feed, then check the books.
//! - [`procs`], [`http`]: child processes and a logged-in dashboard client.

pub mod apibench;
pub mod bench;
pub mod feedbackbench;
pub mod http;
pub mod procs;
pub mod soak;
pub mod up;
