//! The four boundaries of a grid in words (四至): for each side — east, south, west, north — the
//! streets that run along it, or the neighbouring grids across it, derived from the geometry.
//!
//! The outer boundary is walked in steps of a few metres in a local metric frame. Each step's
//! outward normal gives its side (within 45° of east is east, …). Across each step lies the
//! nearest named road that runs along the boundary (within [`ROAD_REACH`] and
//! [`ROAD_PARALLEL`]), else the neighbouring grid just outside. Per side, whatever covers at least
//! [`MIN_SHARE`] of that side's length is named, longest first.

use crate::geom::frame::LocalFrame;
use geo::{BoundingRect, Contains, Coord, LineString, MultiPolygon, Point};
use std::collections::BTreeMap;

/// Largest distance (m) from the boundary to a road that bounds it.
pub const ROAD_REACH: f64 = 35.0;
/// Smallest |cos| of the angle between the boundary and a road that runs along it (≈ 37°).
pub const ROAD_PARALLEL: f64 = 0.8;
/// Share of a side's length from which a street or a neighbour is named.
pub const MIN_SHARE: f64 = 0.2;
/// Step along the boundary (m).
const STEP: f64 = 4.0;
/// How far outside the boundary a neighbour is looked for (m).
const PROBE: f64 = 2.0;

/// The sides in the order a signboard lists them: 东至, 南至, 西至, 北至.
pub const SIDES: [&str; 4] = ["东", "南", "西", "北"];

/// What lies along each side (east, south, west, north), longest first; empty when nothing
/// (the edge of the mapped area).
pub type Sizhi = [Vec<String>; 4];

/// A named line near the grid, in WGS84.
pub struct NamedLine<'a> {
    pub name: &'a str,
    pub line: &'a LineString,
}

/// A neighbouring area with the label to print for it, in WGS84.
pub struct NamedArea<'a> {
    pub label: &'a str,
    pub area: &'a MultiPolygon,
}

pub(crate) struct Seg {
    a: Coord,
    b: Coord,
    name: usize,
}

fn side_of(n: Coord) -> usize {
    let ang = n.y.atan2(n.x).to_degrees();
    if (-45.0..45.0).contains(&ang) {
        0 // east
    } else if (-135.0..-45.0).contains(&ang) {
        1 // south
    } else if (45.0..135.0).contains(&ang) {
        3 // north
    } else {
        2 // west
    }
}

/// The foot of the perpendicular from `p` on segment a–b; None when it falls beyond an end (a
/// road that ends does not bound the boundary past its end).
fn foot_on(a: Coord, b: Coord, p: Coord) -> Option<Coord> {
    let d = b - a;
    let l2 = d.x * d.x + d.y * d.y;
    if l2 <= 0.0 {
        return None;
    }
    let t = ((p - a).x * d.x + (p - a).y * d.y) / l2;
    (0.0..=1.0).contains(&t).then(|| a + d * t)
}

mod across;
pub use across::*;

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, MultiPolygon, polygon};

    // metres around a point near Yichang → WGS84
    fn frame() -> LocalFrame {
        LocalFrame::new(111.29, 30.69)
    }
    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon {
        let f = frame();
        let c = |x: f64, y: f64| f.inv(Coord { x, y });
        let (a, b, cc, d) = (c(x0, y0), c(x1, y0), c(x1, y1), c(x0, y1));
        MultiPolygon(vec![polygon![
            (x: a.x, y: a.y), (x: b.x, y: b.y), (x: cc.x, y: cc.y), (x: d.x, y: d.y), (x: a.x, y: a.y)
        ]])
    }
    fn line(pts: &[(f64, f64)]) -> LineString {
        let f = frame();
        LineString(pts.iter().map(|&(x, y)| f.inv(Coord { x, y })).collect())
    }

    /// Two grids side by side in a block bounded by four named streets: the west grid has the
    /// streets on three sides and its neighbour on the east; a street between them is named
    /// instead once it is there.
    #[test]
    fn streets_and_neighbours() {
        let west = rect(0.0, 0.0, 200.0, 300.0);
        let east = rect(200.0, 0.0, 400.0, 300.0);
        // streets 12 m outside the block edges, running past its corners
        let lines = [
            ("北京路", line(&[(-50.0, 312.0), (450.0, 312.0)])),
            ("南湖路", line(&[(-50.0, -12.0), (450.0, -12.0)])),
            ("西陵一路", line(&[(-12.0, -50.0), (-12.0, 350.0)])),
            ("东山大道", line(&[(412.0, -50.0), (412.0, 350.0)])),
        ];
        let roads: Vec<NamedLine> = lines
            .iter()
            .map(|(n, l)| NamedLine { name: n, line: l })
            .collect();
        let neighbours = [NamedArea {
            label: "第二网格",
            area: &east,
        }];
        let s = sizhi(&west, &roads, &neighbours);
        assert_eq!(s[0], vec!["第二网格"], "east");
        assert_eq!(s[1], vec!["南湖路"], "south");
        assert_eq!(s[2], vec!["西陵一路"], "west");
        assert_eq!(s[3], vec!["北京路"], "north");
        // the east grid, symmetric
        let s = sizhi(
            &east,
            &roads,
            &[NamedArea {
                label: "第一网格",
                area: &west,
            }],
        );
        assert_eq!(
            s,
            [
                vec!["东山大道".to_string()],
                vec!["南湖路".to_string()],
                vec!["第一网格".to_string()],
                vec!["北京路".to_string()]
            ]
        );
        // a lane on the shared boundary: named rather than the neighbour
        let mid = line(&[(200.0, -20.0), (200.0, 320.0)]);
        let mut with_mid: Vec<NamedLine> = lines
            .iter()
            .map(|(n, l)| NamedLine { name: n, line: l })
            .collect();
        with_mid.push(NamedLine {
            name: "学院街",
            line: &mid,
        });
        let s = sizhi(&west, &with_mid, &neighbours);
        assert_eq!(s[0], vec!["学院街"]);
        // a cross street does not bound a side it crosses
        assert!(!s[0].iter().any(|n| n == "北京路" || n == "南湖路"));
    }

    /// A side shared half by a street and half by a neighbour names both, longest first; a
    /// side with nothing across it is empty.
    #[test]
    fn shares_and_open_edges() {
        let g = rect(0.0, 0.0, 100.0, 100.0);
        let n = rect(100.0, 0.0, 200.0, 40.0);
        let road = line(&[(110.0, 45.0), (110.0, 150.0)]);
        let roads = [NamedLine {
            name: "桃花路",
            line: &road,
        }];
        let s = sizhi(
            &g,
            &roads,
            &[NamedArea {
                label: "第七网格",
                area: &n,
            }],
        );
        assert_eq!(s[0], vec!["桃花路", "第七网格"]);
        assert!(s[1].is_empty() && s[2].is_empty() && s[3].is_empty());
    }
}
