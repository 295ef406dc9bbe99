//! Checkpoints of the feature state, so a restart replays only the rows since the newest one
//! instead of all history.
//!
//! A checkpoint is the state after every row up to a committed mark, in
//! `<dir>/state-<mark>.ckpt` (by default `<db>.checkpoints/` for SQLite) (the bytes of [`FeatureState::encode`]: feature-set id,
//! mark, state, checksum). It is written to a `.tmp` file, synced, and renamed into place, so a
//! `kill -9` at any moment leaves the previous checkpoint untouched and at worst a stale `.tmp`
//! that the next start deletes. The newest two are kept. On start, the newest checkpoint that
//! decodes, carries this build's feature set, is not ahead of the database's mark and whose
//! anchor matches the row at its mark (the row's insert time and beneficiary: a checkpoint
//! left beside a database regenerated since, or copied from another, is never applied) is used;
//! anything else is logged and skipped, down to a full replay, so a checkpoint can make a
//! restart faster but never a score different.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use aegis_core::features::{Checkpoint, FeatureState};

/// When the monitor writes a checkpoint: after `every_rows` newly scored rows or `every` of
/// time with at least one, whichever comes first, but never sooner than 20 times the last
/// checkpoint's cost to the scoring thread (so checkpoints take at most 5 % of its time, however
/// big the state); and when it stops.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// 0 turns checkpoints off (every start replays all history).
    pub every_rows: u64,
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    /// Every 50,000 rows or minute: a restart replays at most that much (about 0.15 s on the
    /// reference machine) on top of restoring the checkpoint, however long the history.
    fn default() -> Self {
        CheckpointPolicy {
            every_rows: 50_000,
            every: Duration::from_secs(60),
        }
    }
}

impl CheckpointPolicy {
    pub fn enabled(&self) -> bool {
        self.every_rows > 0
    }
}

/// The checkpoint directory of one database.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    feature_set: String,
}

const PREFIX: &str = "state-";
const SUFFIX: &str = ".ckpt";
const KEEP: usize = 2;

impl Checkpoints {
    /// The checkpoints in `dir` (see `Journal::default_checkpoint_dir` for where they go).
    pub fn new(dir: PathBuf, feature_set: String) -> Checkpoints {
        Checkpoints { dir, feature_set }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, mark: i64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{mark:020}{SUFFIX}"))
    }

    /// The checkpoint files, newest (highest mark) first, with their marks.
    fn files(&self) -> Vec<(i64, PathBuf)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<(i64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let mark = name
                    .strip_prefix(PREFIX)?
                    .strip_suffix(SUFFIX)?
                    .parse()
                    .ok()?;
                Some((mark, entry.path()))
            })
            .collect();
        files.sort_by_key(|file| std::cmp::Reverse(file.0));
        files
    }

    /// The newest usable checkpoint at or below `mark` whose anchor is `anchor_of` its mark;
    /// every one skipped is logged with why.
    pub fn restore(
        &self,
        mark: i64,
        mut anchor_of: impl FnMut(i64) -> Option<String>,
    ) -> Option<Checkpoint> {
        for (file_mark, path) in self.files() {
            if file_mark > mark {
                tracing::warn!(
                    file = %path.display(),
                    checkpoint_mark = file_mark,
                    mark,
                    "checkpoint is ahead of the database's mark (a restored backup?): ignored"
                );
                continue;
            }
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "checkpoint unreadable: ignored");
                    continue;
                }
            };
            match FeatureState::decode(&bytes, &self.feature_set) {
                Ok(checkpoint)
                    if checkpoint.mark == file_mark
                        && anchor_of(file_mark).as_deref() == Some(checkpoint.anchor.as_str()) =>
                {
                    return Some(checkpoint);
                }
                Ok(checkpoint) if checkpoint.mark == file_mark => tracing::warn!(
                    file = %path.display(),
                    "checkpoint's row at the mark is gone or differs (deleted since, or another database): ignored"
                ),
                Ok(checkpoint) => tracing::warn!(
                    file = %path.display(),
                    inside = checkpoint.mark,
                    "checkpoint's name and contents disagree on the mark: ignored"
                ),
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "checkpoint unusable: ignored");
                }
            }
        }
        None
    }

    /// Deletes `.tmp` files a killed writer left behind.
    pub fn clean_partial(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Streams `state` at `mark` into a new `.tmp` file (no copy of the state in memory);
    /// [`commit`](Self::commit) makes it durable and current.
    fn encode(&self, state: &FeatureState, mark: i64, anchor: &str) -> anyhow::Result<Pending> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.path_of(mark);
        let mut temporary = path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let file = fs::File::create(&temporary)
            .with_context(|| format!("creating {}", temporary.display()))?;
        let bytes = match state.encode_to(BufWriter::new(&file), &self.feature_set, mark, anchor) {
            Ok(bytes) => bytes,
            Err(error) => {
                // A full disk must not fill up further with a half file per attempt.
                let _ = fs::remove_file(&temporary);
                return Err(error).with_context(|| format!("writing {}", temporary.display()));
            }
        };
        Ok(Pending {
            file,
            temporary,
            path,
            mark,
            bytes,
        })
    }

    /// Syncs a written checkpoint, renames it into place, and drops all but the newest
    /// [`KEEP`] at or below its mark. Those above it belong to data this database no longer
    /// holds (it was regenerated or restored, and ids started again): kept, they would outrank
    /// every new checkpoint, each deleted as soon as written, and every restart would replay
    /// all history.
    fn commit(&self, pending: &Pending) -> anyhow::Result<()> {
        let placed = pending
            .file
            .sync_all()
            .and_then(|()| fs::rename(&pending.temporary, &pending.path));
        if let Err(error) = placed {
            let _ = fs::remove_file(&pending.temporary);
            return Err(error.into());
        }
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        let (ahead, kept): (Vec<_>, Vec<_>) = self
            .files()
            .into_iter()
            .partition(|(mark, _)| *mark > pending.mark);
        for (_, old) in ahead.into_iter().chain(kept.into_iter().skip(KEEP)) {
            let _ = fs::remove_file(old);
        }
        Ok(())
    }
}

/// A checkpoint written but not yet synced and renamed.
struct Pending {
    file: fs::File,
    temporary: PathBuf,
    path: PathBuf,
    mark: i64,
    bytes: u64,
}

/// Writes checkpoints: the scoring thread streams the state into a `.tmp` file (no copy of it
/// in memory), and a background thread syncs and renames it, one at a time.
pub struct Writer {
    checkpoints: Checkpoints,
    policy: CheckpointPolicy,
    pending: Option<JoinHandle<()>>,
    rows_since: u64,
    last: Instant,
    /// What the last checkpoint cost the scoring thread (encoding, and waiting for the one
    /// before to finish writing).
    last_cost: Duration,
}

/// Checkpoints take at most 1/SPACING of the scoring thread's time.
const SPACING: u32 = 20;

impl Writer {
    /// `replayed` is what the start had to replay since the newest checkpoint: it counts
    /// towards the next one. A monitor killed more often than the checkpoint interval (the
    /// long soak kills it every 9 s) otherwise never wrote one, and every restart replayed a
    /// little more: 4 s after half an hour.
    pub fn new(checkpoints: Checkpoints, policy: CheckpointPolicy, replayed: u64) -> Writer {
        Writer {
            checkpoints,
            policy,
            pending: None,
            rows_since: replayed,
            last: Instant::now(),
            last_cost: Duration::ZERO,
        }
    }

    /// Counts `rows` newly committed; writes a checkpoint of `state` at `mark` (whose row
    /// `anchor` identifies) when due.
    pub fn scored(
        &mut self,
        rows: u64,
        state: &FeatureState,
        mark: i64,
        anchor: impl FnOnce() -> Option<String>,
    ) {
        self.rows_since += rows;
        let elapsed = self.last.elapsed();
        let due = (self.rows_since >= self.policy.every_rows
            || (self.rows_since > 0 && elapsed >= self.policy.every))
            && elapsed >= self.last_cost * SPACING;
        if self.policy.enabled() && due {
            self.start(state, mark, anchor());
        }
    }

    /// Writes a last checkpoint if anything was scored since the previous one, and waits.
    pub fn finish(
        &mut self,
        state: &FeatureState,
        mark: i64,
        anchor: impl FnOnce() -> Option<String>,
    ) {
        if self.policy.enabled() && self.rows_since > 0 {
            self.start(state, mark, anchor());
        }
        self.wait();
    }

    fn wait(&mut self) {
        if let Some(pending) = self.pending.take() {
            let _ = pending.join();
        }
    }

    /// Writes a checkpoint at `mark`, whose row `anchor` identifies; none when the row cannot
    /// be identified (deleted since it was scored): a restart could never use it, and it
    /// would push a usable one out.
    fn start(&mut self, state: &FeatureState, mark: i64, anchor: Option<String>) {
        let Some(anchor) = anchor else {
            tracing::debug!(mark, "no checkpoint: the row at the mark is gone");
            return;
        };
        let anchor = anchor.as_str();
        let started = Instant::now();
        self.wait();
        let encoding = Instant::now();
        let pending = self.checkpoints.encode(state, mark, anchor);
        let encode_s = encoding.elapsed().as_secs_f64();
        self.last_cost = started.elapsed();
        self.rows_since = 0;
        self.last = Instant::now();
        let pending = match pending {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(
                    mark,
                    error = format!("{error:#}"),
                    "checkpoint not written; scoring goes on and the next one will retry"
                );
                return;
            }
        };
        let checkpoints = self.checkpoints.clone();
        self.pending = Some(std::thread::spawn(move || {
            let synced = Instant::now();
            match checkpoints.commit(&pending) {
                Ok(()) => tracing::info!(
                    mark,
                    bytes = pending.bytes,
                    encode_s,
                    sync_s = synced.elapsed().as_secs_f64(),
                    "checkpoint written"
                ),
                Err(error) => tracing::warn!(
                    mark,
                    error = format!("{error:#}"),
                    "checkpoint not written; scoring goes on and the next one will retry"
                ),
            }
        }));
    }
}
