//! Running the Aegis programs as child processes: building them, finding them, stopping them
//! politely, and measuring their peak memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The programs the launcher runs.
pub const PROGRAMS: [&str; 5] = ["generate", "simulate", "train", "monitor", "dashboard"];

/// Builds the five programs with the same profile as this launcher.
pub fn build_programs() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.arg("build").arg("--quiet");
    for program in PROGRAMS {
        command.args(["-p", program]);
    }
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        bail!("building the programs failed ({status}); see the compiler output above");
    }
    Ok(())
}

/// Path of a program built next to this launcher (same target directory and profile).
pub fn program(name: &str) -> anyhow::Result<PathBuf> {
    let launcher = std::env::current_exe().context("locating the launcher")?;
    let dir = launcher.parent().context("launcher has no directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is not built: run `cargo build -p {name}`",
            path.display()
        );
    }
    Ok(path)
}

/// A command for a program, with its stderr going to `log` (or inherited).
pub fn command(name: &str, log: Option<&Path>) -> anyhow::Result<Command> {
    let mut command = Command::new(program(name)?);
    command.stdin(Stdio::null());
    if let Some(log) = log {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        command.stderr(file.try_clone()?).stdout(file);
    }
    Ok(command)
}

/// Exit status, wall time and peak resident memory of a finished child.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub status: i32,
    pub seconds: f64,
    pub peak_mb: f64,
}

/// Waits for `child`, sampling its peak resident memory (VmHWM in /proc) every 20 ms: the
/// workspace forbids the unsafe code `wait4` would need, and the kernel keeps the high-water
/// mark itself, so only the last 20 ms of a run can escape the sample.
pub fn wait_with_usage(child: &mut Child, started: Instant) -> anyhow::Result<Usage> {
    let mut peak_kb = 0u64;
    loop {
        if let Some(exit) = child.try_wait()? {
            return Ok(Usage {
                status: exit.code().unwrap_or(-1),
                seconds: started.elapsed().as_secs_f64(),
                peak_mb: peak_kb as f64 / 1024.0,
            });
        }
        peak_kb = peak_kb.max(peak_rss_kb(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The peak resident set (VmHWM) of a running process, in KiB.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
}

/// Running children, stopped in order when dropped: an error after a spawn (a dashboard
/// that cannot bind its port, a feed that never started) never leaves a monitor or a feed
/// running on without the launcher, holding the database's one-monitor lock.
#[derive(Default)]
pub struct Children(Vec<(&'static str, Child)>);

impl Children {
    /// Adds a child, stopped after those already held.
    pub fn push(&mut self, name: &'static str, child: Child) {
        self.0.push((name, child));
    }

    /// Adds a child, stopped before those already held (a feed, so that the monitor scores
    /// its last batch).
    pub fn push_first(&mut self, name: &'static str, child: Child) {
        self.0.insert(0, (name, child));
    }

    /// The first child that has exited, with its status.
    pub fn exited(&mut self) -> anyhow::Result<Option<(&'static str, ExitStatus)>> {
        for (name, child) in self.0.iter_mut() {
            if let Some(status) = child.try_wait()? {
                return Ok(Some((name, status)));
            }
        }
        Ok(None)
    }

    /// Stops every child in order, giving each `grace`; returns their names and statuses.
    pub fn stop_all(&mut self, grace: Duration) -> Vec<(&'static str, anyhow::Result<ExitStatus>)> {
        self.0
            .drain(..)
            .map(|(name, mut child)| (name, stop(&mut child, grace)))
            .collect()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        let _ = self.stop_all(Duration::from_secs(10));
    }
}

/// One running child, stopped like [`Children`] when dropped. The benchmarks and the soak hold
/// their programs apart (watching one's memory, killing another), and an error between a spawn
/// and its stop (a `?`) must not leave a monitor scoring on, holding the database's lock,
/// after the launcher has gone. Reads as the [`Child`] it holds.
pub struct Running(Child);

impl Running {
    /// Spawns `command`.
    pub fn spawn(command: &mut Command) -> std::io::Result<Running> {
        command.spawn().map(Running)
    }
}

impl std::ops::Deref for Running {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = stop(&mut self.0, Duration::from_secs(10));
    }
}

/// Asks a child to stop (SIGTERM), then kills it if it has not exited after `grace`. A child
/// that has already exited is not signalled: its pid may belong to another process by now.
pub fn stop(child: &mut Child, grace: Duration) -> anyhow::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    signal(child.id(), "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    Ok(child.wait()?)
}

/// Sends a signal by name with the system's `kill` (the workspace forbids unsafe code).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod children_tests {
    use super::*;

    /// An error between spawning the programs and stopping them (the launcher's `?`) stops
    /// them anyway: none outlives the launcher.
    #[test]
    fn children_stop_when_the_launcher_drops_them() {
        let mut children = Children::default();
        let sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = sleeper.id();
        children.push("sleep", sleeper);
        assert!(children.exited().unwrap().is_none());
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(children);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the child was stopped and reaped"
        );
    }

    /// The same for a child a bench step holds alone; one it killed itself is left alone.
    #[test]
    fn a_running_child_stops_when_dropped() {
        let sleeper = Running::spawn(Command::new("sleep").arg("30")).unwrap();
        let pid = sleeper.id();
        drop(sleeper);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

        let mut killed = Running::spawn(Command::new("sleep").arg("30")).unwrap();
        killed.kill().unwrap();
        let status = killed.wait().unwrap();
        assert!(!status.success());
        drop(killed);
    }
}
