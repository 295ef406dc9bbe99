//! The history every feature is computed from: one causal implementation shared by train
//! (replaying history in event-time order) and monitor (one transaction at a time, state kept
//! warm).
//!
//! [`FeatureState::observe`] computes a payment's features from the state built by the payments
//! observed before it, then adds the payment to that state. Nothing a later payment does can
//! change an earlier payment's features, and replaying the same stream always gives the same
//! numbers, bit for bit, whichever program does it.
//!
//! Columns an import lacks give neutral values: no location → distance 0, no account → the
//! account features 0, no agent → the agent features 0.

use std::collections::VecDeque;

use std::num::NonZeroU16;

use smallvec::SmallVec;

#[path = "codec.rs"]
mod codec;
pub use codec::{Checkpoint, CheckpointError};

use crate::domain::Payment;
use crate::features::catalogue::{
    FEATURE_COUNT, FIRST_VISIT_WINDOW, Feature, FeatureContext, HISTORY_WINDOW, MAX_GAP_HOURS,
    steady_change,
};
use crate::features::per_row::{PER_ROW_COUNT, per_row_values};
use crate::geo::haversine_km;
use crate::time::{DAY, EventTime, HOUR, ist_seconds_of_day, ist_weekday};

/// An hour with at least this share of a counter's payments is one it works in, for its usual
/// pace: one stray night payment does not spread the day's payments over another hour.
const WORKED_HOUR_SHARE: f64 = 0.02;

/// A payment's feature vector and the raw numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub values: [f32; FEATURE_COUNT],
    /// What the payment alone says, for the per-row detector.
    pub per_row: [f32; PER_ROW_COUNT],
    /// How rarely this scheme's steady payments change, when this one changes a beneficiary's
    /// steady amount ([`steady_change`]); 0 otherwise. Judged beside the features (by the
    /// rarity detector), not an input of the autoencoder.
    pub steady_change: f32,
    pub context: FeatureContext,
}

/// Packed to 20 bytes: a beneficiary paid twice in the window spills its queue to the heap, and
/// two 24-byte entries took a 64-byte allocation where two of these take 48. Fields are read by
/// value (a reference into a packed struct does not compile).
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct RecentPayment {
    time: EventTime,
    scheme: u32,
    amount_paise: i64,
}

/// Per beneficiary. Kept small, because a state's department pays tens of millions of them:
/// most have one or two accounts, counters and schemes, which live inline (no allocation).
#[derive(Debug, Default)]
struct BeneficiaryState {
    /// Payments within the history window, oldest first. Inline when there is one (most
    /// beneficiaries of a monthly scheme): a heap queue cost about 110 bytes each.
    /// The newest payment ever observed is always here (see [`last_time`](Self::last_time)).
    recent: Few<RecentPayment>,
    place: UsualPlace,
    accounts: IdSet,
    agents: IdSet,
    /// Per scheme: (sum of amounts in paise, count), for the beneficiary's own typical amount.
    scheme_amounts: SchemeAmounts,
}

/// A few distinct ids (a beneficiary's accounts or counters) in the order first seen: up to
/// three inline in 16 bytes, more on the heap. A `SmallVec<[u32; 2]>` took 24.
#[derive(Debug, Clone, PartialEq)]
enum IdSet {
    Inline {
        len: u8,
        ids: [u32; 3],
    },
    /// Boxed: a bare `Vec` (24 bytes) would make every set 32.
    #[allow(clippy::box_collection)]
    Heap(Box<Vec<u32>>),
}

impl Default for IdSet {
    fn default() -> Self {
        IdSet::Inline {
            len: 0,
            ids: [0; 3],
        }
    }
}

impl std::ops::Deref for IdSet {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        match self {
            IdSet::Inline { len, ids } => &ids[..usize::from(*len)],
            IdSet::Heap(ids) => ids,
        }
    }
}

impl IdSet {
    /// Adds `id` unless it is already there.
    fn insert(&mut self, id: u32) {
        if self.contains(&id) {
            return;
        }
        match self {
            IdSet::Inline { len, ids } if usize::from(*len) < ids.len() => {
                ids[usize::from(*len)] = id;
                *len += 1;
            }
            IdSet::Inline { ids, .. } => {
                let mut all = Vec::with_capacity(ids.len() * 2);
                all.extend_from_slice(ids);
                all.push(id);
                *self = IdSet::Heap(Box::new(all));
            }
            IdSet::Heap(ids) => ids.push(id),
        }
    }
}

impl FromIterator<u32> for IdSet {
    fn from_iter<I: IntoIterator<Item = u32>>(ids: I) -> Self {
        let mut set = IdSet::default();
        for id in ids {
            set.insert(id);
        }
        set
    }
}

// What one beneficiary costs before any heap allocation: kept from growing by accident.
const _: () = assert!(std::mem::size_of::<BeneficiaryState>() <= 96);
const _: () = assert!(std::mem::size_of::<SchemeAmount>() == 16);
const _: () = assert!(std::mem::size_of::<SchemeAmounts>() == 16);
const _: () = assert!(std::mem::size_of::<UsualPlace>() == 24);
const _: () = assert!(std::mem::size_of::<Few<RecentPayment>>() == 24);
const _: () = assert!(std::mem::size_of::<IdSet>() == 16);

impl BeneficiaryState {
    /// When the beneficiary was last paid (the newest event time observed), `None` before the
    /// first payment. Read from the queue, not kept (8 bytes for every beneficiary): the newest
    /// payment never leaves it, because an entry is dropped only when a payment at least the
    /// window newer arrives, and that payment is then the newest.
    fn last_time(&self) -> Option<EventTime> {
        self.recent.iter().map(|recent| recent.time).max()
    }

    /// When, within the history window before `time`, this beneficiary was last paid
    /// `amount_paise` in `scheme`.
    fn last_same_amount(
        &self,
        scheme: u32,
        amount_paise: i64,
        time: EventTime,
    ) -> Option<EventTime> {
        self.recent
            .iter()
            .filter(|recent| {
                recent.scheme == scheme
                    && recent.amount_paise == amount_paise
                    && (0..HISTORY_WINDOW).contains(&(time - recent.time))
            })
            .map(|recent| recent.time)
            .max()
    }
}

/// A beneficiary's total and count of payments in one scheme, and when they were last paid in
/// it (kept beyond the history window: a PM-KISAN instalment comes every four months).
///
/// Whether every payment so far was the same amount is kept too: a pension paid the same every
/// month that changes once is rare where a wage that changes every week is not.
///
/// 16 bytes, as many as before the last time was kept (measured: 8 more cost 15 bytes a
/// beneficiary): the time in seconds from [`TIME_BASE`] in 32 bits (exact from 2000 to 2136),
/// the scheme in 15 bits with [`VARIED`] beside it, and the count in 16. A deployment with
/// more than 32,768 scheme names keeps no own amounts or last times for the ones beyond (their
/// payments read as a beneficiary's first in the scheme), and a mean stops moving after 65,535
/// payments of one scheme to one person.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SchemeAmount {
    sum_paise: i64,
    last_time: u32,
    /// The scheme id, and [`VARIED`].
    scheme_bits: u16,
    /// Never zero, which lets [`SchemeAmounts`] tell its two forms apart without a tag.
    count: NonZeroU16,
}

/// The bit of [`SchemeAmount::scheme_bits`] set once the beneficiary was paid two different
/// amounts in the scheme.
const VARIED: u16 = 0x8000;

/// A scheme id as [`SchemeAmount`] keeps it beside [`VARIED`]; `None` beyond 15 bits.
fn compact_scheme(scheme: u32) -> Option<u16> {
    u16::try_from(scheme).ok().filter(|&id| id & VARIED == 0)
}

/// Where [`SchemeAmount`]'s 32-bit times count from: 2000-01-01 00:00 UTC.
const TIME_BASE: EventTime = 946_684_800;

impl SchemeAmount {
    /// An entry from its full-width parts; `None` when they do not fit (a scheme id beyond 15
    /// bits, a count of zero or beyond 16 bits, a time outside 2000–2136).
    fn new(
        scheme: u32,
        sum_paise: i64,
        last_time: EventTime,
        count: u32,
        varied: bool,
    ) -> Option<Self> {
        let scheme = compact_scheme(scheme)?;
        Some(SchemeAmount {
            sum_paise,
            last_time: u32::try_from(last_time.checked_sub(TIME_BASE)?).ok()?,
            scheme_bits: if varied { scheme | VARIED } else { scheme },
            count: NonZeroU16::new(u16::try_from(count).ok()?)?,
        })
    }

    fn scheme(&self) -> u32 {
        u32::from(self.scheme_bits & !VARIED)
    }

    /// Whether two different amounts were paid.
    fn varied(&self) -> bool {
        self.scheme_bits & VARIED != 0
    }

    /// The one amount paid every time, once paid at least twice.
    fn steady(&self) -> Option<i64> {
        (!self.varied() && self.count() >= 2).then(|| self.sum_paise / i64::from(self.count.get()))
    }

    fn last_time(&self) -> EventTime {
        TIME_BASE + EventTime::from(self.last_time)
    }

    fn count(&self) -> u32 {
        u32::from(self.count.get())
    }
}

/// A time as [`SchemeAmount`] keeps it, clamped to the 32 bits from [`TIME_BASE`].
fn compact_time(time: EventTime) -> u32 {
    u32::try_from((time - TIME_BASE).clamp(0, EventTime::from(u32::MAX))).expect("clamped")
}

/// A beneficiary's amounts per scheme: 16 bytes for the usual one scheme (the zero a count
/// never holds marks the other form), a boxed vector for several or, briefly, none.
#[derive(Debug, Clone, PartialEq)]
enum SchemeAmounts {
    One(SchemeAmount),
    /// Boxed: a bare `Vec` (24 bytes) would make every beneficiary's amounts 24.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<SchemeAmount>>),
}

impl Default for SchemeAmounts {
    fn default() -> Self {
        SchemeAmounts::Many(Box::default())
    }
}

impl std::ops::Deref for SchemeAmounts {
    type Target = [SchemeAmount];

    fn deref(&self) -> &[SchemeAmount] {
        match self {
            SchemeAmounts::One(amount) => std::slice::from_ref(amount),
            SchemeAmounts::Many(amounts) => amounts,
        }
    }
}

impl FromIterator<SchemeAmount> for SchemeAmounts {
    fn from_iter<I: IntoIterator<Item = SchemeAmount>>(amounts: I) -> Self {
        // Collected inline first: a heap vector freed for each of a million beneficiaries
        // restored from a checkpoint cost 10 % of the restore in glibc's consolidation.
        let amounts: SmallVec<[SchemeAmount; 2]> = amounts.into_iter().collect();
        match amounts[..] {
            [one] => SchemeAmounts::One(one),
            _ => SchemeAmounts::Many(Box::new(amounts.into_vec())),
        }
    }
}

impl SchemeAmounts {
    /// The beneficiary's own typical amount in `scheme`: the mean of their payments in it.
    fn typical(&self, scheme: u32) -> Option<i64> {
        self.iter()
            .find(|amount| amount.scheme() == scheme)
            .map(|amount| amount.sum_paise / i64::from(amount.count.get()))
    }

    /// The amount the beneficiary was paid every time in `scheme`, and how many times, once
    /// at least twice and never another amount.
    fn steady(&self, scheme: u32) -> Option<(i64, u32)> {
        let amount = self.iter().find(|amount| amount.scheme() == scheme)?;
        Some((amount.steady()?, amount.count()))
    }

    /// When the beneficiary was last paid in `scheme` (the newest event time).
    fn last_time(&self, scheme: u32) -> Option<EventTime> {
        self.iter()
            .find(|amount| amount.scheme() == scheme)
            .map(SchemeAmount::last_time)
    }

    fn add(&mut self, scheme: u32, amount_paise: i64, time: EventTime) {
        let amounts: &mut [SchemeAmount] = match self {
            SchemeAmounts::One(amount) => std::slice::from_mut(amount),
            SchemeAmounts::Many(amounts) => amounts,
        };
        if let Some(amount) = amounts.iter_mut().find(|amount| amount.scheme() == scheme) {
            // Every earlier amount was the mean while none varied. Checked and saturating: a
            // hand-written amount near i64's limit must not overflow (a sum that saturated
            // reads as varied).
            if amount_paise.checked_mul(i64::from(amount.count.get())) != Some(amount.sum_paise) {
                amount.scheme_bits |= VARIED;
            }
            if amount.count < NonZeroU16::MAX {
                amount.sum_paise = amount.sum_paise.saturating_add(amount_paise);
                amount.count = amount.count.saturating_add(1);
            }
            amount.last_time = amount.last_time.max(compact_time(time));
            return;
        }
        let Some(scheme) = compact_scheme(scheme) else {
            return;
        };
        let new = SchemeAmount {
            sum_paise: amount_paise,
            last_time: compact_time(time),
            scheme_bits: scheme,
            count: NonZeroU16::MIN,
        };
        *self = match std::mem::take(self) {
            SchemeAmounts::Many(amounts) if amounts.is_empty() => SchemeAmounts::One(new),
            SchemeAmounts::One(first) => SchemeAmounts::Many(Box::new(vec![first, new])),
            SchemeAmounts::Many(mut amounts) => {
                amounts.push(new);
                SchemeAmounts::Many(amounts)
            }
        };
    }
}

#[derive(Debug, Default)]
struct AccountState {
    /// (time, beneficiary) of payments into the account within the history window, oldest
    /// first; inline when there is one.
    recent: Few<AccountPayment>,
}

/// A payment into an account: packed to 12 bytes, so an account paid twice in the window
/// spills into a 32-byte allocation instead of 48.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct AccountPayment {
    time: EventTime,
    beneficiary: u32,
}

#[derive(Debug, Default)]
struct AgentState {
    /// (time, beneficiary, first visit of that beneficiary) of payments within the last hour.
    recent: VecDeque<(EventTime, u32, bool)>,
    /// Payments per IST hour of the day, ever: when this counter works.
    hours: [u32; 24],
    /// Payments ever to beneficiaries who had never used this counter before.
    first_visit_total: u64,
    /// Times of the payments of the last [`FIRST_VISIT_WINDOW`], and of its first visits.
    window_payments: VecDeque<EventTime>,
    window_first_visits: VecDeque<EventTime>,
    total: u64,
    first_time: Option<EventTime>,
    last_time: EventTime,
    place: UsualPlace,
}

/// A scheme's amounts as a histogram of log-amount buckets, for a robust running median that
/// works for schemes nobody told us about.
#[derive(Debug)]
struct SchemeState {
    buckets: std::collections::BTreeMap<i32, u32>,
    count: u32,
    cached_median: Option<i64>,
    cached_at: u32,
    /// The scheme's repeat payments by their gap after the beneficiary's previous payment of
    /// it, in bands of [`gap_band`] (first payments are in `count` but in no band).
    gaps: [u32; GAP_BANDS],
    /// The same for repeats of the very amount within the history window, by their gap after
    /// the latest payment of that amount.
    same_amount_gaps: [u32; GAP_BANDS],
    /// Payments to beneficiaries paid one amount every time before (at least twice), and how
    /// many of them were another amount.
    steady_repeats: u32,
    steady_changes: u32,
}

impl Default for SchemeState {
    fn default() -> Self {
        SchemeState {
            buckets: std::collections::BTreeMap::new(),
            count: 0,
            cached_median: None,
            cached_at: 0,
            gaps: [0; GAP_BANDS],
            same_amount_gaps: [0; GAP_BANDS],
            steady_repeats: 0,
            steady_changes: 0,
        }
    }
}

const BUCKETS_PER_LOG_UNIT: f64 = 40.0;

/// Bands of a repeat's gap: a quarter of a natural-log unit of (1 + hours) each, so minutes,
/// hours, days and months each get a few; the last holds everything from about 400 days on.
pub(crate) const GAP_BANDS: usize = 40;

fn gap_band(gap: EventTime) -> usize {
    let hours = gap.max(0) as f64 / HOUR as f64;
    ((hours.ln_1p() * 4.0) as usize).min(GAP_BANDS - 1)
}

impl SchemeState {
    fn median_paise(&self) -> Option<i64> {
        self.cached_median
    }

    /// The share of the scheme's payments so far that came within the band of `gap` after
    /// their beneficiary's previous one, or sooner (smoothed by one, so a new scheme's first
    /// repeats are not rare).
    fn gap_share(&self, gap: EventTime) -> f64 {
        self.share_sooner(&self.gaps, gap)
    }

    /// The same for a repeat of the very amount.
    fn same_amount_gap_share(&self, gap: EventTime) -> f64 {
        self.share_sooner(&self.same_amount_gaps, gap)
    }

    /// The share of the scheme's steady payers' payments that changed their amount (smoothed
    /// by one, so a scheme's first steady repeats are not rare).
    fn steady_change_share(&self) -> f64 {
        (f64::from(self.steady_changes) + 1.0) / (f64::from(self.steady_repeats) + 1.0)
    }

    fn share_sooner(&self, gaps: &[u32; GAP_BANDS], gap: EventTime) -> f64 {
        let sooner: u32 = gaps[..=gap_band(gap)].iter().sum();
        (f64::from(sooner) + 1.0) / (f64::from(self.count) + 1.0)
    }

    fn add(&mut self, amount_paise: i64) {
        let bucket = ((amount_paise.max(1) as f64).ln() * BUCKETS_PER_LOG_UNIT).round() as i32;
        bump(self.buckets.entry(bucket).or_default());
        bump(&mut self.count);
        // Recomputing on every payment of a big scheme is wasted work: the median of a hundred
        // thousand payments does not move with one more. Refresh after every payment early on,
        // then once the count has grown by a 64th. The schedule depends on the count alone, so
        // warming and observing the same stream give the same medians.
        if self.count <= 64 || self.count - self.cached_at >= self.count / 64 {
            let half = self.count.div_ceil(2);
            let mut seen = 0;
            for (&bucket, &count) in &self.buckets {
                seen += count;
                if seen >= half {
                    let paise = (f64::from(bucket) / BUCKETS_PER_LOG_UNIT).exp().round() as i64;
                    self.cached_median = Some(paise.max(1));
                    break;
                }
            }
            self.cached_at = self.count;
        }
    }
}

/// Interns identifiers as dense integers so the state of a million beneficiaries stays small.
/// The texts live back to back in one arena and the hash table holds only ids (about 20 bytes
/// an id instead of 60 with a boxed string per entry), and a checkpoint rebuilds it without
/// allocating per id. foldhash instead of SipHash: four lookups a payment made hashing 8 % of
/// the monitor's time, and ids come from our own database, so flooding resistance buys nothing
/// here. Ids depend on insertion order only, never on the hasher.
#[derive(Default)]
struct Interner {
    /// Every id's text, back to back.
    text: String,
    /// Where each id's text ends in `text` (it starts where the previous one's ends).
    ends: Vec<u32>,
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("ids", &self.len())
            .finish()
    }
}

fn text_of<'t>(text: &'t str, ends: &[u32], id: u32) -> &'t str {
    let end = ends[id as usize] as usize;
    let start = if id == 0 {
        0
    } else {
        ends[id as usize - 1] as usize
    };
    &text[start..end]
}

impl Interner {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The text of `id`.
    fn text(&self, id: u32) -> &str {
        text_of(&self.text, &self.ends, id)
    }

    fn get_or_insert(&mut self, key: &str) -> u32 {
        use std::hash::BuildHasher;

        let hash = self.hasher.hash_one(key);
        let Interner {
            text, ends, table, ..
        } = self;
        if let Some(&id) = table.find(hash, |&id| text_of(text, ends, id) == key) {
            return id;
        }
        self.push_new(hash, key)
    }

    /// Adds `key`, known to be absent, as the next id.
    fn push_new(&mut self, hash: u64, key: &str) -> u32 {
        let id = u32::try_from(self.ends.len()).expect("fewer than 2^32 ids");
        self.text.push_str(key);
        self.ends
            .push(u32::try_from(self.text.len()).expect("interned text under 4 GiB"));
        let (table, rehash) = self.table_and_rehash();
        table.insert_unique(hash, id, rehash);
        id
    }

    /// The table, and how to hash an id already in it when the table grows.
    fn table_and_rehash(&mut self) -> (&mut hashbrown::HashTable<u32>, impl Fn(&u32) -> u64 + '_) {
        use std::hash::BuildHasher;

        let Interner {
            text,
            ends,
            table,
            hasher,
        } = self;
        let (text, ends, hasher) = (&*text, &*ends, &*hasher);
        (table, move |&id: &u32| {
            hasher.hash_one(text_of(text, ends, id))
        })
    }

    /// Appends `keys`, distinct and new, as the next ids (a checkpoint's ids). The table is
    /// filled in the order of its buckets rather than of the ids: a million inserts at random
    /// places of a 10 MB table were a fifth of a restore's time, most of it cache misses. The
    /// bucket order assumes hashbrown's probing starts at `hash & (buckets - 1)`; were that to
    /// change, only the speed would.
    fn extend_new<'k, E>(
        &mut self,
        keys: impl IntoIterator<Item = Result<&'k str, E>>,
    ) -> Result<(), E> {
        use std::hash::BuildHasher;

        let mut entries = Vec::new();
        for key in keys {
            let key = key?;
            let id = u32::try_from(self.ends.len()).expect("fewer than 2^32 ids");
            self.text.push_str(key);
            self.ends
                .push(u32::try_from(self.text.len()).expect("interned text under 4 GiB"));
            entries.push((self.hasher.hash_one(key), id));
        }
        let (table, rehash) = self.table_and_rehash();
        table.reserve(entries.len(), &rehash);
        let buckets = (table.capacity() / 7 * 8).next_power_of_two() as u64;
        entries.sort_unstable_by_key(|&(hash, _)| hash & (buckets - 1));
        for (hash, id) in entries {
            table.insert_unique(hash, id, &rehash);
        }
        Ok(())
    }

    fn reserve(&mut self, ids: usize, text_bytes: usize) {
        self.text.reserve(text_bytes);
        self.ends.reserve(ids);
        let (table, rehash) = self.table_and_rehash();
        table.reserve(ids, rehash);
    }
}

/// The history every feature is computed from.
#[derive(Debug, Default)]
pub struct FeatureState {
    beneficiary_ids: Interner,
    account_ids: Interner,
    agent_ids: Interner,
    scheme_ids: Interner,
    beneficiaries: Chunked<BeneficiaryState>,
    accounts: Chunked<AccountState>,
    agents: Vec<AgentState>,
    schemes: Vec<SchemeState>,
    observed: u64,
    /// Payments per IST hour of the day, ever, over everything observed.
    hours: [u64; 24],
    /// Per IST hour of the day, how many counters have ever paid in it: when counters work,
    /// each counting once however busy (a few bank channels crediting millions at night do not
    /// make the night ordinary for counters).
    counters_at_hour: [u32; 24],
    /// Reused for the distinct-beneficiary counts, so computing a payment allocates nothing.
    scratch: Vec<u32>,
}

/// Where someone or something is usually seen: the coordinate-wise median of the first `keep`
/// places. A median, not a mean, so one payment a thousand km away (fraud or a trip) does not
/// drag the "usual place" halfway across India for everybody compared with it later.
///
/// 24 bytes: the places seen so far (their median computed when asked), or once `keep` of them
/// fixed it, the median alone. Separate fields for the points, the median and a count took 64
/// bytes for every beneficiary.
#[derive(Debug, Clone)]
enum UsualPlace {
    Collecting(Few<(f64, f64)>),
    Fixed((f64, f64)),
}

impl Default for UsualPlace {
    fn default() -> Self {
        UsualPlace::Collecting(Few::default())
    }
}

/// The median of a few values, the mean of the middle two for an even count.
fn median_of(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

impl UsualPlace {
    /// The places seen while collecting (none once the median is fixed).
    fn collected(&self) -> &[(f64, f64)] {
        match self {
            UsualPlace::Collecting(points) => points,
            UsualPlace::Fixed(_) => &[],
        }
    }

    /// How many places were added, counting `keep` for a fixed median.
    fn seen(&self, keep: usize) -> usize {
        match self {
            UsualPlace::Collecting(points) => points.len(),
            UsualPlace::Fixed(_) => keep,
        }
    }

    fn median(&self) -> Option<(f64, f64)> {
        match self {
            UsualPlace::Fixed(median) => Some(*median),
            UsualPlace::Collecting(points) if points.is_empty() => None,
            UsualPlace::Collecting(points) => {
                let mut lats: SmallVec<[f64; 16]> = points.iter().map(|p| p.0).collect();
                let mut lons: SmallVec<[f64; 16]> = points.iter().map(|p| p.1).collect();
                Some((median_of(&mut lats), median_of(&mut lons)))
            }
        }
    }

    fn add(&mut self, point: (f64, f64), keep: usize) {
        let UsualPlace::Collecting(points) = self else {
            return;
        };
        points.push(point);
        if points.len() >= keep {
            // The median never moves again: the points are never read again.
            let median = self.median().expect("a place was just added");
            *self = UsualPlace::Fixed(median);
        }
    }
}

/// A short list of `Copy` entries for the per-beneficiary and per-account records, of which
/// there are millions: one entry inline (most beneficiaries of a monthly scheme have one payment
/// and one place in the window), more in a heap slice of exactly their number. 24 bytes for a
/// 20-byte entry where a `SmallVec` took 32; a push or a drop past one entry reallocates, which
/// for lists of a few entries costs less than the room doubling would keep.
#[derive(Debug, Clone)]
enum Few<T> {
    One(T),
    Many(Box<[T]>),
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        // An empty boxed slice does not allocate.
        Few::Many(Box::default())
    }
}

impl<T> std::ops::Deref for Few<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Few::One(entry) => std::slice::from_ref(entry),
            Few::Many(entries) => entries,
        }
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Copy> From<&[T]> for Few<T> {
    fn from(entries: &[T]) -> Self {
        match entries {
            [entry] => Few::One(*entry),
            _ => Few::Many(entries.into()),
        }
    }
}

impl<T: Copy> FromIterator<T> for Few<T> {
    fn from_iter<I: IntoIterator<Item = T>>(entries: I) -> Self {
        let entries: SmallVec<[T; 4]> = entries.into_iter().collect();
        Few::from(&entries[..])
    }
}

impl<T: Copy> Few<T> {
    fn push(&mut self, entry: T) {
        self.keep_from_and_push(0, entry);
    }

    /// Drops the first `first` entries and appends `entry`, in one allocation.
    fn keep_from_and_push(&mut self, first: usize, entry: T) {
        let mut all: SmallVec<[T; 4]> = SmallVec::with_capacity(self.len() - first + 1);
        all.extend_from_slice(&self[first..]);
        all.push(entry);
        *self = Few::from(&all[..]);
    }

    /// Appends `entry` (at `now`) after dropping the entries at the front older than `window`.
    /// Dropping first gives the same list as after (the new entry is never expired), and keeps
    /// a list of one inline. Entries arrive roughly in time order; a late entry simply stays
    /// until the ones before it age out.
    fn push_expiring(
        &mut self,
        entry: T,
        now: EventTime,
        window: i64,
        time_of: impl Fn(&T) -> EventTime,
    ) {
        let old = expired(self.iter(), now, window, time_of);
        self.keep_from_and_push(old, entry);
    }
}

/// How many payments' worth of a typical counter's hours (the share of counters that ever paid
/// in each hour) a counter's own hours are smoothed with: a new counter is judged by when
/// counters work, one with hundreds of payments mostly by its own hours. Counters, not
/// payments: where a third of all payments are a few banks' night credits, everybody's hours
/// would make the night ordinary for every counter.
const COUNTER_HOUR_PRIOR: f64 = 24.0;

/// The IST hour of the day of `time`, 0–23.
fn hour_of(time: EventTime) -> usize {
    (ist_seconds_of_day(time) / HOUR) as usize % 24
}

/// Places remembered per beneficiary and per agent for their usual place.
const BENEFICIARY_PLACES: usize = 5;
const AGENT_PLACES: usize = 15;

impl FeatureState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Payments observed so far.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// Number of distinct beneficiaries in the state.
    pub fn beneficiary_count(&self) -> usize {
        self.beneficiaries.len()
    }

    /// Computes `payment`'s features from the history so far, then adds it to the history.
    pub fn observe(&mut self, payment: &Payment) -> Features {
        let ids = self.intern(payment);
        let features = self.compute(payment, ids);
        self.update(payment, ids);
        features
    }

    /// Adds `payment` to the history without computing its features (warming the state).
    pub fn warm(&mut self, payment: &Payment) {
        let ids = self.intern(payment);
        self.update(payment, ids);
    }

    fn intern(&mut self, payment: &Payment) -> Ids {
        let beneficiary = self.beneficiary_ids.get_or_insert(&payment.beneficiary_id) as usize;
        if beneficiary == self.beneficiaries.len() {
            self.beneficiaries.push(BeneficiaryState::default());
        }
        let scheme = self.scheme_ids.get_or_insert(&payment.scheme);
        if scheme as usize == self.schemes.len() {
            self.schemes.push(SchemeState::default());
        }
        let account = payment.account_id.as_deref().map(|id| {
            let account = self.account_ids.get_or_insert(id);
            if account as usize == self.accounts.len() {
                self.accounts.push(AccountState::default());
            }
            account
        });
        let agent = payment.agent_id.as_deref().map(|id| {
            let agent = self.agent_ids.get_or_insert(id);
            if agent as usize == self.agents.len() {
                self.agents.push(AgentState::default());
            }
            agent
        });
        Ids {
            beneficiary: beneficiary as u32,
            scheme,
            account,
            agent,
        }
    }

    fn compute(&mut self, payment: &Payment, ids: Ids) -> Features {
        let window = |feature: Feature| feature.window().expect("a counting feature has a window");
        let burst_window = window(Feature::BeneficiarySameScheme1hLog);
        let day_window = window(Feature::BeneficiaryPayments24hLog);
        let agent_pace_window = window(Feature::AgentPayments10minLog);
        let first_visit_window = window(Feature::AgentFirstVisits15min);
        let agent_reach_window = window(Feature::AgentBeneficiaries1hLog);
        let time = payment.time;
        let mut context = FeatureContext {
            amount_paise: payment.amount_paise,
            scheme: payment.scheme.clone(),
            seconds_of_day: ist_seconds_of_day(time),
            weekday: ist_weekday(time),
            ..FeatureContext::default()
        };

        let scheme = &self.schemes[ids.scheme as usize];
        context.scheme_typical_paise = scheme.median_paise();
        let hour = hour_of(time);
        let everybody = (self.hours[hour] as f64 + 1.0) / (self.observed as f64 + 24.0);
        context.hour_share = everybody;
        if let Some(agent) = ids.agent {
            let state = &self.agents[agent as usize];
            let counters = self.counters_at_hour.iter().map(|&n| f64::from(n) + 1.0);
            let typical_counter =
                (f64::from(self.counters_at_hour[hour]) + 1.0) / counters.sum::<f64>();
            context.hour_share = (f64::from(state.hours[hour])
                + COUNTER_HOUR_PRIOR * typical_counter)
                / (state.total as f64 + COUNTER_HOUR_PRIOR);
            context.hour_share_at_counter = true;
        }

        let beneficiary = &self.beneficiaries[ids.beneficiary as usize];
        for recent in &beneficiary.recent {
            let age = time - recent.time;
            if !(0..HISTORY_WINDOW).contains(&age) {
                continue;
            }
            context.beneficiary_payments_30d += 1;
            if age < day_window {
                context.beneficiary_payments_24h += 1;
            }
            // Same scheme only: two schemes paying out on the same day is ordinary.
            if recent.scheme == ids.scheme && age < burst_window {
                context.same_scheme_1h += 1;
            }
        }
        if let Some(last) = beneficiary.last_same_amount(ids.scheme, payment.amount_paise, time) {
            context.same_amount_days_since = Some((time - last) as f64 / DAY as f64);
            context.same_amount_gap_share = scheme.same_amount_gap_share(time - last);
        }
        context.hours_since_previous = beneficiary
            .last_time()
            .map(|last| ((time - last).max(0) as f64 / HOUR as f64).min(MAX_GAP_HOURS));
        context.own_typical_paise = beneficiary.scheme_amounts.typical(ids.scheme);
        if let Some((amount, payments)) = beneficiary.scheme_amounts.steady(ids.scheme) {
            context.steady_paise = Some(amount);
            context.steady_payments = payments;
            context.steady_change_share = scheme.steady_change_share();
        }
        if let Some(last) = beneficiary.scheme_amounts.last_time(ids.scheme) {
            context.same_scheme_days_since = Some((time - last).max(0) as f64 / DAY as f64);
            context.same_scheme_gap_share = scheme.gap_share(time - last);
        }

        // How far from anywhere the payment is known to belong: the nearest of the counters the
        // beneficiary used before (robust to one trip away, unlike a running mean), their own
        // usual place, and this counter's usual place (revision 11). A migrant's first wage at
        // the city counter, located where that counter always is, is far from nothing; a
        // payment of the home counter located across the country is far from both.
        context.km_from_usual_place = payment.location.and_then(|point| {
            beneficiary
                .agents
                .iter()
                .copied()
                .chain(ids.agent)
                .filter_map(|agent| self.agents[agent as usize].place.median())
                .chain(beneficiary.place.median())
                .map(|place| haversine_km(point, place))
                .reduce(f64::min)
        });

        let has_history = !beneficiary.recent.is_empty();
        let mut distinct = std::mem::take(&mut self.scratch);
        if let Some(account) = ids.account {
            distinct.clear();
            distinct.extend(
                self.accounts[account as usize]
                    .recent
                    .iter()
                    .filter(|entry| {
                        (0..HISTORY_WINDOW).contains(&(time - { entry.time })) && {
                            entry.beneficiary
                        } != ids
                            .beneficiary
                    })
                    .map(|entry| entry.beneficiary),
            );
            distinct.sort_unstable();
            distinct.dedup();
            context.account_other_beneficiaries_30d = distinct.len() as u32;
            context.account_new_for_beneficiary =
                has_history && !beneficiary.accounts.contains(&account);
        }
        if let Some(agent) = ids.agent {
            let state = &self.agents[agent as usize];
            distinct.clear();
            for (when, who, first_visit) in &state.recent {
                let age = time - when;
                if !(0..agent_reach_window).contains(&age) {
                    continue;
                }
                if age < agent_pace_window {
                    context.agent_payments_10min += 1;
                }
                if *first_visit && age < first_visit_window {
                    context.agent_first_visits_15min += 1;
                }
                if *who != ids.beneficiary {
                    distinct.push(*who);
                }
            }
            distinct.sort_unstable();
            distinct.dedup();
            context.agent_beneficiaries_1h = distinct.len() as u32;
            // The counter's payments per 10 minutes of the hours it works, learned from its own
            // hour counts (a city hub's fourteen-hour day, a bank's night batches).
            context.agent_usual_10min = match state.first_time {
                Some(first) => {
                    let active_days = ((state.last_time - first) as f64 / DAY as f64).max(1.0);
                    let worked_hours = state
                        .hours
                        .iter()
                        .filter(|&&n| f64::from(n) >= WORKED_HOUR_SHARE * state.total as f64)
                        .count()
                        .max(1);
                    state.total as f64 / active_days / (6.0 * worked_hours as f64)
                }
                None => 0.0,
            };
            context.agent_new_for_beneficiary = has_history && !beneficiary.agents.contains(&agent);
            context.agent_first_visits_15min += u32::from(context.agent_new_for_beneficiary);
            // Entries older than the window sit at the front (dropped at the next update), as
            // with every other window here: counted off the front, not by a binary search,
            // whose answer on entries out of time order would depend on the ring buffer's layout.
            let in_window = |times: &VecDeque<EventTime>| {
                times.len() - expired(times, time, FIRST_VISIT_WINDOW, |&t| t)
            };
            context.agent_first_visits_6h = (in_window(&state.window_first_visits)
                + usize::from(context.agent_new_for_beneficiary))
                as u32;
            // The counter's share of first visits, smoothed towards one in twenty for a
            // counter with little history.
            let share = (state.first_visit_total as f64 + 1.0) / (state.total as f64 + 20.0);
            context.agent_first_visits_6h_expected =
                share * (in_window(&state.window_payments) as f64 + 1.0);
            // A counter seen for less than the history window has no usual share of new
            // customers yet: all of a new counter's customers are new to it, and in a data
            // set's first weeks a bank channel crediting its first batch to people paid at
            // counters until then made hundreds of first visits in minutes (14 % of the
            // messy-welfare training rows had six-hour counts that 0.02 % of its later rows
            // have). Its first visits are counted, not judged.
            let settled = state
                .first_time
                .is_some_and(|first| time - first >= HISTORY_WINDOW);
            if !settled {
                context.agent_first_visits_15min = 0;
                context.agent_first_visits_6h = 0;
                context.agent_first_visits_6h_expected = 0.0;
            }
        }
        self.scratch = distinct;

        let values = Feature::values(&context);
        Features {
            values,
            per_row: per_row_values(payment),
            steady_change: steady_change(&context),
            context,
        }
    }

    fn update(&mut self, payment: &Payment, ids: Ids) {
        let time = payment.time;
        self.observed += 1;
        self.hours[hour_of(time)] += 1;
        let beneficiary = &mut self.beneficiaries[ids.beneficiary as usize];
        let scheme = &mut self.schemes[ids.scheme as usize];
        if let Some(last) = beneficiary.scheme_amounts.last_time(ids.scheme) {
            bump(&mut scheme.gaps[gap_band(time - last)]);
        }
        if let Some(last) = beneficiary.last_same_amount(ids.scheme, payment.amount_paise, time) {
            bump(&mut scheme.same_amount_gaps[gap_band(time - last)]);
        }
        if let Some((amount, _)) = beneficiary.scheme_amounts.steady(ids.scheme) {
            bump(&mut scheme.steady_repeats);
            scheme.steady_changes = scheme
                .steady_changes
                .saturating_add(u32::from(amount != payment.amount_paise));
        }
        scheme.add(payment.amount_paise);

        let had_history = !beneficiary.recent.is_empty();
        let entry = RecentPayment {
            time,
            scheme: ids.scheme,
            amount_paise: payment.amount_paise,
        };
        (beneficiary.recent).push_expiring(entry, time, HISTORY_WINDOW, |recent| recent.time);
        if let Some(point) = payment.location {
            beneficiary.place.add(point, BENEFICIARY_PLACES);
        }
        (beneficiary.scheme_amounts).add(ids.scheme, payment.amount_paise, time);
        if let Some(account) = ids.account {
            beneficiary.accounts.insert(account);
            let state = &mut self.accounts[account as usize];
            let entry = AccountPayment {
                time,
                beneficiary: ids.beneficiary,
            };
            (state.recent).push_expiring(entry, time, HISTORY_WINDOW, |entry| entry.time);
        }
        if let Some(agent) = ids.agent {
            let first_visit = had_history && !beneficiary.agents.contains(&agent);
            beneficiary.agents.insert(agent);
            let state = &mut self.agents[agent as usize];
            state.recent.push_back((time, ids.beneficiary, first_visit));
            state.window_payments.push_back(time);
            let old = expired(&state.window_payments, time, FIRST_VISIT_WINDOW, |&t| t);
            state.window_payments.drain(..old);
            if first_visit {
                state.first_visit_total += 1;
                state.window_first_visits.push_back(time);
            }
            let old = expired(&state.window_first_visits, time, FIRST_VISIT_WINDOW, |&t| t);
            state.window_first_visits.drain(..old);
            let old = expired(&state.recent, time, HOUR, |entry| entry.0);
            state.recent.drain(..old);
            state.total += 1;
            let hour = hour_of(time);
            if state.hours[hour] == 0 {
                self.counters_at_hour[hour] += 1;
            }
            bump(&mut state.hours[hour]);
            state.first_time = Some(state.first_time.map_or(time, |first| first.min(time)));
            state.last_time = state.last_time.max(time);
            if let Some(point) = payment.location {
                state.place.add(point, AGENT_PLACES);
            }
        }
    }
}

/// How many entries at the front are older than `window` before `now` (to drop). Entries
/// arrive roughly in time order; a late entry simply stays until the ones before it age out.
fn expired<'a, T: 'a>(
    entries: impl IntoIterator<Item = &'a T>,
    now: EventTime,
    window: i64,
    time_of: impl Fn(&T) -> EventTime,
) -> usize {
    entries
        .into_iter()
        .take_while(|entry| now - time_of(entry) >= window)
        .count()
}

/// A vector kept in fixed-size chunks, for the per-beneficiary and per-account records. A
/// `Vec` of a million records doubles by copying (for a moment holding both copies) and keeps
/// up to half its capacity unused; this never moves a record and leaves at most one partly
/// filled chunk.
#[derive(Debug)]
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

/// Records per chunk (16,384: under 3 MB of beneficiary records).
const CHUNK: usize = 1 << 14;

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, value: T) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks
            .last_mut()
            .expect("a chunk with room")
            .push(value);
        self.len += 1;
    }
}

impl<T> std::ops::Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        &self.chunks[index / CHUNK][index % CHUNK]
    }
}

impl<T> std::ops::IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut self.chunks[index / CHUNK][index % CHUNK]
    }
}

impl<T> FromIterator<T> for Chunked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut chunked = Chunked::default();
        for item in items {
            chunked.push(item);
        }
        chunked
    }
}

impl<'a, T> IntoIterator for &'a Chunked<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.chunks.iter().flatten()
    }
}

#[derive(Debug, Clone, Copy)]
struct Ids {
    beneficiary: u32,
    scheme: u32,
    account: Option<u32>,
    agent: Option<u32>,
}

/// Counts one more, staying at the top instead of overflowing: a scheme paid 2³² times (a
/// national scheme over a decade) would otherwise panic the monitor, and its replay on restart
/// at the same row. Below the top nothing changes, so no score and no checkpoint does.
fn bump(count: &mut u32) {
    *count = count.saturating_add(1);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::features::FEATURE_NAMES;
    use crate::time::parse_timestamp;

    /// A scheme paid four billion times (a national scheme over a decade) keeps counting at
    /// the top instead of panicking, which on replay would stop every restart at the same row.
    #[test]
    fn a_scheme_count_saturates_rather_than_overflowing() {
        let mut scheme = SchemeState {
            count: u32::MAX,
            cached_at: u32::MAX,
            ..SchemeState::default()
        };
        scheme.buckets.insert(0, u32::MAX);
        scheme.add(1);
        assert_eq!(scheme.count, u32::MAX);
        assert_eq!(scheme.buckets[&0], u32::MAX);
    }

    fn explain(feature: usize, context: &FeatureContext) -> String {
        Feature::at(feature).explain(context)
    }

    pub(crate) fn payment(
        beneficiary: &str,
        account: &str,
        agent: &str,
        paise: i64,
        when: &str,
    ) -> Payment {
        in_scheme("PM-KISAN", beneficiary, account, agent, paise, when)
    }

    /// [`payment`] in `scheme`.
    /// Observes `who`'s payment of `paise` in `scheme` at account A, counter G.
    fn observe(
        state: &mut FeatureState,
        who: &str,
        scheme: &str,
        paise: i64,
        when: &str,
    ) -> Features {
        state.observe(&in_scheme(scheme, who, "A", "G", paise, when))
    }

    fn in_scheme(
        scheme: &str,
        beneficiary: &str,
        account: &str,
        agent: &str,
        paise: i64,
        when: &str,
    ) -> Payment {
        Payment {
            beneficiary_id: beneficiary.to_string(),
            account_id: Some(account.to_string()),
            agent_id: Some(agent.to_string()),
            scheme: scheme.to_string(),
            amount_paise: paise,
            time: parse_timestamp(when).unwrap(),
            location: Some((26.85, 80.95)),
        }
    }

    fn index(name: &str) -> usize {
        FEATURE_NAMES.iter().position(|n| *n == name).unwrap()
    }

    pub(crate) fn sample_stream() -> Vec<Payment> {
        let mut stream = Vec::new();
        for day in 1..=28 {
            for person in 0..12 {
                stream.push(payment(
                    &format!("B{person}"),
                    &format!("A{}", person % 4),
                    &format!("G{}", person % 2),
                    200_000 + person * 1000,
                    &format!("2025-02-{day:02} {:02}:15:00", 9 + person),
                ));
            }
        }
        stream.push(payment("B1", "A1", "G1", 200_000, "2025-02-28 15:20:00"));
        stream.push(payment("B9", "A1", "G0", 2_000_000, "2025-02-28 03:00:00"));
        stream
    }

    /// The hour of a payment is judged by when the place that made it usually works: a counter
    /// open 10:00–17:00 paying at 02:00 is rare, a bank channel crediting its night batch at
    /// 02:00 is not, and nothing about "business hours" is assumed.
    #[test]
    fn an_hour_is_rare_for_the_counter_that_never_works_then_not_for_the_night_bank() {
        let mut state = FeatureState::new();
        for day in 1..=20 {
            for person in 0..20 {
                let counter = format!("2025-01-{day:02} {:02}:10:00", 10 + person % 7);
                state.warm(&payment(
                    &format!("C{person}"),
                    "A",
                    "COUNTER",
                    1000,
                    &counter,
                ));
                // Other counters keep the same hours.
                let other = format!("OTHER{}", person % 8);
                state.warm(&payment(&format!("O{person}"), "O", &other, 1000, &counter));
                let night = format!("2025-01-{day:02} 0{}:20:00", 1 + person % 3);
                state.warm(&payment(&format!("N{person}"), "B", "BANK", 1000, &night));
            }
        }
        let rarity = index("hour_rarity_at_counter");
        let at_night = state.observe(&payment("C1", "A", "COUNTER", 1000, "2025-01-21 02:30:00"));
        let bank = state.observe(&payment("N1", "B", "BANK", 1000, "2025-01-21 02:30:00"));
        let by_day = state.observe(&payment("C2", "A", "COUNTER", 1000, "2025-01-21 12:30:00"));
        let (night, bank, day) = (
            at_night.values[rarity],
            bank.values[rarity],
            by_day.values[rarity],
        );
        assert!(night > 15.0, "{night} {bank} {day}");
        assert!(bank < 1.0 && day < 1.0, "{bank} {day}");
        let sentence = explain(rarity, &at_night.context);
        assert!(
            sentence.contains("02:30") && sentence.contains("this counter makes 0.2 %"),
            "{sentence}"
        );
        // Without a counter, the hour is judged against all payments.
        let mut bare = payment("C3", "A", "X", 1000, "2025-01-21 12:40:00");
        bare.agent_id = None;
        let bare = state.observe(&bare);
        assert!(!bare.context.hour_share_at_counter);
        assert!(explain(rarity, &bare.context).contains("of all payments are made"));
    }

    /// A repeat of a scheme is judged by how soon the scheme's payments usually repeat: a
    /// pension after 19 days and a PM-KISAN instalment after 21 stand out, the next month's
    /// pension does not, and neither does a weekly wage.
    #[test]
    fn a_repeat_is_judged_by_how_soon_the_schemes_payments_usually_come() {
        let mut state = FeatureState::new();
        for person in 0..400 {
            state.warm(&in_scheme(
                "PM-KISAN",
                &format!("K{person}"),
                "A",
                "G",
                200_000,
                "2025-01-06 11:00:00",
            ));
            for month in 1..=3 {
                let when = format!("2025-{month:02}-10 11:00:00");
                state.warm(&in_scheme(
                    "NSAP-OAP",
                    &format!("P{person}"),
                    "B",
                    "G",
                    100_000,
                    &when,
                ));
            }
            for week in 0..8 {
                let when = format!("2025-01-{:02} 11:00:00", 1 + 3 * week + person % 4);
                state.warm(&in_scheme(
                    "MGNREGA",
                    &format!("W{person}"),
                    "C",
                    "G",
                    150_000,
                    &when,
                ));
            }
        }
        let gap = index("same_scheme_gap_rarity");
        let observe = |state: &mut FeatureState, who: &str, scheme: &str, when: &str| {
            state.observe(&in_scheme(scheme, who, "A", "G", 200_000, when))
        };
        let kisan_again = observe(&mut state, "K1", "PM-KISAN", "2025-01-27 11:00:00");
        let pension_early = observe(&mut state, "P1", "NSAP-OAP", "2025-03-29 11:00:00");
        let pension_due = observe(&mut state, "P2", "NSAP-OAP", "2025-04-09 11:00:00");
        let wage = observe(&mut state, "W3", "MGNREGA", "2025-01-28 11:00:00");
        let first = observe(&mut state, "NEW", "NSAP-OAP", "2025-04-09 12:00:00");
        assert!(kisan_again.values[gap] > 1.0, "{}", kisan_again.values[gap]);
        assert!(
            pension_early.values[gap] > 1.0,
            "{}",
            pension_early.values[gap]
        );
        assert_eq!(pension_due.values[gap], 0.0);
        assert_eq!(wage.values[gap], 0.0);
        assert_eq!(first.values[gap], 0.0);
        let sentence = explain(gap, &kisan_again.context);
        assert!(
            sentence.starts_with(
                "PM-KISAN paid again 21 days after this beneficiary's previous PM-KISAN payment; 0.2 % of PM-KISAN payments come that soon"
            ),
            "{sentence}"
        );
    }

    /// Ten beneficiaries new to a counter over an afternoon: far more than a counter whose
    /// customers are regulars would see, ordinary for one that new customers use all the time.
    #[test]
    fn first_visits_over_an_afternoon_are_judged_by_the_counters_usual_share() {
        let mut state = FeatureState::new();
        for day in 1..=20 {
            for person in 0..10 {
                let when = format!("2025-01-{day:02} {:02}:00:00", 10 + person % 6);
                // Regulars at REGULAR; at BUSY, a stranger every time after the first day.
                state.warm(&payment(&format!("R{person}"), "A", "REGULAR", 1000, &when));
                let stranger = format!("S{day}-{person}");
                state.warm(&payment(
                    &stranger,
                    "A",
                    "ELSEWHERE",
                    1000,
                    "2024-12-01 10:00:00",
                ));
                state.warm(&payment(&stranger, "A", "BUSY", 1000, &when));
            }
        }
        let slow = index("agent_first_visits_6h_vs_usual");
        let mut last = (0.0, 0.0);
        for (step, hour) in (12..16).flat_map(|h| [h; 3]).enumerate() {
            // A month after the counters opened: they have a usual share of new customers.
            let when = format!("2025-02-21 {hour:02}:{:02}:00", step * 4);
            let newcomer = format!("N{step}");
            state.warm(&payment(
                &newcomer,
                "A",
                "ELSEWHERE",
                1000,
                "2024-12-02 10:00:00",
            ));
            let at_regular = state.observe(&payment(&newcomer, "A", "REGULAR", 1000, &when));
            let other = format!("M{step}");
            state.warm(&payment(
                &other,
                "A",
                "ELSEWHERE",
                1000,
                "2024-12-02 10:00:00",
            ));
            let at_busy = state.observe(&payment(&other, "A", "BUSY", 1000, &when));
            last = (at_regular.values[slow], at_busy.values[slow]);
            if step == 11 {
                assert_eq!(at_regular.context.agent_first_visits_6h, 12);
                assert!(
                    explain(slow, &at_regular.context)
                        .contains("12 beneficiaries it had never served before within 6 hours"),
                    "{}",
                    explain(slow, &at_regular.context)
                );
            }
        }
        assert!(last.0 > 5.0, "regulars' counter: {}", last.0);
        assert!(last.1 < 1.0, "strangers' counter: {}", last.1);
    }

    /// A counter's usual pace is its payments per 10 minutes of the hours it works: the same
    /// day's payments over seven hours are twice the pace of those over fourteen.
    #[test]
    fn a_counters_usual_pace_is_over_the_hours_it_works() {
        let mut state = FeatureState::new();
        for day in 1..=10 {
            for slot in 0..70 {
                let short = format!(
                    "2025-01-{day:02} {:02}:{:02}:00",
                    10 + slot / 10,
                    slot % 10 * 6
                );
                state.warm(&payment(&format!("S{slot}"), "A", "SHORT", 1000, &short));
                let long = format!(
                    "2025-01-{day:02} {:02}:{:02}:00",
                    7 + slot / 5,
                    slot % 5 * 12
                );
                state.warm(&payment(&format!("L{slot}"), "B", "LONG", 1000, &long));
            }
        }
        let short = state.observe(&payment("S0", "A", "SHORT", 1000, "2025-01-11 11:00:00"));
        let long = state.observe(&payment("L0", "B", "LONG", 1000, "2025-01-11 11:00:00"));
        let ratio = short.context.agent_usual_10min / long.context.agent_usual_10min;
        assert!((1.8..2.2).contains(&ratio), "{ratio}");
        // 70 payments a day over 7 hours: about 1.7 per 10 minutes.
        assert!((1.5..2.0).contains(&short.context.agent_usual_10min));
    }

    /// A deployment with more scheme names than a beneficiary's 16-bit entry holds still scores
    /// every payment: one in a scheme beyond them reads as the beneficiary's first in it.
    #[test]
    fn schemes_beyond_sixteen_bits_keep_no_own_history_and_break_nothing() {
        let mut state = FeatureState::new();
        for scheme in 0..=u32::from(u16::MAX) {
            state.warm(&in_scheme(
                &format!("S{scheme}"),
                &format!("B{scheme}"),
                &format!("A{scheme}"),
                "G",
                1000,
                "2025-01-01 10:00:00",
            ));
        }
        let last = in_scheme("S-BEYOND", "B1", "A", "G", 1000, "2025-01-02 10:00:00");
        state.warm(&last);
        let again = state.observe(&Payment {
            amount_paise: 3000,
            ..in_scheme("S-BEYOND", "B1", "A", "G", 1000, "2025-01-03 10:00:00")
        });
        assert_eq!(again.context.own_typical_paise, None);
        assert_eq!(again.context.same_scheme_days_since, None);
        // Within 16 bits, the same repeat is seen.
        let known = state.observe(&in_scheme(
            "S7",
            "B7",
            "A",
            "G",
            3000,
            "2025-01-03 10:00:00",
        ));
        assert_eq!(known.context.own_typical_paise, Some(1000));
        assert_eq!(known.context.same_scheme_days_since, Some(2.0));
    }

    /// A repeat of the very amount is judged by how soon the scheme's amounts usually repeat:
    /// last week's wage again is ordinary where wages are weekly, a pension twice in two days
    /// is a possible duplicate, and an amount not paid in 30 days is no repeat.
    #[test]
    fn a_repeated_amount_is_judged_by_how_soon_the_schemes_amounts_repeat() {
        let mut state = FeatureState::new();
        for person in 0..400 {
            for week in 0..6 {
                let when = format!("2025-01-{:02} 11:00:00", 2 + 7 * week % 28 + week / 4);
                state.warm(&in_scheme(
                    "MGNREGA",
                    &format!("W{person}"),
                    "C",
                    "G",
                    150_000,
                    &when,
                ));
            }
            state.warm(&in_scheme(
                "NSAP-OAP",
                &format!("P{person}"),
                "B",
                "G",
                100_000,
                "2025-01-03 10:00:00",
            ));
        }
        let same_amount = index("same_amount_gap_rarity");
        let duplicate = observe(&mut state, "P1", "NSAP-OAP", 100_000, "2025-01-05 11:00:00");
        let wage = observe(&mut state, "W1", "MGNREGA", 150_000, "2025-02-14 11:00:00");
        let other_amount = observe(&mut state, "P2", "NSAP-OAP", 120_000, "2025-01-05 11:00:00");
        assert!(
            duplicate.values[same_amount] > 1.0,
            "{}",
            duplicate.values[same_amount]
        );
        assert_eq!(wage.values[same_amount], 0.0);
        assert_eq!(other_amount.values[same_amount], 0.0);
        let sentence = explain(same_amount, &duplicate.context);
        assert!(
            sentence.starts_with("same NSAP-OAP amount ₹1,000 already paid to this beneficiary 2 days before (possible duplicate); 0.2 % of NSAP-OAP payments"),
            "{sentence}"
        );
    }

    /// A payment is far only when it is far from the beneficiary's usual places and from where
    /// its counter usually pays: a migrant collecting at the city counter is where that counter
    /// always is; the home counter's payment located across the country is far from both.
    #[test]
    fn a_payment_is_far_only_when_far_from_its_counters_usual_place_too() {
        let (village, city) = ((26.85, 80.95), (19.07, 72.87));
        let at = |who: &str, agent: &str, place: (f64, f64), when: &str| {
            let mut payment = in_scheme("NSAP-OAP", who, &format!("A{who}"), agent, 200_000, when);
            payment.location = Some(place);
            payment
        };
        let mut state = FeatureState::new();
        for person in 0..5 {
            state.warm(&at(
                &format!("C{person}"),
                "HUB",
                city,
                "2025-01-06 11:00:00",
            ));
        }
        for who in ["M", "V"] {
            state.warm(&at(who, "VILLAGE", village, "2025-01-06 10:00:00"));
            state.warm(&at(who, "VILLAGE", village, "2025-02-06 10:00:00"));
        }
        let distance = index("hundreds_of_km_from_usual_place");
        let migrant = state.observe(&at("M", "HUB", city, "2025-03-06 11:00:00"));
        assert!(migrant.context.km_from_usual_place.unwrap() < 1.0);
        assert!(migrant.values[distance] < 0.01);
        let displaced = state.observe(&at("V", "VILLAGE", city, "2025-03-06 10:00:00"));
        let km = displaced.context.km_from_usual_place.unwrap();
        assert!((1000.0..1300.0).contains(&km), "{km}");
        assert!(
            explain(distance, &displaced.context)
                .ends_with("km from where this beneficiary is usually paid and from where this counter usually pays")
        );
    }

    /// Amounts near i64's limit (hand-written rows the parser accepts) neither overflow the
    /// beneficiary's own sum nor the steady check: the state goes on.
    #[test]
    fn amounts_near_the_limit_of_paise_do_not_overflow_a_beneficiarys_sums() {
        let mut state = FeatureState::new();
        let huge = i64::MAX / 2 + 1;
        for day in 1..=3 {
            let when = format!("2025-03-0{day} 10:00:00");
            let features = observe(&mut state, "B", "NSAP-OAP", huge, &when);
            assert!(features.values.iter().all(|v| v.is_finite()));
        }
        // The saturated sum no longer stands for one amount paid every time.
        let next = observe(&mut state, "B", "NSAP-OAP", 100_000, "2025-03-04 10:00:00");
        assert_eq!(next.context.steady_paise, None);
    }

    /// A change of the one amount a beneficiary was paid every time is judged by how rarely
    /// the scheme's steady payments change: a pension raised after months of the same amount
    /// stands out, a wage whose amounts change every week does not, and one earlier payment
    /// is no steady amount yet.
    #[test]
    fn a_steady_amounts_change_is_judged_by_how_rarely_the_schemes_steady_payments_change() {
        let mut state = FeatureState::new();
        for person in 0..400 {
            for month in 1..=4 {
                let when = format!("2025-{month:02}-03 10:00:00");
                let pensioner = format!("P{person}");
                state.warm(&in_scheme("NSAP-OAP", &pensioner, "B", "G", 100_000, &when));
                // Wages: one of two amounts, so a worker's steady run rarely lasts.
                let wage = 150_000 + 10_000 * ((person + month) % 2) as i64;
                let worker = format!("W{person}");
                state.warm(&in_scheme("MGNREGA", &worker, "C", "G", wage, &when));
            }
        }
        // New beneficiaries paid twice: steady, not yet judged.
        state.warm(&in_scheme(
            "NSAP-OAP",
            "N",
            "B",
            "G",
            100_000,
            "2025-04-03 10:00:00",
        ));
        let raised = observe(&mut state, "P1", "NSAP-OAP", 115_000, "2025-05-03 10:00:00");
        let usual = observe(&mut state, "P2", "NSAP-OAP", 100_000, "2025-05-03 10:00:00");
        let wage = observe(&mut state, "W1", "MGNREGA", 170_000, "2025-05-03 10:00:00");
        let once = observe(&mut state, "N", "NSAP-OAP", 115_000, "2025-05-03 10:00:00");
        // 400 pensioners × 2 judged repeats, none changed: about 1 in 800.
        assert!(
            (raised.steady_change - 1.9).abs() < 0.05,
            "{}",
            raised.steady_change
        );
        assert_eq!(usual.steady_change, 0.0);
        assert_eq!(wage.steady_change, 0.0, "wages change all the time");
        assert_eq!(
            once.steady_change, 0.0,
            "one earlier payment sets no steady amount"
        );
        assert_eq!(
            crate::features::explain_steady_change(&raised.context).as_deref(),
            Some(
                "₹1,150 after ₹1,000 in each of this beneficiary's 4 NSAP-OAP payments before; 0.1 % of NSAP-OAP payments to steady payers change the amount"
            )
        );
        assert_eq!(crate::features::explain_steady_change(&usual.context), None);
        // The raise counts: the next pensioner's change is a little less rare.
        let next = observe(&mut state, "P3", "NSAP-OAP", 115_000, "2025-05-03 10:00:00");
        assert!(next.steady_change < raised.steady_change);
        // P1 is no steady payer any more: another amount again is no change of one.
        let again = observe(&mut state, "P1", "NSAP-OAP", 100_000, "2025-06-03 10:00:00");
        assert_eq!(again.steady_change, 0.0);
    }

    #[test]
    fn burst_counts_same_scheme_payments_in_the_last_hour() {
        let mut state = FeatureState::new();
        // Another scheme paying out the same hour is an ordinary transfer day, not a burst.
        let mut pension = payment("B1", "A1", "G1", 100_000, "2025-03-03 09:55:00");
        pension.scheme = "NSAP-OAP".to_string();
        state.observe(&pension);
        let mut last = None;
        for minute in [0, 10, 20, 30] {
            last = Some(state.observe(&payment(
                "B1",
                "A1",
                "G1",
                200_000,
                &format!("2025-03-03 10:{minute:02}:00"),
            )));
        }
        let last = last.unwrap();
        assert_eq!(last.context.same_scheme_1h, 3);
        assert_eq!(last.context.beneficiary_payments_24h, 4);
        assert_eq!(
            explain(index("beneficiary_same_scheme_1h_log"), &last.context),
            "4th PM-KISAN payment to this beneficiary within an hour"
        );
    }

    #[test]
    fn shared_account_counts_distinct_other_beneficiaries() {
        let mut state = FeatureState::new();
        for person in 0..12 {
            state.observe(&payment(
                &format!("B{person}"),
                "RING",
                "G1",
                200_000,
                "2025-03-03 10:00:00",
            ));
        }
        let features = state.observe(&payment(
            "B99",
            "RING",
            "G1",
            200_000,
            "2025-03-04 10:00:00",
        ));
        assert_eq!(features.context.account_other_beneficiaries_30d, 12);
        assert_eq!(
            explain(
                index("account_other_beneficiaries_30d_log"),
                &features.context
            ),
            "account received payments for 13 beneficiaries this month"
        );
    }

    #[test]
    fn agent_burst_counts_distinct_beneficiaries() {
        let mut state = FeatureState::new();
        for person in 0..15 {
            state.observe(&payment(
                &format!("B{person}"),
                &format!("A{person}"),
                "G7",
                200_000,
                &format!("2025-03-03 11:{:02}:00", person * 2),
            ));
        }
        let features = state.observe(&payment("B50", "A50", "G7", 200_000, "2025-03-03 11:31:00"));
        assert_eq!(features.context.agent_beneficiaries_1h, 15);
        // 11:22, 11:24, 11:26 and 11:28 fall in the ten minutes before 11:31.
        assert_eq!(features.context.agent_payments_10min, 4);
    }

    /// All of a new counter's customers are new to it, and in a data set's first weeks so are
    /// a bank channel's: first visits are judged only at a counter seen for the history window.
    #[test]
    fn a_counter_seen_for_less_than_a_month_has_no_first_visits_judged_yet() {
        let mut state = FeatureState::new();
        for person in 0..8 {
            state.observe(&payment(
                &format!("B{person}"),
                "A",
                "HOME",
                200_000,
                "2025-01-02 11:00:00",
            ));
        }
        state.observe(&payment(
            "OPENER",
            "AO",
            "NEW",
            200_000,
            "2025-01-10 09:00:00",
        ));
        let visit = |state: &mut FeatureState, person: usize, when: &str| {
            state.observe(&payment(&format!("B{person}"), "A", "NEW", 200_000, when))
        };
        let slow = index("agent_first_visits_6h_vs_usual");
        let quick = index("agent_first_visits_15min");
        for person in 0..4 {
            let young = visit(&mut state, person, &format!("2025-02-08 10:0{person}:00"));
            assert_eq!(young.context.agent_first_visits_15min, 0);
            assert_eq!(young.context.agent_first_visits_6h, 0);
            assert_eq!((young.values[slow], young.values[quick]), (0.0, 0.0));
            assert!(young.context.agent_new_for_beneficiary);
        }
        // A month after its first payment, the same crowd of newcomers counts.
        for person in 4..8 {
            let settled = visit(&mut state, person, &format!("2025-02-09 10:0{person}:00"));
            assert_eq!(settled.context.agent_first_visits_15min, person as u32 - 3);
            assert!(settled.values[slow] > 0.0);
        }
    }

    #[test]
    fn first_visits_count_known_beneficiaries_new_to_the_agent_this_one_included() {
        let mut state = FeatureState::new();
        // Four people with a history at their own counters, and a regular of G7.
        for person in 0..4 {
            state.observe(&payment(
                &format!("B{person}"),
                &format!("A{person}"),
                "HOME",
                200_000,
                "2025-02-03 11:00:00",
            ));
        }
        // G7 has been paying for a month.
        state.observe(&payment(
            "REGULAR",
            "AR",
            "G7",
            200_000,
            "2025-01-31 11:00:00",
        ));
        let visit = |state: &mut FeatureState, who: &str, when: &str| {
            state.observe(&payment(who, &format!("A-{who}"), "G7", 200_000, when))
        };
        let first = visit(&mut state, "B0", "2025-03-03 11:00:00");
        assert_eq!(first.context.agent_first_visits_15min, 1);
        assert_eq!(
            visit(&mut state, "REGULAR", "2025-03-03 11:01:00")
                .context
                .agent_first_visits_15min,
            1,
            "a regular is not a first visit"
        );
        assert_eq!(
            visit(&mut state, "NEWCOMER", "2025-03-03 11:02:00")
                .context
                .agent_first_visits_15min,
            1,
            "a first payment ever is not a first visit"
        );
        visit(&mut state, "B1", "2025-03-03 11:05:00");
        let third = visit(&mut state, "B2", "2025-03-03 11:10:00");
        assert_eq!(third.context.agent_first_visits_15min, 3);
        let squared = third.values[index("agent_first_visits_15min")];
        assert_eq!(squared, 9.0, "each further first visit weighs more");
        assert_eq!(
            explain(index("agent_first_visits_15min"), &third.context),
            "agent paid 3 beneficiaries it had never served before within 15 minutes"
        );
        // A quarter hour after the first, it has aged out.
        let later = visit(&mut state, "B3", "2025-03-03 11:16:00");
        assert_eq!(later.context.agent_first_visits_15min, 3);
    }

    #[test]
    fn a_later_transaction_never_changes_an_earlier_ones_features() {
        let stream = sample_stream();
        let mut full = FeatureState::new();
        let all: Vec<Features> = stream.iter().map(|p| full.observe(p)).collect();
        for cut in [1, 17, 100, stream.len() - 1] {
            let mut prefix_state = FeatureState::new();
            let prefix: Vec<Features> = stream[..cut]
                .iter()
                .map(|p| prefix_state.observe(p))
                .collect();
            assert_eq!(
                prefix,
                all[..cut],
                "features of the first {cut} payments changed when later ones were added"
            );
        }
    }

    #[test]
    fn warm_then_stream_equals_replaying_everything_bit_for_bit() {
        let stream = sample_stream();
        let mut batch = FeatureState::new();
        let replayed: Vec<[u32; FEATURE_COUNT]> = stream
            .iter()
            .map(|p| batch.observe(p).values.map(f32::to_bits))
            .collect();
        let split = stream.len() / 2;
        let mut live = FeatureState::new();
        for p in &stream[..split] {
            live.warm(p);
        }
        for (p, expected) in stream[split..].iter().zip(&replayed[split..]) {
            assert_eq!(&live.observe(p).values.map(f32::to_bits), expected);
        }
    }

    #[test]
    fn a_usual_place_is_the_median_of_its_first_places_then_stays() {
        let mut place = UsualPlace::default();
        assert_eq!(place.median(), None);
        place.add((10.0, 70.0), 3);
        assert_eq!(place.median(), Some((10.0, 70.0)));
        place.add((20.0, 80.0), 3);
        assert_eq!(place.median(), Some((15.0, 75.0)));
        assert_eq!(place.seen(3), 2);
        place.add((11.0, 90.0), 3);
        assert_eq!(place.median(), Some((11.0, 80.0)));
        assert_eq!((place.seen(3), place.collected()), (3, &[][..]));
        place.add((50.0, 50.0), 3);
        assert_eq!(
            place.median(),
            Some((11.0, 80.0)),
            "a fixed median never moves"
        );
    }

    #[test]
    fn id_sets_keep_distinct_ids_in_first_seen_order_past_the_inline_three() {
        let mut ids = IdSet::default();
        for id in [7, 3, 7, 9, 3, 1, 12, 9] {
            ids.insert(id);
        }
        assert_eq!(&*ids, &[7, 3, 9, 1, 12]);
        assert!(ids.contains(&12) && !ids.contains(&2));
        assert_eq!([7, 3, 9, 1, 12].into_iter().collect::<IdSet>(), ids);
    }

    #[test]
    fn missing_columns_give_neutral_features() {
        let mut state = FeatureState::new();
        let bare = Payment {
            beneficiary_id: "B1".into(),
            account_id: None,
            agent_id: None,
            scheme: "UNKNOWN-SCHEME".into(),
            amount_paise: 12_345,
            time: parse_timestamp("2025-03-03 10:00:00").unwrap(),
            location: None,
        };
        state.observe(&bare);
        let features = state.observe(&bare);
        for name in [
            "hundreds_of_km_from_usual_place",
            "account_other_beneficiaries_30d_log",
            "account_new_for_beneficiary",
            "agent_payments_10min_log",
            "agent_rate_vs_usual_log",
            "agent_beneficiaries_1h_log",
            "agent_new_for_beneficiary",
            "agent_first_visits_15min",
        ] {
            assert_eq!(features.values[index(name)], 0.0, "{name}");
        }
        assert!(features.values.iter().all(|v| v.is_finite()));
    }
}
