//! What every CSV import shares (the payments export in `generate`, the verdict record in the
//! dashboard): matching a header row to the columns the import knows, and telling the user
//! which lines were bad.

use std::collections::HashMap;
use std::path::Path;

/// Where each known column sits in a file's header row.
#[derive(Debug, Clone)]
pub struct Columns {
    index: HashMap<&'static str, usize>,
}

/// A header row matched against the known columns.
#[derive(Debug, Clone)]
pub struct Header {
    pub columns: Columns,
    /// Headers that name no known column, as written (reported and ignored).
    pub unknown: Vec<String>,
    /// Required columns the header lacks.
    pub missing: Vec<&'static str>,
}

/// Matches `headers` to `required` and `optional` column names: case-insensitively, ignoring
/// surrounding spaces and a byte-order mark.
pub fn match_header<'h>(
    headers: impl IntoIterator<Item = &'h str>,
    required: &[&'static str],
    optional: &[&'static str],
) -> Header {
    let mut index = HashMap::new();
    let mut unknown = Vec::new();
    for (position, header) in headers.into_iter().enumerate() {
        let name = header
            .trim()
            .trim_start_matches('\u{feff}')
            .to_ascii_lowercase();
        match required
            .iter()
            .chain(optional)
            .find(|known| **known == name)
        {
            Some(known) => {
                index.insert(*known, position);
            }
            None => unknown.push(header.to_string()),
        }
    }
    let missing = required
        .iter()
        .copied()
        .filter(|name| !index.contains_key(name))
        .collect();
    Header {
        columns: Columns { index },
        unknown,
        missing,
    }
}

impl Columns {
    /// The trimmed, non-empty value of column `name` in a row (`value_at` reads a position).
    pub fn get<'r>(
        &self,
        name: &str,
        value_at: impl Fn(usize) -> Option<&'r str>,
    ) -> Option<&'r str> {
        self.index
            .get(name)
            .and_then(|&position| value_at(position))
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }
}

/// Prints the first 20 bad rows as `file:line: reason` on stderr, then how many more there are.
pub fn report_bad_rows<'a>(file: &Path, rows: impl ExactSizeIterator<Item = (u64, &'a str)>) {
    let total = rows.len();
    for (line, reason) in rows.take(20) {
        eprintln!("{}:{line}: {reason}", file.display());
    }
    if total > 20 {
        eprintln!("… and {} more bad rows", total - 20);
    }
}

/// When a header row read as one column holds another separator (a spreadsheet's export with
/// `;` or tabs), the sentence that says so, to add to "lacks required columns"; else empty.
pub fn separator_hint<'h>(headers: impl IntoIterator<Item = &'h str>) -> String {
    let headers: Vec<&str> = headers.into_iter().collect();
    let [only] = headers.as_slice() else {
        return String::new();
    };
    match [(';', "semicolons"), ('\t', "tabs"), ('|', "bars")]
        .into_iter()
        .find(|(separator, _)| only.contains(*separator))
    {
        Some((_, name)) => {
            format!(" (the file seems separated by {name}, not commas: save it as CSV with commas)")
        }
        None => String::new(),
    }
}

/// What is wrong with a record's shape, beyond its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordProblem {
    /// More fields than the header: a value with an unquoted comma (₹1,200 read as 1 and 200).
    /// The row is bad; the rest of the file is fine.
    TooManyFields(String),
    /// A quote that is never closed made several lines one value: the rows on those lines
    /// would be lost without a word, and where the quote was meant to end cannot be known. The
    /// whole file is refused, `--skip-bad` or not.
    UnclosedQuote(String),
}

/// Checks the record read from `first_line` up to (not including) `next_line` against a header
/// of `header_width` columns (see [`RecordProblem`]). A quoted value may hold line breaks (an
/// address); one whose lines look like rows of the file (a separator for every column) is an
/// unclosed quote.
pub fn check_record<'r>(
    fields: impl IntoIterator<Item = &'r str>,
    header_width: usize,
    first_line: u64,
    next_line: u64,
) -> Result<(), RecordProblem> {
    let fields: Vec<&str> = fields.into_iter().collect();
    if next_line > first_line + 1 && header_width >= 2 {
        let swallowed = fields.iter().any(|field| {
            field
                .lines()
                .skip(1)
                .any(|line| line.matches(',').count() + 1 >= header_width)
        });
        if swallowed {
            return Err(RecordProblem::UnclosedQuote(format!(
                "a quote opened on line {first_line} is not closed until line {}, so the rows \
                 on those lines read as one value and would be lost: close the quote (a quote \
                 inside a quoted value is written twice, \"\") and import the file again",
                next_line - 1
            )));
        }
    }
    if fields.len() > header_width {
        return Err(RecordProblem::TooManyFields(format!(
            "this line has {} values and the header {header_width}: a value with a comma in it \
             (an amount written 1,200) must be quoted (\"1,200\")",
            fields.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_of_another_separator_says_so() {
        assert!(separator_hint(["beneficiary_id;amount;timestamp;scheme"]).contains("semicolons"));
        assert!(separator_hint(["beneficiary_id\tamount"]).contains("tabs"));
        assert_eq!(separator_hint(["beneficiary_id", "amount"]), "");
    }

    #[test]
    fn a_record_with_too_many_values_or_swallowed_rows_is_named() {
        assert_eq!(check_record(["a", "b", "c"], 3, 2, 3), Ok(()));
        // An address over two lines is a value, not a problem.
        assert_eq!(
            check_record(["a", "12 Main Road\nWard 4", "c"], 3, 2, 4),
            Ok(())
        );
        let Err(RecordProblem::TooManyFields(reason)) = check_record(["R1", "1", "200"], 2, 5, 6)
        else {
            panic!("an unquoted comma in an amount");
        };
        assert!(reason.contains("3 values and the header 2"), "{reason}");
        let swallowed = "Paid late\nR11,B2,MGNREGA,100,2025-03-01 10:00:00\nR12,B3,MGNREGA,100,2025-03-01 11:00:00";
        let Err(RecordProblem::UnclosedQuote(reason)) =
            check_record(["R10", "B1", "MGNREGA", "100", swallowed], 5, 10, 13)
        else {
            panic!("rows swallowed by a quote");
        };
        assert!(
            reason.contains("line 10 is not closed until line 12"),
            "{reason}"
        );
    }

    #[test]
    fn headers_match_in_any_case_and_order_and_the_rest_is_reported() {
        let header = match_header(
            ["\u{feff}Amount ", "NOTE", "beneficiary_id", "branch"],
            &["beneficiary_id", "amount", "scheme"],
            &["note"],
        );
        assert_eq!(header.missing, vec!["scheme"]);
        assert_eq!(header.unknown, vec!["branch".to_string()]);
        let row = ["  12  ", "", "B1", "x"];
        let at = |i: usize| row.get(i).copied();
        assert_eq!(header.columns.get("amount", at), Some("12"));
        assert_eq!(header.columns.get("note", at), None, "empty is absent");
        assert_eq!(header.columns.get("beneficiary_id", at), Some("B1"));
    }
}
