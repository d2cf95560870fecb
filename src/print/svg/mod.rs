//! A small SVG writer: the page is drawn as SVG text (readable in tests, rendered by usvg), in
//! points (1/72 in), y down.

use std::fmt::Write;

/// The font family every text is set in (Noto Sans CJK, embedded in the PDF).
pub const FONT: &str = "Noto Sans CJK SC";

/// An SVG document being written.
pub struct Svg {
    pub out: String,
    clip: usize,
}

/// Escape text for XML content and attribute values.
#[must_use]
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Approximate advance of `s` at `size` (CJK 1 em, digits and Latin about 0.56 em): enough to
/// lay out lines and fit labels.
#[must_use]
pub fn text_width(s: &str, size: f64) -> f64 {
    s.chars()
        .map(|c| {
            if c.is_ascii() {
                if c == ' ' { 0.3 } else { 0.56 }
            } else {
                1.0
            }
        })
        .sum::<f64>()
        * size
}

/// Break `s` into lines no wider than `width` at `size` (between any two CJK characters, at
/// spaces and after 、，between Latin words).
#[must_use]
pub fn wrap(s: &str, size: f64, width: f64) -> Vec<String> {
    // pieces that stay together: a Latin word with its trailing space, or one other character
    let mut pieces: Vec<String> = Vec::new();
    for ch in s.chars() {
        match pieces.last_mut() {
            Some(p) if ch.is_ascii() && p.is_ascii() && !p.ends_with(' ') => {
                p.push(ch);
            }
            _ => pieces.push(ch.to_string()),
        }
    }
    let mut lines = Vec::new();
    let mut cur = String::new();
    for piece in pieces {
        let next = format!("{cur}{piece}");
        if text_width(next.trim_end(), size) > width && !cur.trim().is_empty() {
            lines.push(cur.trim_end().to_string());
            cur = piece.trim_start().to_string();
        } else {
            cur = next;
        }
    }
    if !cur.trim().is_empty() {
        lines.push(cur.trim_end().to_string());
    }
    lines
}

/// Format a coordinate compactly (two decimals: 1/7200 in).
#[must_use]
pub fn n(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    if r == r.trunc() {
        format!("{r:.0}")
    } else {
        format!("{r}")
    }
}

mod draw;
pub use draw::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn escapes_and_wraps() {
        assert_eq!(esc("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot; ");
        let lines = wrap("东至 解放路、第二网格、第三网格", 10.0, 80.0);
        assert!(lines.len() >= 2, "{lines:?}");
        assert!(
            lines.iter().all(|l| text_width(l, 10.0) <= 80.0),
            "{lines:?}"
        );
        assert_eq!(
            lines.concat().replace(' ', ""),
            "东至解放路、第二网格、第三网格"
        );
        // Latin words are not broken
        let lines = wrap("东至 第二十四网格、Hudson Boulevard West", 11.0, 180.0);
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with("Hudson") || l.starts_with("Hudson")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .all(|l| !l.contains("Bo") || l.contains("Boulevard")),
            "{lines:?}"
        );
        assert_eq!(n(1.0), "1");
        assert_eq!(n(1.256), "1.26");
    }
}
