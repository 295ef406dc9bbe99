//! `--from-csv`: importing a real export into `transactions`, all or nothing; with `--append`,
//! adding tomorrow's export to today's database, skipping payments it already holds.
//!
//! Columns (header row, any order, case-insensitive): required `beneficiary_id`, `amount`
//! (rupees, decimal), `timestamp` (`YYYY-MM-DD HH:MM:SS` IST, or RFC 3339), `scheme`; optional
//! `transaction_ref`, `account_id`, `agent_id`, `latitude`, `longitude`, `district`,
//! `is_anomaly` (0/1), `fraud_type`. Unknown columns are reported and ignored.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use aegis_core::domain::NewTransaction;
use aegis_core::engine::{Loader, Store};
use aegis_core::store::PaymentIdentity;
use aegis_core::tabular::{self, Columns};

use aegis_core::ingest::{self, OPTIONAL, REQUIRED};

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Line number in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
    pub raw: Vec<String>,
}

/// What an import does with the rows already in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Into an empty database (the caller refuses a non-empty one): secondary indexes are
    /// dropped and rebuilt once, the fastest bulk load.
    Fresh,
    /// Delete the existing transactions in the same transaction (`--force`).
    Replace,
    /// Add to the existing transactions (`--append`). A row whose `transaction_ref` is already
    /// stored, or repeats an earlier row of the file, is skipped and counted, so importing the
    /// same daily file twice adds nothing. Indexes are kept: rebuilding them would cost time in
    /// proportion to the whole database, not to the file.
    Append,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    /// `--append`: rows skipped because their `transaction_ref` was already stored or repeated
    /// in the file.
    pub already_present: usize,
    /// `--append`: imported rows without a `transaction_ref`, which a second import of the same
    /// file would add again.
    pub without_ref: usize,
    pub rejected: Vec<Rejected>,
    pub unknown_columns: Vec<String>,
    pub rejects_file: Option<PathBuf>,
}

fn parse_row(columns: &Columns, record: &csv::StringRecord) -> Result<NewTransaction, String> {
    ingest::validate(
        |name| columns.get(name, |position| record.get(position)),
        ingest::Source::Export,
    )
    .map_err(|error| error.reason)
}

/// Reads and validates a whole CSV export: the good rows and the rejected ones.
pub fn read_csv(csv_path: &Path) -> anyhow::Result<(Vec<NewTransaction>, Vec<Rejected>)> {
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    let mut reader = CsvRows::open(csv_path)?;
    while let Some(row) = reader.next_row() {
        match row {
            Ok(row) => rows.push(row),
            Err(reject) => rejected.push(reject),
        }
    }
    reader.refuse_if_unreadable(csv_path)?;
    Ok((rows, rejected))
}

/// A CSV export read row by row.
struct CsvRows {
    reader: csv::Reader<std::io::BufReader<File>>,
    columns: Columns,
    headers: csv::StringRecord,
    unknown_columns: Vec<String>,
    record: csv::StringRecord,
    /// Line of the row [`next_row`](Self::next_row) returned last.
    line: u64,
    /// Why the file cannot be read on (an unclosed quote): reading stopped there.
    unreadable: Option<String>,
}

impl CsvRows {
    fn open(csv_path: &Path) -> anyhow::Result<CsvRows> {
        let file =
            File::open(csv_path).with_context(|| format!("opening {}", csv_path.display()))?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(std::io::BufReader::new(file));
        let headers = reader
            .headers()
            .with_context(|| format!("reading the header row of {}", csv_path.display()))?
            .clone();
        let header = tabular::match_header(headers.iter(), &REQUIRED, &OPTIONAL);
        if !header.missing.is_empty() {
            bail!(
                "{} lacks required column(s) {}: the header must name beneficiary_id, amount, timestamp and scheme{}",
                csv_path.display(),
                header.missing.join(", "),
                tabular::separator_hint(headers.iter())
            );
        }
        Ok(CsvRows {
            reader,
            columns: header.columns,
            headers,
            unknown_columns: header.unknown,
            record: csv::StringRecord::new(),
            line: 1,
            unreadable: None,
        })
    }

    /// Fails, naming the file and the lines, when reading stopped at an unclosed quote: none
    /// of it may be stored, whatever `--skip-bad` says.
    fn refuse_if_unreadable(&self, csv_path: &Path) -> anyhow::Result<()> {
        match &self.unreadable {
            Some(problem) => bail!("{}: {problem}; nothing was imported", csv_path.display()),
            None => Ok(()),
        }
    }

    /// The next row, parsed or rejected with its line number; None at the end.
    fn next_row(&mut self) -> Option<Result<NewTransaction, Rejected>> {
        if self.unreadable.is_some() {
            return None;
        }
        let line = self.reader.position().line();
        self.line = line;
        match self.reader.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let next_line = self.reader.position().line();
                let shape =
                    tabular::check_record(self.record.iter(), self.headers.len(), line, next_line);
                let checked = match shape {
                    Ok(()) => parse_row(&self.columns, &self.record),
                    Err(tabular::RecordProblem::TooManyFields(reason)) => Err(reason),
                    Err(tabular::RecordProblem::UnclosedQuote(problem)) => {
                        self.unreadable = Some(problem);
                        return None;
                    }
                };
                Some(checked.map_err(|reason| Rejected {
                    line,
                    reason,
                    raw: self.record.iter().map(str::to_string).collect(),
                }))
            }
            Err(error) => Some(Err(Rejected {
                line,
                reason: format!("unreadable CSV: {error}"),
                raw: Vec::new(),
            })),
        }
    }

    /// Rejects the row [`next_row`](Self::next_row) returned last, which parsed but cannot be
    /// stored.
    fn reject(&self, reason: String) -> Rejected {
        Rejected {
            line: self.line,
            reason,
            raw: self.record.iter().map(str::to_string).collect(),
        }
    }
}

/// Imports `csv_path` into the database in one transaction. Without `skip_bad`, any bad row
/// fails the whole import and nothing is written; with it, good rows are imported and rejects
/// are written to `<csv>.rejects.csv`. `mode` says what happens to the rows already stored
/// ([`ImportMode`]); a failed import leaves them as they were.
pub fn import_csv(
    store: &mut Store,
    csv_path: &Path,
    skip_bad: bool,
    mode: ImportMode,
) -> anyhow::Result<ImportReport> {
    let mut reader = CsvRows::open(csv_path)?;
    let mut report = ImportReport {
        unknown_columns: reader.unknown_columns.clone(),
        ..ImportReport::default()
    };
    // The loader holds the engine's write lock from the start: an appending import decides
    // what is already present and inserts under it, so a concurrent writer cannot slip the
    // same payment in between.
    let mut load = store.loader()?;
    match mode {
        ImportMode::Replace => load.clear_data()?,
        // Checked before the lock by the caller; again under it, before loading in bulk.
        ImportMode::Fresh => crate::still_empty(load.as_mut(), &"the database")?,
        ImportMode::Append => {}
    }
    // As in generate: indexes are rebuilt once at the end, inside the same transaction.
    if mode != ImportMode::Append {
        load.begin_bulk()?;
    }
    // Each ref's first line: a ref repeated within the file is skipped by an appending import
    // (an overlapping extract) and refused otherwise (two payments cannot share a reference).
    let mut seen_refs: HashMap<String, (u64, PaymentIdentity)> = HashMap::new();
    let mut batch = Vec::with_capacity(10_000);
    // An appending import's rows, each with its line and fields, to name a row whose ref is
    // stored for a different payment.
    let mut origins: Vec<Rejected> = Vec::new();
    while let Some(row) = reader.next_row() {
        match row {
            Ok(row) => {
                match &row.transaction_ref {
                    Some(reference) => {
                        if let Some((first, payment)) = seen_refs.get(reference) {
                            // An overlapping extract repeats a payment; a ref on another
                            // payment (a corrected amount) is named, never dropped.
                            let this = PaymentIdentity::of(&row);
                            if mode == ImportMode::Append && *payment == this {
                                report.already_present += 1;
                            } else if mode == ImportMode::Append {
                                report.rejected.push(reader.reject(format!(
                                    "transaction_ref {reference:?} repeats line {first} for a different payment ({}), not {}: give a new payment its own ref",
                                    payment.describe(),
                                    this.describe()
                                )));
                            } else {
                                report.rejected.push(reader.reject(format!(
                                    "transaction_ref {reference:?} repeats line {first}: two payments cannot share a reference"
                                )));
                            }
                            continue;
                        }
                        seen_refs
                            .insert(reference.clone(), (reader.line, PaymentIdentity::of(&row)));
                    }
                    None if mode == ImportMode::Append => report.without_ref += 1,
                    None => {}
                }
                if mode == ImportMode::Append {
                    origins.push(reader.reject(String::new()));
                }
                batch.push(row);
                if batch.len() == batch.capacity() {
                    insert_new(load.as_mut(), &mut batch, &mut origins, mode, &mut report)?;
                }
            }
            Err(reject) => report.rejected.push(reject),
        }
    }
    insert_new(load.as_mut(), &mut batch, &mut origins, mode, &mut report)?;
    // Dropping the loader on the way out rolls everything back.
    reader.refuse_if_unreadable(csv_path)?;
    if !report.rejected.is_empty() && !skip_bad {
        // Dropping the loader rolls it back: nothing of this file is left behind.
        drop(load);
        report.rejected.sort_by_key(|reject| reject.line);
        report.imported = 0;
        report.already_present = 0;
        report.without_ref = 0;
        return Ok(report);
    }
    report.rejected.sort_by_key(|reject| reject.line);
    if mode == ImportMode::Replace && report.imported == 0 {
        // Dropping the loader rolls the clearing back.
        bail!(
            "{} has no row to import ({} rejected), and replacing the stored payments with it \
             would empty the database: nothing was changed",
            csv_path.display(),
            report.rejected.len()
        );
    }
    load.finish()?;
    // Written before the commit (a full disk stops the import, not the file), named after it:
    // a rejects file describes an import that happened.
    let rejects = if report.rejected.is_empty() {
        None
    } else {
        let path = rejects_path(csv_path);
        let mut temp = path.clone().into_os_string();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        write_rejects(&temp, &reader.headers, &report.rejected)?;
        Some((temp, path))
    };
    if let Err(error) = load.commit() {
        if let Some((temp, _)) = &rejects {
            let _ = std::fs::remove_file(temp);
        }
        return Err(error.into());
    }
    if let Some((temp, path)) = rejects {
        std::fs::rename(&temp, &path).with_context(|| {
            format!(
                "the import is stored, but its rejects could not be named {} (they are in {})",
                path.display(),
                temp.display()
            )
        })?;
        report.rejects_file = Some(path);
    }
    Ok(report)
}

/// Inserts `batch` and empties it (and `origins`, its rows' lines when appending). An
/// appending import first drops the rows whose ref is already stored, asking the database once
/// per batch: counted as already present when the stored payment is the same one (an
/// overlapping export), rejected by line when it is a different one (a reused or corrected
/// ref, which must not vanish silently: a corrected amount is a new payment to the model).
fn insert_new(
    load: &mut dyn Loader,
    batch: &mut Vec<NewTransaction>,
    origins: &mut Vec<Rejected>,
    mode: ImportMode,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    if mode == ImportMode::Append {
        let refs: Vec<&str> = batch
            .iter()
            .filter_map(|row| row.transaction_ref.as_deref())
            .collect();
        let stored = load.stored_payments(&refs)?;
        if !stored.is_empty() {
            let mut keep = Vec::with_capacity(batch.len());
            for (row, origin) in batch.drain(..).zip(origins.drain(..)) {
                let Some(reference) = row.transaction_ref.as_deref() else {
                    keep.push(row);
                    continue;
                };
                match stored.get(reference) {
                    None => keep.push(row),
                    Some(payment) if *payment == PaymentIdentity::of(&row) => {
                        report.already_present += 1;
                    }
                    Some(payment) => report.rejected.push(Rejected {
                        reason: format!(
                            "transaction_ref {reference:?} is already stored for a different payment ({}), not {}: give a new payment its own ref, or leave the line out",
                            payment.describe(),
                            PaymentIdentity::of(&row).describe()
                        ),
                        ..origin
                    }),
                }
            }
            *batch = keep;
        }
        origins.clear();
    }
    load.insert(batch)?;
    report.imported += batch.len();
    batch.clear();
    Ok(())
}

/// Where `--skip-bad` writes rejected rows.
pub fn rejects_path(csv_path: &Path) -> PathBuf {
    let mut name = csv_path.file_stem().unwrap_or_default().to_os_string();
    name.push(".rejects.csv");
    csv_path.with_file_name(name)
}

fn write_rejects(
    path: &Path,
    headers: &csv::StringRecord,
    rejected: &[Rejected],
) -> anyhow::Result<()> {
    // A rejected row may have more values than the header (an unquoted comma): kept as read.
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut header: Vec<&str> = vec!["line", "reason"];
    header.extend(headers.iter());
    writer.write_record(&header)?;
    for reject in rejected {
        let mut row = vec![reject.line.to_string(), reject.reason.clone()];
        row.extend(reject.raw.iter().cloned());
        writer.write_record(&row)?;
    }
    writer.flush()?;
    std::io::stdout().flush().ok();
    Ok(())
}
