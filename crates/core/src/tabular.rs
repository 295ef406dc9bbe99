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

#[cfg(test)]
mod tests {
    use super::*;

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
