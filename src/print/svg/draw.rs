//! Drawing primitives of a sheet: text, lines, polygons, images.

use super::*;

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
