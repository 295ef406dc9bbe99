//! The feature state as bytes: what the monitor's checkpoints hold.
//!
//! Layout: the magic `AEGISCK6`, the feature-set id, the mark the state corresponds to, the
//! anchor (what identifies the row at the mark in its database: a checkpoint must never be
//! applied to another database, or to one regenerated since), then
//! every field of [`FeatureState`] in declaration order (little-endian integers, floats by their
//! bits, so a restored state is bit-identical), and last a 64-bit checksum of everything before
//! it. The per-beneficiary and per-account records come in blocks of one in-memory chunk, each
//! preceded by its length, so a restore decodes them on every core and keeps each block as a
//! chunk; `AEGISCK2` files (the same without the block lengths) are still read. `AEGISCK3`,
//! `AEGISCK4` and `AEGISCK5` files (before the hour-of-day counts; before each scheme's repeat
//! gaps; before steady amounts) hold older feature sets and are not read: the monitor replays
//! from the database instead. Decoding
//! checks the magic, the feature set, every length against the bytes left, and the checksum:
//! a torn, foreign or corrupt file is refused with the reason, never half-used.

use std::collections::{BTreeMap, VecDeque};

use super::{
    AGENT_PLACES, AccountPayment, AccountState, AgentState, BENEFICIARY_PLACES, BeneficiaryState,
    CHUNK, Chunked, FeatureState, Few, GAP_BANDS, Interner, RecentPayment, SchemeAmount,
    SchemeState, UsualPlace,
};
use smallvec::SmallVec;

const MAGIC: &[u8; 8] = b"AEGISCK6";
/// The layout before the per-beneficiary and per-account records came in blocks: still read
/// (one thread decodes its records), never written.
const MAGIC_UNBLOCKED: &[u8; 8] = b"AEGISCK2";

/// A decoded checkpoint: the state after every row up to `mark` was observed.
#[derive(Debug)]
pub struct Checkpoint {
    pub feature_set: String,
    pub mark: i64,
    /// Identifies the row at `mark` (the monitor uses its insert time and beneficiary).
    pub anchor: String,
    pub state: FeatureState,
}

/// Why a checkpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a checkpoint (bad magic)")]
    NotACheckpoint,
    #[error("checksum mismatch: the file is torn or corrupt")]
    Corrupt,
    #[error("truncated or malformed at byte {0}")]
    Malformed(usize),
    #[error("written for feature set {found}, this build computes {expected}")]
    ForeignFeatureSet { found: String, expected: String },
}

/// A fast 64-bit checksum over 8-byte words (not cryptographic: it catches torn and corrupt
/// files, and a 300 MB state is checked in a fraction of a second). Streaming: feeding the
/// bytes in any pieces gives the same sum as feeding them at once.
#[derive(Debug, Default)]
struct Checksum {
    hash: u64,
    carry: [u8; 8],
    carry_len: usize,
    total: u64,
}

impl Checksum {
    fn new() -> Checksum {
        Checksum {
            hash: 0xcbf2_9ce4_8422_2325,
            ..Checksum::default()
        }
    }

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash ^ word)
            .wrapping_mul(0x0100_0000_01b3)
            .rotate_left(29);
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.carry_len > 0 {
            let take = (8 - self.carry_len).min(bytes.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&bytes[..take]);
            self.carry_len += take;
            bytes = &bytes[take..];
            if self.carry_len < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.carry));
            self.carry_len = 0;
        }
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carry_len = rest.len();
    }

    fn finish(mut self) -> u64 {
        for index in 0..self.carry_len {
            self.hash = (self.hash ^ u64::from(self.carry[index])).wrapping_mul(0x0100_0000_01b3);
        }
        let total = self.total;
        self.mix(total);
        self.hash ^ (self.hash >> 31)
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut sum = Checksum::new();
    sum.feed(bytes);
    sum.finish()
}

/// Writes the encoding to `out` in 64 KiB pieces, summing as it goes. The first I/O error is
/// kept and reported at the end, so the field-by-field code stays free of `?`.
struct Writer<W: std::io::Write> {
    out: W,
    bytes: Vec<u8>,
    sum: Checksum,
    written: u64,
    error: Option<std::io::Error>,
    /// Records in blocks ([`MAGIC`]); `false` writes the earlier layout, for tests that it
    /// still reads.
    blocked: bool,
}

const PIECE: usize = 64 * 1024;

impl<W: std::io::Write> Writer<W> {
    fn flush_piece(&mut self) {
        self.sum.feed(&self.bytes);
        self.written += self.bytes.len() as u64;
        if self.error.is_none()
            && let Err(error) = self.out.write_all(&self.bytes)
        {
            self.error = Some(error);
        }
        self.bytes.clear();
    }

    fn maybe_flush(&mut self) {
        if self.bytes.len() >= PIECE {
            self.flush_piece();
        }
    }

    /// Flushes, appends the checksum, and returns the bytes written.
    fn finish(mut self) -> std::io::Result<u64> {
        self.flush_piece();
        let sum = std::mem::take(&mut self.sum).finish();
        if let Some(error) = self.error {
            return Err(error);
        }
        self.out.write_all(&sum.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.written + 8)
    }

    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }
    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    fn i64(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    fn f64(&mut self, value: f64) {
        self.u64(value.to_bits());
    }
    fn len(&mut self, len: usize) {
        self.u32(u32::try_from(len).expect("fewer than 2^32 entries"));
    }
    fn str(&mut self, text: &str) {
        self.len(text.len());
        self.bytes.extend_from_slice(text.as_bytes());
        self.maybe_flush();
    }
    fn opt_i64(&mut self, value: Option<i64>) {
        match value {
            None => self.u8(0),
            Some(value) => {
                self.u8(1);
                self.i64(value);
            }
        }
    }
    fn u32s(&mut self, values: &[u32]) {
        self.len(values.len());
        for &value in values {
            self.u32(value);
        }
    }
    /// A usual place of `keep` places, in the layout of its first version: the places
    /// collected, the median, and how many places were added.
    fn place(&mut self, place: &UsualPlace, keep: usize) {
        self.len(place.collected().len());
        for &(lat, lon) in place.collected() {
            self.f64(lat);
            self.f64(lon);
        }
        match place.median() {
            None => self.u8(0),
            Some((lat, lon)) => {
                self.u8(1);
                self.f64(lat);
                self.f64(lon);
            }
        }
        self.u8(u8::try_from(place.seen(keep)).expect("a usual place keeps under 256 places"));
    }
    /// Writes the records of `chunked` in blocks of one chunk, each preceded by its length in
    /// bytes, so a restore can decode the blocks on several threads and keep each as a chunk.
    fn blocks<T>(&mut self, chunked: &Chunked<T>, write: impl Fn(&mut Self, &T)) {
        self.len(chunked.len());
        for chunk in &chunked.chunks {
            if !self.blocked {
                for record in chunk {
                    write(self, record);
                    self.maybe_flush();
                }
                continue;
            }
            let at = self.bytes.len();
            self.u64(0);
            for record in chunk {
                write(self, record);
            }
            let size = (self.bytes.len() - at - 8) as u64;
            self.bytes[at..at + 8].copy_from_slice(&size.to_le_bytes());
            self.maybe_flush();
        }
    }
    fn interner(&mut self, interner: &Interner) {
        self.len(interner.len());
        for id in 0..interner.len() {
            self.str(interner.text(id as u32));
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

type Read<T> = Result<T, CheckpointError>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(CheckpointError::Malformed(self.at))?;
        let bytes: &'a [u8] = self.bytes;
        let slice = &bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Read<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Read<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Read<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn u32_array<const N: usize>(&mut self) -> Read<[u32; N]> {
        let mut values = [0u32; N];
        for value in &mut values {
            *value = self.u32()?;
        }
        Ok(values)
    }
    fn i64(&mut self) -> Read<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn f64(&mut self) -> Read<f64> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn bool(&mut self) -> Read<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CheckpointError::Malformed(self.at - 1)),
        }
    }
    /// A length, checked against the bytes left (each entry takes at least `min_entry` bytes),
    /// so a corrupt length cannot make the reader allocate gigabytes.
    fn len(&mut self, min_entry: usize) -> Read<usize> {
        let len = self.u32()? as usize;
        if len.saturating_mul(min_entry.max(1)) > self.bytes.len() - self.at {
            return Err(CheckpointError::Malformed(self.at - 4));
        }
        Ok(len)
    }
    fn str(&mut self) -> Read<String> {
        let len = self.len(1)?;
        let at = self.at;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| CheckpointError::Malformed(at))
    }
    fn opt_i64(&mut self) -> Read<Option<i64>> {
        Ok(if self.bool()? {
            Some(self.i64()?)
        } else {
            None
        })
    }
    fn u32s<C: FromIterator<u32>>(&mut self) -> Read<C> {
        let len = self.len(4)?;
        (0..len).map(|_| self.u32()).collect()
    }
    /// A usual place of `keep` places written by [`Writer::place`]. The median of a place
    /// still collecting is computed again from its places.
    fn place(&mut self, keep: usize) -> Read<UsualPlace> {
        let len = self.len(16)?;
        let points: SmallVec<[(f64, f64); 16]> = (0..len)
            .map(|_| Ok((self.f64()?, self.f64()?)))
            .collect::<Read<_>>()?;
        let median = if self.bool()? {
            Some((self.f64()?, self.f64()?))
        } else {
            None
        };
        let at = self.at;
        let seen = usize::from(self.u8()?);
        if seen >= keep {
            let median = median.ok_or(CheckpointError::Malformed(at))?;
            Ok(UsualPlace::Fixed(median))
        } else if seen == points.len() {
            Ok(UsualPlace::Collecting(Few::from(&points[..])))
        } else {
            Err(CheckpointError::Malformed(at))
        }
    }
    /// Steps over records written by [`Writer::blocks`], returning their count and each
    /// block's bytes to decode later (on several threads).
    fn blocks(&mut self) -> Read<Blocks<'a>> {
        let records = self.len(1)?;
        let blocks = (0..records.div_ceil(CHUNK))
            .map(|_| {
                let at = self.at;
                let size =
                    usize::try_from(self.u64()?).map_err(|_| CheckpointError::Malformed(at))?;
                self.take(size)
            })
            .collect::<Read<Vec<_>>>()?;
        Ok(Blocks { records, blocks })
    }
    /// Steps over an interner, returning its bytes to decode later (on another thread: building
    /// the hash maps of a million ids is half of a restore).
    fn interner_section(&mut self) -> Read<&'a [u8]> {
        let start = self.at;
        let len = self.len(4)?;
        for _ in 0..len {
            let text = self.len(1)?;
            self.take(text)?;
        }
        let bytes: &'a [u8] = self.bytes;
        Ok(&bytes[start..self.at])
    }

    fn interner(&mut self) -> Read<Interner> {
        let len = self.len(4)?;
        let mut interner = Interner::default();
        interner.reserve(len, self.bytes.len() - self.at);
        interner.extend_new((0..len).map(|_| {
            let size = self.len(1)?;
            let at = self.at;
            std::str::from_utf8(self.take(size)?).map_err(|_| CheckpointError::Malformed(at))
        }))?;
        Ok(interner)
    }
}

impl FeatureState {
    /// The state as checkpoint bytes, for `mark` (whose row `anchor` identifies) under feature
    /// set `feature_set`.
    pub fn encode(&self, feature_set: &str, mark: i64, anchor: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.encode_to(&mut bytes, feature_set, mark, anchor)
            .expect("writing to memory cannot fail");
        bytes
    }

    /// Streams the checkpoint bytes to `out` (no copy of the state is held in memory) and
    /// returns how many were written.
    pub fn encode_to(
        &self,
        out: impl std::io::Write,
        feature_set: &str,
        mark: i64,
        anchor: &str,
    ) -> std::io::Result<u64> {
        self.encode_layout(out, feature_set, mark, anchor, true)
    }

    fn encode_layout(
        &self,
        out: impl std::io::Write,
        feature_set: &str,
        mark: i64,
        anchor: &str,
        blocked: bool,
    ) -> std::io::Result<u64> {
        let mut w = Writer {
            out,
            bytes: Vec::with_capacity(PIECE + 1024),
            sum: Checksum::new(),
            written: 0,
            error: None,
            blocked,
        };
        w.bytes
            .extend_from_slice(if blocked { MAGIC } else { MAGIC_UNBLOCKED });
        w.str(feature_set);
        w.i64(mark);
        w.str(anchor);
        w.u64(self.observed);
        for &count in &self.hours {
            w.u64(count);
        }
        for &count in &self.counters_at_hour {
            w.u32(count);
        }
        w.interner(&self.beneficiary_ids);
        w.interner(&self.account_ids);
        w.interner(&self.agent_ids);
        w.interner(&self.scheme_ids);
        w.blocks(&self.beneficiaries, write_beneficiary);
        w.blocks(&self.accounts, |w, a| {
            w.len(a.recent.len());
            for entry in &a.recent {
                w.i64(entry.time);
                w.u32(entry.beneficiary);
            }
        });
        w.len(self.agents.len());
        for a in &self.agents {
            w.maybe_flush();
            w.len(a.recent.len());
            for &(time, beneficiary, first) in &a.recent {
                w.i64(time);
                w.u32(beneficiary);
                w.u8(u8::from(first));
            }
            w.u64(a.total);
            for &count in &a.hours {
                w.u32(count);
            }
            w.u64(a.first_visit_total);
            for times in [&a.window_payments, &a.window_first_visits] {
                w.len(times.len());
                for &time in times {
                    w.i64(time);
                }
            }
            w.opt_i64(a.first_time);
            w.i64(a.last_time);
            w.place(&a.place, AGENT_PLACES);
        }
        w.len(self.schemes.len());
        for s in &self.schemes {
            w.maybe_flush();
            w.len(s.buckets.len());
            for (&bucket, &count) in &s.buckets {
                w.u32(bucket as u32);
                w.u32(count);
            }
            w.u32(s.count);
            w.opt_i64(s.cached_median);
            w.u32(s.cached_at);
            for &count in s.gaps.iter().chain(&s.same_amount_gaps) {
                w.u32(count);
            }
            w.u32(s.steady_repeats);
            w.u32(s.steady_changes);
        }
        w.finish()
    }

    /// Reads checkpoint bytes written by [`encode`](Self::encode) for `feature_set`.
    pub fn decode(bytes: &[u8], feature_set: &str) -> Result<Checkpoint, CheckpointError> {
        let magic = bytes.get(..MAGIC.len());
        let blocked = magic == Some(MAGIC);
        if bytes.len() < MAGIC.len() + 8 || !(blocked || magic == Some(MAGIC_UNBLOCKED)) {
            return Err(CheckpointError::NotACheckpoint);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if checksum(body) != u64::from_le_bytes(sum.try_into().expect("8")) {
            return Err(CheckpointError::Corrupt);
        }
        let mut r = Reader {
            bytes: body,
            at: MAGIC.len(),
        };
        let found = r.str()?;
        if found != feature_set {
            return Err(CheckpointError::ForeignFeatureSet {
                found,
                expected: feature_set.to_string(),
            });
        }
        let mark = r.i64()?;
        let anchor = r.str()?;
        let observed = r.u64()?;
        let mut hours = [0u64; 24];
        for count in &mut hours {
            *count = r.u64()?;
        }
        let mut counters_at_hour = [0u32; 24];
        for count in &mut counters_at_hour {
            *count = r.u32()?;
        }
        let sections = [
            r.interner_section()?,
            r.interner_section()?,
            r.interner_section()?,
            r.interner_section()?,
        ];
        let (beneficiaries, accounts) = if blocked {
            (Records::Blocks(r.blocks()?), Records::Blocks(r.blocks()?))
        } else {
            let beneficiaries = (0..r.len(16)?)
                .map(|_| read_beneficiary(&mut r))
                .collect::<Read<Chunked<_>>>()?;
            let accounts = (0..r.len(4)?)
                .map(|_| read_account(&mut r))
                .collect::<Read<Chunked<_>>>()?;
            (Records::Read(beneficiaries), Records::Read(accounts))
        };
        let (agents, schemes) = Self::decode_agents_and_schemes(&mut r)?;
        if r.at != body.len() {
            return Err(CheckpointError::Malformed(r.at));
        }
        let agent_ids = interner_at(sections[2])?;
        let scheme_ids = interner_at(sections[3])?;
        let restored = restore_in_parallel(sections[0], sections[1], beneficiaries, accounts)?;
        let (beneficiary_ids, account_ids, beneficiaries, accounts) = restored;
        let consistent = beneficiaries.len() == beneficiary_ids.len()
            && accounts.len() == account_ids.len()
            && agents.len() == agent_ids.len()
            && schemes.len() == scheme_ids.len();
        if !consistent {
            return Err(CheckpointError::Malformed(r.at));
        }
        Ok(Checkpoint {
            feature_set: found,
            mark,
            anchor,
            state: FeatureState {
                beneficiary_ids,
                account_ids,
                agent_ids,
                scheme_ids,
                beneficiaries,
                accounts,
                agents,
                schemes,
                observed,
                hours,
                counters_at_hour,
                scratch: Vec::new(),
            },
        })
    }

    /// The agent and scheme states, after the beneficiaries' and accounts'.
    fn decode_agents_and_schemes(r: &mut Reader<'_>) -> Read<(Vec<AgentState>, Vec<SchemeState>)> {
        let agents = (0..r.len(30 + 24 * 4 + 8 + 16)?)
            .map(|_| {
                Ok(AgentState {
                    recent: (0..r.len(13)?)
                        .map(|_| Ok((r.i64()?, r.u32()?, r.bool()?)))
                        .collect::<Read<VecDeque<_>>>()?,
                    total: r.u64()?,
                    hours: {
                        let mut hours = [0u32; 24];
                        for count in &mut hours {
                            *count = r.u32()?;
                        }
                        hours
                    },
                    first_visit_total: r.u64()?,
                    window_payments: (0..r.len(8)?)
                        .map(|_| r.i64())
                        .collect::<Read<VecDeque<_>>>()?,
                    window_first_visits: (0..r.len(8)?)
                        .map(|_| r.i64())
                        .collect::<Read<VecDeque<_>>>()?,
                    first_time: r.opt_i64()?,
                    last_time: r.i64()?,
                    place: r.place(AGENT_PLACES)?,
                })
            })
            .collect::<Read<Vec<_>>>()?;
        let schemes = (0..r.len(21 + 8 * GAP_BANDS)?)
            .map(|_| {
                let buckets = (0..r.len(8)?)
                    .map(|_| Ok((r.u32()? as i32, r.u32()?)))
                    .collect::<Read<BTreeMap<_, _>>>()?;
                Ok(SchemeState {
                    buckets,
                    count: r.u32()?,
                    cached_median: r.opt_i64()?,
                    cached_at: r.u32()?,
                    gaps: r.u32_array()?,
                    same_amount_gaps: r.u32_array()?,
                    steady_repeats: r.u32()?,
                    steady_changes: r.u32()?,
                })
            })
            .collect::<Read<Vec<_>>>()?;
        Ok((agents, schemes))
    }
}

fn write_beneficiary<W: std::io::Write>(w: &mut Writer<W>, b: &BeneficiaryState) {
    w.len(b.recent.len());
    for r in &b.recent {
        w.i64(r.time);
        w.u32(r.scheme);
        w.i64(r.amount_paise);
    }
    w.opt_i64(b.last_time());
    w.place(&b.place, BENEFICIARY_PLACES);
    w.u32s(&b.accounts);
    w.u32s(&b.agents);
    w.len(b.scheme_amounts.len());
    for amount in b.scheme_amounts.iter() {
        w.u32(amount.scheme());
        w.i64(amount.sum_paise);
        w.i64(amount.last_time());
        // The count, with whether the amounts varied in the top bit (a count has 16).
        w.u32(amount.count() | u32::from(amount.varied()) << 31);
    }
}

fn read_beneficiary(r: &mut Reader<'_>) -> Read<BeneficiaryState> {
    let recent = (0..r.len(20)?)
        .map(|_| {
            Ok(RecentPayment {
                time: r.i64()?,
                scheme: r.u32()?,
                amount_paise: r.i64()?,
            })
        })
        .collect::<Read<_>>()?;
    let at = r.at;
    let last_time = r.opt_i64()?;
    let beneficiary = BeneficiaryState {
        recent,
        place: r.place(BENEFICIARY_PLACES)?,
        accounts: r.u32s()?,
        agents: r.u32s()?,
        scheme_amounts: (0..r.len(24)?)
            .map(|_| {
                let at = r.at;
                let (scheme, sum_paise, last_time, count) =
                    (r.u32()?, r.i64()?, r.i64()?, r.u32()?);
                let varied = count >> 31 == 1;
                SchemeAmount::new(scheme, sum_paise, last_time, count & !(1 << 31), varied)
                    .ok_or(CheckpointError::Malformed(at))
            })
            .collect::<Read<_>>()?,
    };
    // Kept in the file for its layout; the state reads it from the queue.
    if beneficiary.last_time() != last_time {
        return Err(CheckpointError::Malformed(at));
    }
    Ok(beneficiary)
}

fn read_account(r: &mut Reader<'_>) -> Read<AccountState> {
    Ok(AccountState {
        recent: (0..r.len(12)?)
            .map(|_| {
                Ok(AccountPayment {
                    time: r.i64()?,
                    beneficiary: r.u32()?,
                })
            })
            .collect::<Read<_>>()?,
    })
}

/// An interner from its section of the checkpoint.
fn interner_at(section: &[u8]) -> Read<Interner> {
    let mut reader = Reader {
        bytes: section,
        at: 0,
    };
    let interner = reader.interner()?;
    if reader.at != section.len() {
        return Err(CheckpointError::Malformed(reader.at));
    }
    Ok(interner)
}

/// Per-beneficiary or per-account records: blocks still to decode, or (from the unblocked
/// layout) already read.
enum Records<'a, T> {
    Blocks(Blocks<'a>),
    Read(Chunked<T>),
}

/// The records' count and each block's bytes (every block holds one chunk of records).
struct Blocks<'a> {
    records: usize,
    blocks: Vec<&'a [u8]>,
}

impl<'a, T> Records<'a, T> {
    /// The blocks still to decode.
    fn blocks(&self) -> &[&'a [u8]] {
        match self {
            Records::Blocks(blocks) => &blocks.blocks,
            Records::Read(_) => &[],
        }
    }

    /// How many records block `i` holds: a full chunk, but for the last.
    fn records_in(&self, i: usize) -> usize {
        match self {
            Records::Blocks(Blocks { records, blocks }) if i + 1 == blocks.len() => {
                records - CHUNK * i
            }
            _ => CHUNK,
        }
    }

    /// The records, from the chunks decoded into `slots`.
    fn assemble(self, slots: Vec<std::sync::OnceLock<Read<Vec<T>>>>) -> Read<Chunked<T>> {
        match self {
            Records::Read(chunked) => Ok(chunked),
            Records::Blocks(blocks) => Ok(Chunked {
                chunks: slots
                    .into_iter()
                    .map(|slot| {
                        slot.into_inner()
                            .unwrap_or(Err(CheckpointError::Malformed(0)))
                    })
                    .collect::<Read<Vec<_>>>()?,
                len: blocks.records,
            }),
        }
    }
}

/// Decodes one block of `records` records into one chunk.
fn decode_block<T>(
    bytes: &[u8],
    records: usize,
    read: impl Fn(&mut Reader<'_>) -> Read<T>,
) -> Read<Vec<T>> {
    let mut r = Reader { bytes, at: 0 };
    let mut chunk = Vec::with_capacity(CHUNK);
    for _ in 0..records {
        chunk.push(read(&mut r)?);
    }
    if r.at != bytes.len() {
        return Err(CheckpointError::Malformed(r.at));
    }
    Ok(chunk)
}

/// What a restore builds on several threads: the two big interners and the blocks of
/// beneficiary and account records, taken in that order from one queue by every core (a
/// restore is the monitor's whole start, and on two cores one thread left half the machine
/// idle).
#[allow(clippy::type_complexity)]
fn restore_in_parallel<'a>(
    beneficiary_ids: &'a [u8],
    account_ids: &'a [u8],
    beneficiaries: Records<'a, BeneficiaryState>,
    accounts: Records<'a, AccountState>,
) -> Read<(
    Interner,
    Interner,
    Chunked<BeneficiaryState>,
    Chunked<AccountState>,
)> {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (beneficiary_blocks, account_blocks) = (beneficiaries.blocks(), accounts.blocks());
    let ids: [OnceLock<Read<Interner>>; 2] = [OnceLock::new(), OnceLock::new()];
    let beneficiary_chunks: Vec<OnceLock<Read<Vec<BeneficiaryState>>>> =
        beneficiary_blocks.iter().map(|_| OnceLock::new()).collect();
    let account_chunks: Vec<OnceLock<Read<Vec<AccountState>>>> =
        account_blocks.iter().map(|_| OnceLock::new()).collect();
    let jobs = 2 + beneficiary_blocks.len() + account_blocks.len();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let job = next.fetch_add(1, Ordering::Relaxed);
            if job >= jobs {
                return;
            }
            if job < 2 {
                let _ = ids[job].set(interner_at([beneficiary_ids, account_ids][job]));
                continue;
            }
            let block = job - 2;
            if block < beneficiary_blocks.len() {
                let records = beneficiaries.records_in(block);
                let chunk = decode_block(beneficiary_blocks[block], records, read_beneficiary);
                let _ = beneficiary_chunks[block].set(chunk);
            } else {
                let block = block - beneficiary_blocks.len();
                let records = accounts.records_in(block);
                let chunk = decode_block(account_blocks[block], records, read_account);
                let _ = account_chunks[block].set(chunk);
            }
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
    let taken = |slot: OnceLock<Read<Interner>>| {
        slot.into_inner()
            .unwrap_or(Err(CheckpointError::Malformed(0)))
    };
    let [beneficiary_slot, account_slot] = ids;
    Ok((
        taken(beneficiary_slot)?,
        taken(account_slot)?,
        beneficiaries.assemble(beneficiary_chunks)?,
        accounts.assemble(account_chunks)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::state::tests::sample_stream;

    #[test]
    fn a_restored_state_goes_on_exactly_as_the_one_that_never_stopped() {
        let stream = sample_stream();
        for cut in [0, 1, stream.len() / 2, stream.len() - 1, stream.len()] {
            let mut whole = FeatureState::new();
            let expected: Vec<_> = stream.iter().map(|p| whole.observe(p)).collect();
            let mut first = FeatureState::new();
            for p in &stream[..cut] {
                first.warm(p);
            }
            let bytes = first.encode("r3-test", cut as i64, "anchor");
            let restored = FeatureState::decode(&bytes, "r3-test").unwrap();
            assert_eq!(
                (restored.mark, restored.anchor.as_str()),
                (cut as i64, "anchor")
            );
            let mut state = restored.state;
            assert_eq!(state.observed(), cut as u64);
            for (p, expected) in stream[cut..].iter().zip(&expected[cut..]) {
                let got = state.observe(p);
                let bits = |f: &[f32]| f.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got.values), bits(&expected.values), "cut at {cut}");
                assert_eq!(got.context, expected.context, "cut at {cut}");
            }
            // And the restored state encodes to the same bytes as the uninterrupted one.
            assert_eq!(
                state.encode("r3-test", 9, ""),
                whole.encode("r3-test", 9, "")
            );
        }
    }

    #[test]
    fn the_checksum_does_not_depend_on_how_the_bytes_are_cut() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = checksum(&bytes);
        for piece in [1, 3, 8, 13, 999] {
            let mut sum = Checksum::new();
            for chunk in bytes.chunks(piece) {
                sum.feed(chunk);
            }
            assert_eq!(sum.finish(), whole, "pieces of {piece}");
        }
        assert_ne!(checksum(&bytes[..999]), whole);
    }

    /// Payments to `people` distinct beneficiaries (every seventh pair sharing an account),
    /// over a few days.
    fn many_people(people: usize) -> Vec<crate::domain::Payment> {
        use crate::features::state::tests::payment;
        (0..people)
            .map(|i| {
                let when = format!("2025-03-0{} {:02}:{:02}:00", 1 + i % 5, i % 24, i % 60);
                let account = format!("A{}", i - i % 7 * usize::from(i % 7 == 1));
                payment(
                    &format!("B{i}"),
                    &account,
                    &format!("G{}", i % 97),
                    100_000,
                    &when,
                )
            })
            .collect()
    }

    #[test]
    fn a_state_of_several_chunks_restores_on_several_threads_as_it_was() {
        let stream = many_people(2 * CHUNK + 1_000);
        let cut = stream.len() - 50;
        let mut whole = FeatureState::new();
        let expected: Vec<_> = stream.iter().map(|p| whole.observe(p)).collect();
        let mut first = FeatureState::new();
        for p in &stream[..cut] {
            first.warm(p);
        }
        let bytes = first.encode("r3-test", 1, "");
        let mut state = FeatureState::decode(&bytes, "r3-test").unwrap().state;
        assert_eq!(state.beneficiary_count(), cut);
        assert_eq!(state.encode("r3-test", 1, ""), bytes);
        for (p, expected) in stream[cut..].iter().zip(&expected[cut..]) {
            assert_eq!(state.observe(p), *expected);
        }
    }

    #[test]
    fn a_checkpoint_in_the_layout_before_blocks_still_restores() {
        let mut state = FeatureState::new();
        for p in many_people(CHUNK + 10).iter().chain(&sample_stream()) {
            state.warm(p);
        }
        let mut unblocked = Vec::new();
        state
            .encode_layout(&mut unblocked, "r3-test", 5, "5:B1", false)
            .unwrap();
        assert_eq!(&unblocked[..8], MAGIC_UNBLOCKED);
        let restored = FeatureState::decode(&unblocked, "r3-test").unwrap();
        assert_eq!((restored.mark, restored.anchor.as_str()), (5, "5:B1"));
        assert_eq!(
            restored.state.encode("r3-test", 5, "5:B1"),
            state.encode("r3-test", 5, "5:B1")
        );
    }

    #[test]
    fn torn_corrupt_and_foreign_checkpoints_are_refused() {
        let mut state = FeatureState::new();
        for p in &sample_stream() {
            state.warm(p);
        }
        let bytes = state.encode("r3-test", 42, "1:B1");
        assert!(matches!(
            FeatureState::decode(&bytes, "r4-other"),
            Err(CheckpointError::ForeignFeatureSet { .. })
        ));
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                FeatureState::decode(&bytes[..cut], "r3-test").is_err(),
                "torn at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 3] ^= 0x10;
        assert_eq!(
            FeatureState::decode(&flipped, "r3-test").unwrap_err(),
            CheckpointError::Corrupt
        );
        assert_eq!(
            FeatureState::decode(b"hello world, not a state", "r3-test").unwrap_err(),
            CheckpointError::NotACheckpoint
        );
    }
}
