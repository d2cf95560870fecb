//! CQL2-text filters (OGC API – Features Part 3): Basic CQL2 — comparisons (`=`, `<>`, `<`,
//! `<=`, `>`, `>=`), `IS [NOT] NULL`, `AND`, `OR`, `NOT`, parentheses — plus `[NOT] IN`,
//! `[NOT] BETWEEN`, `[NOT] LIKE` and the spatial predicate `S_INTERSECTS` with a WKT literal
//! (POINT, LINESTRING, POLYGON, MULTIPOLYGON) or `BBOX(minx, miny, maxx, maxy)`, in CRS84.
//!
//! Evaluation follows SQL's three-valued logic: a comparison with a missing value is unknown,
//! and only rows for which the whole filter is true are kept — the rows an SQL `WHERE` keeps.

use geo::{Coord, Geometry, Intersects, LineString, MultiPolygon, Point, Polygon, Rect};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Scalar, CmpOp, Scalar),
    IsNull(Scalar, bool),
    In(Scalar, Vec<Scalar>, bool),
    Between(Scalar, Scalar, Scalar, bool),
    Like(Scalar, String, bool),
    Intersects(Geometry),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A property or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Prop(String),
    Text(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Quoted(String),
    Text(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        match ch {
            _ if ch.is_whitespace() => i += 1,
            '(' => (out.push(Tok::LParen), i += 1).1,
            ')' => (out.push(Tok::RParen), i += 1).1,
            ',' => (out.push(Tok::Comma), i += 1).1,
            '\'' | '"' => {
                let mut t = String::new();
                i += 1;
                loop {
                    match c.get(i) {
                        None => return Err(format!("unterminated {ch}…{ch} at character {i}")),
                        Some(&q) if q == ch && c.get(i + 1) == Some(&ch) => {
                            t.push(ch);
                            i += 2;
                        }
                        Some(&q) if q == ch => {
                            i += 1;
                            break;
                        }
                        Some(&q) => {
                            t.push(q);
                            i += 1;
                        }
                    }
                }
                out.push(if ch == '\'' {
                    Tok::Text(t)
                } else {
                    Tok::Quoted(t)
                });
            }
            '<' | '>' | '=' | '!' => {
                let two: String = c[i..(i + 2).min(c.len())].iter().collect();
                let op = match two.as_str() {
                    "<=" => "<=",
                    ">=" => ">=",
                    "<>" | "!=" => "<>",
                    _ => match ch {
                        '<' => "<",
                        '>' => ">",
                        '=' => "=",
                        _ => return Err(format!("unexpected '!' at character {i}")),
                    },
                };
                i += op.len().min(two.len());
                out.push(Tok::Op(op));
            }
            _ if ch.is_ascii_digit()
                || ((ch == '-' || ch == '+' || ch == '.') && i + 1 < c.len()) =>
            {
                let start = i;
                i += 1;
                while i < c.len()
                    && (c[i].is_ascii_digit()
                        || matches!(c[i], '.' | 'e' | 'E')
                        || (matches!(c[i], '-' | '+') && matches!(c[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let t: String = c[start..i].iter().collect();
                out.push(Tok::Num(t.parse().map_err(|_| {
                    format!("{t:?} at character {start} is not a number")
                })?));
            }
            _ if ch.is_alphabetic() || ch == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || matches!(c[i], '_' | ':' | '.')) {
                    i += 1;
                }
                out.push(Tok::Ident(c[start..i].iter().collect()));
            }
            _ => return Err(format!("unexpected {ch:?} at character {i}")),
        }
    }
    Ok(out)
}

struct Parser {
    t: Vec<Tok>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.t.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn keyword(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(k)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, t: &Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(ref x) if x == t => Ok(()),
            other => Err(format!("expected {what}, found {}", show(other.as_ref()))),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.keyword("OR") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.keyword("AND") {
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::LParen) {
            self.i += 1;
            let e = self.or()?;
            self.expect(&Tok::RParen, "')'")?;
            return Ok(e);
        }
        if self.keyword("S_INTERSECTS") {
            return self.intersects();
        }
        let left = self.scalar()?;
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !self.keyword("NULL") {
                return Err(format!(
                    "expected NULL after IS, found {}",
                    show(self.peek())
                ));
            }
            return Ok(Expr::IsNull(left, negated));
        }
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            self.expect(&Tok::LParen, "'(' after IN")?;
            let mut list = vec![self.scalar()?];
            while self.peek() == Some(&Tok::Comma) {
                self.i += 1;
                list.push(self.scalar()?);
            }
            self.expect(&Tok::RParen, "')' closing IN")?;
            return Ok(Expr::In(left, list, negated));
        }
        if self.keyword("BETWEEN") {
            let lo = self.scalar()?;
            if !self.keyword("AND") {
                return Err("expected AND in BETWEEN … AND …".into());
            }
            return Ok(Expr::Between(left, lo, self.scalar()?, negated));
        }
        if self.keyword("LIKE") {
            return match self.next() {
                Some(Tok::Text(p)) => Ok(Expr::Like(left, p, negated)),
                other => Err(format!(
                    "expected a 'pattern' after LIKE, found {}",
                    show(other.as_ref())
                )),
            };
        }
        if negated {
            return Err("expected IN, BETWEEN or LIKE after NOT".into());
        }
        let op = match self.next() {
            Some(Tok::Op(o)) => match o {
                "=" => CmpOp::Eq,
                "<>" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            },
            other => {
                return Err(format!(
                    "expected a comparison (=, <>, <, <=, >, >=, IS NULL, IN, BETWEEN, LIKE), found {}",
                    show(other.as_ref())
                ));
            }
        };
        Ok(Expr::Cmp(left, op, self.scalar()?))
    }
    fn scalar(&mut self) -> Result<Scalar, String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(Scalar::Num(n)),
            Some(Tok::Text(t)) => Ok(Scalar::Text(t)),
            Some(Tok::Quoted(q)) => Ok(Scalar::Prop(q)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("TRUE") => Ok(Scalar::Bool(true)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("FALSE") => Ok(Scalar::Bool(false)),
            Some(Tok::Ident(w)) => Ok(Scalar::Prop(w)),
            other => Err(format!(
                "expected a property or a value, found {}",
                show(other.as_ref())
            )),
        }
    }
    fn intersects(&mut self) -> Result<Expr, String> {
        self.expect(&Tok::LParen, "'(' after S_INTERSECTS")?;
        let (a_geom, g) = if matches!(self.peek(), Some(Tok::Ident(w)) if is_geometry_prop(w)) {
            self.i += 1;
            self.expect(&Tok::Comma, "','")?;
            (true, self.geometry()?)
        } else {
            let g = self.geometry()?;
            self.expect(&Tok::Comma, "','")?;
            (false, g)
        };
        if !a_geom {
            match self.next() {
                Some(Tok::Ident(w)) if is_geometry_prop(&w) => {}
                other => {
                    return Err(format!(
                        "S_INTERSECTS compares the `geometry` property with a literal; found {}",
                        show(other.as_ref())
                    ));
                }
            }
        }
        self.expect(&Tok::RParen, "')' closing S_INTERSECTS")?;
        Ok(Expr::Intersects(g))
    }
    fn numbers(&mut self, n: usize) -> Result<Vec<f64>, String> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            match self.next() {
                Some(Tok::Num(x)) if x.is_finite() => v.push(x),
                other => {
                    return Err(format!(
                        "expected a coordinate, found {}",
                        show(other.as_ref())
                    ));
                }
            }
        }
        Ok(v)
    }
    fn coords(&mut self) -> Result<Vec<Coord>, String> {
        self.expect(&Tok::LParen, "'(' opening coordinates")?;
        let mut out = Vec::new();
        loop {
            let xy = self.numbers(2)?;
            out.push(Coord { x: xy[0], y: xy[1] });
            match self.next() {
                Some(Tok::Comma) => {}
                Some(Tok::RParen) => return Ok(out),
                other => {
                    return Err(format!(
                        "expected ',' or ')' in coordinates, found {}",
                        show(other.as_ref())
                    ));
                }
            }
        }
    }
    fn polygon(&mut self) -> Result<Polygon, String> {
        self.expect(&Tok::LParen, "'(' opening a polygon")?;
        let mut rings = vec![LineString(self.coords()?)];
        while self.peek() == Some(&Tok::Comma) {
            self.i += 1;
            rings.push(LineString(self.coords()?));
        }
        self.expect(&Tok::RParen, "')' closing a polygon")?;
        let shell = rings.remove(0);
        Ok(Polygon::new(shell, rings))
    }
    fn geometry(&mut self) -> Result<Geometry, String> {
        let kind = match self.next() {
            Some(Tok::Ident(w)) => w.to_ascii_uppercase(),
            other => {
                return Err(format!(
                    "expected a geometry (POINT, LINESTRING, POLYGON, MULTIPOLYGON, BBOX), found {}",
                    show(other.as_ref())
                ));
            }
        };
        match kind.as_str() {
            "POINT" => {
                self.expect(&Tok::LParen, "'(' after POINT")?;
                let xy = self.numbers(2)?;
                self.expect(&Tok::RParen, "')' closing POINT")?;
                Ok(Geometry::Point(Point::new(xy[0], xy[1])))
            }
            "LINESTRING" => Ok(Geometry::LineString(LineString(self.coords()?))),
            "POLYGON" => Ok(Geometry::Polygon(self.polygon()?)),
            "MULTIPOLYGON" => {
                self.expect(&Tok::LParen, "'(' after MULTIPOLYGON")?;
                let mut ps = vec![self.polygon()?];
                while self.peek() == Some(&Tok::Comma) {
                    self.i += 1;
                    ps.push(self.polygon()?);
                }
                self.expect(&Tok::RParen, "')' closing MULTIPOLYGON")?;
                Ok(Geometry::MultiPolygon(MultiPolygon(ps)))
            }
            "BBOX" | "ENVELOPE" => {
                self.expect(&Tok::LParen, "'(' after BBOX")?;
                let mut v = Vec::new();
                loop {
                    v.extend(self.numbers(1)?);
                    match self.next() {
                        Some(Tok::Comma) => {}
                        Some(Tok::RParen) => break,
                        other => {
                            return Err(format!(
                                "expected ',' or ')' in BBOX, found {}",
                                show(other.as_ref())
                            ));
                        }
                    }
                }
                if v.len() != 4 || v[0] > v[2] || v[1] > v[3] {
                    return Err("BBOX takes minx, miny, maxx, maxy with min ≤ max".into());
                }
                Ok(Geometry::Rect(Rect::new(
                    Coord { x: v[0], y: v[1] },
                    Coord { x: v[2], y: v[3] },
                )))
            }
            other => Err(format!(
                "unsupported geometry {other}: expected POINT, LINESTRING, POLYGON, MULTIPOLYGON or BBOX"
            )),
        }
    }
}

fn is_geometry_prop(w: &str) -> bool {
    matches!(w.to_ascii_lowercase().as_str(), "geometry" | "geom")
}

fn show(t: Option<&Tok>) -> String {
    match t {
        None => "the end of the filter".into(),
        Some(Tok::Ident(w)) => format!("{w:?}"),
        Some(Tok::Quoted(w)) => format!("\"{w}\""),
        Some(Tok::Text(w)) => format!("'{w}'"),
        Some(Tok::Num(n)) => n.to_string(),
        Some(Tok::Op(o)) => (*o).to_string(),
        Some(Tok::LParen) => "'('".into(),
        Some(Tok::RParen) => "')'".into(),
        Some(Tok::Comma) => "','".into(),
    }
}

/// Parse CQL2 text.
///
/// # Errors
/// A message naming what was expected and what was found.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser {
        t: tokens(text)?,
        i: 0,
    };
    let e = p.or()?;
    if p.i < p.t.len() {
        return Err(format!(
            "unexpected {} after a complete filter",
            show(p.peek())
        ));
    }
    Ok(e)
}

impl Expr {
    /// The properties the filter reads (`geometry` for a spatial predicate).
    #[must_use]
    pub fn properties(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut out);
        out.sort();
        out.dedup();
        out
    }
    fn walk(&self, out: &mut Vec<String>) {
        let mut s = |x: &Scalar| {
            if let Scalar::Prop(p) = x {
                out.push(p.clone());
            }
        };
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.walk(out);
                b.walk(out);
            }
            Expr::Not(a) => a.walk(out),
            Expr::Cmp(a, _, b) => {
                s(a);
                s(b);
            }
            Expr::IsNull(a, _) | Expr::Like(a, _, _) => s(a),
            Expr::In(a, l, _) => {
                s(a);
                l.iter().for_each(s);
            }
            Expr::Between(a, b, c, _) => {
                s(a);
                s(b);
                s(c);
            }
            Expr::Intersects(_) => out.push("geometry".into()),
        }
    }

    /// Does the feature match? (Unknown counts as no.)
    #[must_use]
    pub fn matches(&self, props: &Map<String, Value>, geometry: Option<&Geometry>) -> bool {
        self.eval(props, geometry) == Some(true)
    }

    fn eval(&self, props: &Map<String, Value>, g: Option<&Geometry>) -> Option<bool> {
        match self {
            Expr::And(a, b) => match (a.eval(props, g), b.eval(props, g)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.eval(props, g), b.eval(props, g)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Not(a) => a.eval(props, g).map(|x| !x),
            Expr::Cmp(a, op, b) => {
                let o = compare(&value(a, props)?, &value(b, props)?)?;
                Some(match op {
                    CmpOp::Eq => o == Ordering::Equal,
                    CmpOp::Ne => o != Ordering::Equal,
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::Ge => o != Ordering::Less,
                })
            }
            Expr::IsNull(a, negated) => Some(value(a, props).is_none() != *negated),
            Expr::In(a, list, negated) => {
                let v = value(a, props)?;
                let mut unknown = false;
                for x in list {
                    match value(x, props).and_then(|x| compare(&v, &x)) {
                        Some(Ordering::Equal) => return Some(!negated),
                        None => unknown = true,
                        _ => {}
                    }
                }
                if unknown { None } else { Some(*negated) }
            }
            Expr::Between(a, lo, hi, negated) => {
                let v = value(a, props)?;
                let inside = compare(&v, &value(lo, props)?)? != Ordering::Less
                    && compare(&v, &value(hi, props)?)? != Ordering::Greater;
                Some(inside != *negated)
            }
            Expr::Like(a, pattern, negated) => {
                let v = value(a, props)?;
                let text = match v {
                    Lit::Text(t) => t,
                    Lit::Num(n) => n.to_string(),
                    Lit::Bool(b) => b.to_string(),
                };
                Some(like(&text, pattern) != *negated)
            }
            Expr::Intersects(lit) => Some(g.is_some_and(|g| g.intersects(lit))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Text(String),
    Num(f64),
    Bool(bool),
}

fn value(s: &Scalar, props: &Map<String, Value>) -> Option<Lit> {
    match s {
        Scalar::Text(t) => Some(Lit::Text(t.clone())),
        Scalar::Num(n) => Some(Lit::Num(*n)),
        Scalar::Bool(b) => Some(Lit::Bool(*b)),
        Scalar::Prop(p) => match props.get(p)? {
            Value::String(t) => Some(Lit::Text(t.clone())),
            Value::Number(n) => n.as_f64().map(Lit::Num),
            Value::Bool(b) => Some(Lit::Bool(*b)),
            _ => None,
        },
    }
}

/// Numbers compare as numbers, text as text (by code point, as SQLite's and PostgreSQL's C
/// collation); a number against text compares as numbers when the text is one, else not at all.
fn compare(a: &Lit, b: &Lit) -> Option<Ordering> {
    match (a, b) {
        (Lit::Num(x), Lit::Num(y)) => x.partial_cmp(y),
        (Lit::Text(x), Lit::Text(y)) => Some(x.cmp(y)),
        (Lit::Bool(x), Lit::Bool(y)) => Some(x.cmp(y)),
        (Lit::Num(x), Lit::Text(t)) => t.trim().parse::<f64>().ok().and_then(|y| x.partial_cmp(&y)),
        (Lit::Text(t), Lit::Num(y)) => t.trim().parse::<f64>().ok().and_then(|x| x.partial_cmp(y)),
        _ => None,
    }
}

/// SQL LIKE: `%` any run, `_` one character.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn comparisons_and_logic() {
        let p = props(
            json!({"households": 320, "code": "420502001001003", "name": "白龙里社区第三网格", "worker": null}),
        );
        let t = |f: &str| parse(f).unwrap().matches(&p, None);
        assert!(t("households > 300"));
        assert!(t("households >= 320 AND code = '420502001001003'"));
        assert!(!t("households < 300 OR code <> '420502001001003'"));
        assert!(t("NOT (households < 300)"));
        assert!(t("worker IS NULL AND households IS NOT NULL"));
        // unknown is not true, and NOT unknown is not true either
        assert!(!t("worker = 'x'") && !t("NOT worker = 'x'"));
        assert!(t(
            "households BETWEEN 300 AND 400 AND households NOT IN (1, 2)"
        ));
        assert!(t("code IN ('x', '420502001001003')"));
        assert!(t("name LIKE '白龙里%' AND name NOT LIKE '%第一%'"));
        assert!(t("\"households\" = 320"));
    }

    #[test]
    fn spatial() {
        let g = Geometry::Point(Point::new(111.3, 30.7));
        let p = Map::new();
        let t = |f: &str| parse(f).unwrap().matches(&p, Some(&g));
        assert!(t("S_INTERSECTS(geometry, BBOX(111, 30, 112, 31))"));
        assert!(t(
            "s_intersects(geometry, POLYGON((111 30, 112 30, 112 31, 111 31, 111 30)))"
        ));
        assert!(!t("S_INTERSECTS(geometry, POINT(0 0))"));
        assert_eq!(
            parse("S_INTERSECTS(geometry, BBOX(1,2,3))").unwrap_err(),
            "BBOX takes minx, miny, maxx, maxy with min ≤ max"
        );
    }

    #[test]
    fn errors_say_what_was_expected() {
        assert!(
            parse("households >")
                .unwrap_err()
                .contains("expected a property or a value")
        );
        assert!(
            parse("households 3")
                .unwrap_err()
                .contains("expected a comparison")
        );
        assert!(parse("(a = 1").unwrap_err().contains("expected ')'"));
        assert!(parse("a = 'x").unwrap_err().contains("unterminated"));
        assert!(
            parse("a = 1 b")
                .unwrap_err()
                .contains("after a complete filter")
        );
        assert_eq!(parse("a = 1 AND b = 2").unwrap().properties(), ["a", "b"]);
    }
}
