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

impl Svg {
    /// A page of `w` × `h` points drawn in a `vw` × `vh` view box (a larger paper scales the
    /// same drawing).
    #[must_use]
    pub fn new(w: f64, h: f64, vw: f64, vh: f64) -> Svg {
        let mut out = String::with_capacity(1 << 16);
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{}" height="{}" viewBox="0 0 {} {}" font-family="{FONT}">"#,
            n(w),
            n(h),
            n(vw),
            n(vh)
        );
        let _ = write!(
            out,
            r##"<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>"##,
            n(vw),
            n(vh)
        );
        Svg { out, clip: 0 }
    }

    pub fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, style: &str) {
        let _ = write!(
            self.out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" {style}/>"#,
            n(x),
            n(y),
            n(w),
            n(h)
        );
    }

    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), style: &str) {
        let _ = write!(
            self.out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" {style}/>"#,
            n(a.0),
            n(a.1),
            n(b.0),
            n(b.1)
        );
    }

    pub fn path(&mut self, d: &str, style: &str) {
        if !d.is_empty() {
            let _ = write!(self.out, r#"<path d="{d}" {style}/>"#);
        }
    }

    /// Text at (x, y) (baseline); `anchor` start, middle or end; `extra` more attributes.
    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, extra: &str, s: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{}" y="{}" font-size="{}" text-anchor="{anchor}" {extra}>{}</text>"#,
            n(x),
            n(y),
            n(size),
            esc(s)
        );
    }

    /// Text with a white halo, for labels over the map.
    pub fn label(&mut self, x: f64, y: f64, size: f64, rotate: f64, fill: &str, s: &str) {
        let tr = if rotate.abs() > 0.5 {
            format!(r#" transform="rotate({} {} {})""#, n(rotate), n(x), n(y))
        } else {
            String::new()
        };
        let _ = write!(
            self.out,
            r##"<text x="{}" y="{}" font-size="{}" text-anchor="middle" dominant-baseline="central" fill="{fill}" stroke="#ffffff" stroke-width="{}" stroke-linejoin="round" paint-order="stroke"{tr}>{}</text>"##,
            n(x),
            n(y),
            n(size),
            n(size * 0.28),
            esc(s)
        );
    }

    /// Start a group clipped to a rectangle; end it with [`Svg::end`].
    pub fn clip_rect(&mut self, x: f64, y: f64, w: f64, h: f64) {
        self.clip += 1;
        let id = self.clip;
        let _ = write!(
            self.out,
            r#"<clipPath id="c{id}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath><g clip-path="url(#c{id})">"#,
            n(x),
            n(y),
            n(w),
            n(h)
        );
    }

    pub fn end(&mut self) {
        self.out.push_str("</g>");
    }

    /// An embedded JPEG or PNG, covering the box (cropped to it, centred).
    pub fn image(&mut self, x: f64, y: f64, w: f64, h: f64, mime: &str, bytes: &[u8]) {
        self.clip_rect(x, y, w, h);
        let _ = write!(
            self.out,
            r#"<image x="{}" y="{}" width="{}" height="{}" preserveAspectRatio="xMidYMid slice" xlink:href="data:{mime};base64,{}"/>"#,
            n(x),
            n(y),
            n(w),
            n(h),
            base64(bytes)
        );
        self.end();
    }

    #[must_use]
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// Standard base64 (RFC 4648, with padding).
#[must_use]
pub fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let v = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                o.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

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
