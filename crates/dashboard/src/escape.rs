//! The HTML escaper of the templates (configured in `askama.toml`): the five characters that
//! matter in text and quoted attributes, as named entities.

use std::fmt::{self, Write};

/// Escapes `&`, `<`, `>`, `"` and `'`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Html;

fn entity(byte: u8) -> Option<&'static str> {
    match byte {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'"' => Some("&quot;"),
        b'\'' => Some("&#39;"),
        _ => None,
    }
}

impl askama::filters::Escaper for Html {
    fn write_escaped_str<W: Write>(&self, mut dest: W, string: &str) -> fmt::Result {
        let mut last = 0;
        for (index, byte) in string.bytes().enumerate() {
            // All five are ASCII, so `index` is always a char boundary here.
            if let Some(entity) = entity(byte) {
                dest.write_str(&string[last..index])?;
                dest.write_str(entity)?;
                last = index + 1;
            }
        }
        dest.write_str(&string[last..])
    }
}

/// Escapes `text` for HTML (what the templates do to every value).
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    askama::filters::Escaper::write_escaped_str(&Html, &mut escaped, text)
        .expect("writing to a String");
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_special_characters_become_named_entities() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a> ₹"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt; ₹"
        );
    }
}
