//! Small formatting helpers shared by the pages, the API and the export.

use aegis_core::domain::format_rupees;
use aegis_core::features::Category;

/// Unix milliseconds as IST text, like the stored timestamps.
pub fn format_millis(millis: i64) -> String {
    aegis_core::time::format_ist(millis.div_euclid(1000))
}

/// Paise as `₹1,234.50`, or a dash when missing.
pub fn rupees(paise: Option<i64>) -> String {
    paise.map_or_else(|| "—".to_string(), format_rupees)
}

/// A count with Indian digit grouping (`12,34,567`).
pub fn group_digits(count: i64) -> String {
    format_rupees(count.saturating_mul(100)).replacen('₹', "", 1)
}

/// An anomaly score with four decimals, or a dash.
pub fn score(score: Option<f64>) -> String {
    score.map_or_else(|| "—".to_string(), |s| format!("{s:.4}"))
}

/// The CSS class of a reason category.
pub fn class_of(category: Category) -> &'static str {
    match category {
        Category::Amount => "cat-amount",
        Category::Timing => "cat-timing",
        Category::Location => "cat-location",
        Category::Duplicate => "cat-duplicate",
        Category::Burst => "cat-burst",
        Category::SharedAccount => "cat-shared_account",
        Category::Agent => "cat-agent",
        Category::Verdicts => "cat-verdicts",
        Category::Error => "cat-error",
    }
}

/// The CSS class of a category code read from the database; unknown values get the neutral one.
pub fn category_class(category: Option<&str>) -> &'static str {
    category
        .and_then(Category::from_code)
        .map_or("cat-none", class_of)
}

/// The CSS class of a status badge.
pub fn status_class(status: Option<&str>) -> &'static str {
    match status {
        Some("ANOMALY") => "status-anomaly",
        Some("NORMAL") => "status-normal",
        Some("ERROR") => "status-error",
        _ => "status-unscored",
    }
}

/// A category code as people read it: `shared_account` → `shared account`.
pub fn category_label(category: &str) -> String {
    Category::from_code(category)
        .map_or_else(|| category.replace('_', " "), |c| c.label().to_string())
}

/// Percent-encodes a query-string component (`application/x-www-form-urlencoded`).
pub fn url_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte))
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// `key=value&…` from pairs, skipping empty values.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    pairs
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", url_encode(&value)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(url_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            query_string([("q", "x y".to_string()), ("empty", String::new())]),
            "q=x+y"
        );
    }

    #[test]
    fn unknown_categories_get_the_neutral_class() {
        assert_eq!(category_class(Some("amount")), "cat-amount");
        assert_eq!(category_class(Some("\" onclick=")), "cat-none");
        assert_eq!(category_class(None), "cat-none");
    }
}
