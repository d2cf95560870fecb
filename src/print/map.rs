//! The map of a printed page: a grid with its buildings, roads and their names, the neighbouring
//! grids named at the edges, a north arrow and a scale bar — or a community's grids coloured and
//! numbered (the atlas overview). Drawn north-up in a local metric frame, so the scale bar is true.

use super::svg::{Svg, n, text_width};
use super::{PrintArea, PrintGrid, short_name};
use crate::geom::frame::LocalFrame;
use geo::{BooleanOps, BoundingRect, Coord, Intersects, MultiPolygon, Rect};
use std::fmt::Write;

/// A box on the page, in points.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// What the map is about.
pub enum Focus<'a> {
    /// One grid, emphasised; neighbours named.
    Grid(&'a PrintGrid),
    /// A community's grids, coloured and numbered.
    Community(&'a str),
}

/// Colours of the atlas overview, cycled by grid number.
const PALETTE: [&str; 10] = [
    "#8dd3c7", "#fdd89b", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
    "#d9d9d9", "#bc80bd",
];

/// Projection of WGS84 into the frame.
struct Proj {
    f: LocalFrame,
    s: f64,
    cx: f64,
    cy: f64,
    box_: Frame,
}

impl Proj {
    fn new(extent: Rect, box_: Frame) -> Proj {
        let f = LocalFrame::new(extent.center().x, extent.center().y);
        let lo = f.fwd(extent.min());
        let hi = f.fwd(extent.max());
        let (ew, eh) = ((hi.x - lo.x).max(1.0), (hi.y - lo.y).max(1.0));
        let s = (box_.w / ew).min(box_.h / eh);
        Proj {
            f,
            s,
            cx: (lo.x + hi.x) / 2.0,
            cy: (lo.y + hi.y) / 2.0,
            box_,
        }
    }
    fn pt(&self, c: Coord) -> (f64, f64) {
        let m = self.f.fwd(c);
        (
            self.box_.x + self.box_.w / 2.0 + (m.x - self.cx) * self.s,
            self.box_.y + self.box_.h / 2.0 - (m.y - self.cy) * self.s,
        )
    }
    /// The frame as a WGS84 rectangle.
    fn view(&self) -> Rect {
        let a = self.f.inv(Coord {
            x: self.cx - self.box_.w / 2.0 / self.s,
            y: self.cy - self.box_.h / 2.0 / self.s,
        });
        let b = self.f.inv(Coord {
            x: self.cx + self.box_.w / 2.0 / self.s,
            y: self.cy + self.box_.h / 2.0 / self.s,
        });
        Rect::new(a, b)
    }
    fn path(&self, mp: &MultiPolygon) -> String {
        let mut d = String::new();
        for p in &mp.0 {
            for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                for (i, c) in ring.0.iter().enumerate() {
                    let (x, y) = self.pt(*c);
                    let _ = write!(d, "{}{} {}", if i == 0 { "M" } else { "L" }, n(x), n(y));
                }
                d.push('Z');
            }
        }
        d
    }
}

/// Real width (m) of a road class, for drawing to scale.
fn road_width(highway: &str) -> f64 {
    match highway {
        "motorway" | "trunk" | "primary" | "motorway_link" | "trunk_link" => 18.0,
        "secondary" | "primary_link" => 14.0,
        "tertiary" | "secondary_link" => 11.0,
        "residential" | "unclassified" | "living_street" | "road" => 8.0,
        "service" | "pedestrian" => 5.0,
        _ => 2.5,
    }
}

/// The extent to show for a focus: the grid (or community) with a margin.
#[must_use]
pub fn extent_of(mp: &MultiPolygon, margin: f64) -> Option<Rect> {
    let r = mp.bounding_rect()?;
    let f = LocalFrame::new(r.center().x, r.center().y);
    let (lo, hi) = (f.fwd(r.min()), f.fwd(r.max()));
    let m = ((hi.x - lo.x).max(hi.y - lo.y) * margin).max(40.0);
    Some(Rect::new(
        f.inv(Coord {
            x: lo.x - m,
            y: lo.y - m,
        }),
        f.inv(Coord {
            x: hi.x + m,
            y: hi.y + m,
        }),
    ))
}

/// Boxes of labels placed so far (no two overlap).
#[derive(Default)]
struct Placed(Vec<[f64; 4]>);

impl Placed {
    fn take(&mut self, cx: f64, cy: f64, hw: f64, hh: f64) -> bool {
        let b = [cx - hw, cy - hh, cx + hw, cy + hh];
        if self
            .0
            .iter()
            .any(|o| b[0] < o[2] && o[0] < b[2] && b[1] < o[3] && o[1] < b[3])
        {
            return false;
        }
        self.0.push(b);
        true
    }
}

/// Draw the map into `frame`.
pub fn draw(svg: &mut Svg, frame: Frame, area: &PrintArea, focus: &Focus, extent: Rect) {
    let p = Proj::new(extent, frame);
    let view = p.view();
    svg.rect(frame.x, frame.y, frame.w, frame.h, r##"fill="#f4f1ea""##);
    svg.clip_rect(frame.x, frame.y, frame.w, frame.h);
    let in_view: Vec<&PrintGrid> = area
        .grids
        .iter()
        .filter(|g| g.geometry.intersects(&view))
        .collect();
    draw_fills(svg, &p, &in_view, focus);
    draw_buildings(svg, &p, area, focus, &view);
    let mut placed = Placed::default();
    // the north arrow and the scale bar keep their corners
    placed.0.push([
        frame.x + frame.w - 44.0,
        frame.y,
        frame.x + frame.w,
        frame.y + 50.0,
    ]);
    placed.0.push([
        frame.x,
        frame.y + frame.h - 34.0,
        frame.x + frame.w * 0.3,
        frame.y + frame.h,
    ]);
    let roads = draw_roads(svg, &p, area, &view);
    draw_outlines(svg, &p, &in_view, focus);
    road_names(svg, &p, &roads, &mut placed);
    draw_grid_labels(svg, &p, &in_view, focus, &view, &mut placed);
    north_arrow(svg, frame);
    scale_bar(svg, frame, p.s);
    svg.end();
    svg.rect(
        frame.x,
        frame.y,
        frame.w,
        frame.h,
        r##"fill="none" stroke="#555555" stroke-width="0.8""##,
    );
}

/// Colours for a community's grids: in code order, each takes the first palette colour no
/// touching grid has (greedy; a map of grids needs far fewer than ten).
fn colours(grids: &[&PrintGrid], community: &str) -> Vec<usize> {
    let mine: Vec<usize> = (0..grids.len())
        .filter(|&i| grids[i].community == community)
        .collect();
    let boxes: Vec<Option<Rect>> = grids.iter().map(|g| g.geometry.bounding_rect()).collect();
    let mut out = vec![0; grids.len()];
    let mut done: Vec<usize> = Vec::new();
    for &i in &mine {
        let used: Vec<usize> = done
            .iter()
            .filter(|&&j| {
                matches!((boxes[i], boxes[j]), (Some(a), Some(b)) if a.intersects(&b))
                    && grids[i].geometry.intersects(&grids[j].geometry)
            })
            .map(|&j| out[j])
            .collect();
        out[i] = (0..PALETTE.len())
            .find(|k| !used.contains(k))
            .unwrap_or(grids[i].seq % PALETTE.len());
        done.push(i);
    }
    out
}

fn draw_fills(svg: &mut Svg, p: &Proj, grids: &[&PrintGrid], focus: &Focus) {
    let colour = match focus {
        Focus::Community(c) => colours(grids, c),
        Focus::Grid(_) => Vec::new(),
    };
    for (i, g) in grids.iter().enumerate() {
        let fill = match focus {
            Focus::Grid(f) if f.code == g.code => "#fff3df",
            Focus::Grid(_) => "#fbfaf7",
            Focus::Community(c) if g.community == *c => PALETTE[colour[i]],
            Focus::Community(_) => "#fbfaf7",
        };
        svg.path(
            &p.path(&g.geometry),
            &format!(r#"fill="{fill}" fill-rule="evenodd""#),
        );
    }
}

fn draw_buildings(svg: &mut Svg, p: &Proj, area: &PrintArea, focus: &Focus, view: &Rect) {
    let (mut inside, mut other) = (String::new(), String::new());
    for b in &area.buildings {
        if !b.geometry.intersects(view) {
            continue;
        }
        let mine = match focus {
            Focus::Grid(g) => b.grid.as_deref() == Some(g.code.as_str()),
            Focus::Community(_) => false,
        };
        (if mine { &mut inside } else { &mut other }).push_str(&p.path(&b.geometry));
    }
    let community = matches!(focus, Focus::Community(_));
    svg.path(
        &other,
        if community {
            r##"fill="#000000" fill-opacity="0.18" stroke="none""##
        } else {
            r##"fill="#d6d0c4" stroke="#b9b2a4" stroke-width="0.3""##
        },
    );
    svg.path(
        &inside,
        r##"fill="#e9a55f" stroke="#8d5a2b" stroke-width="0.4""##,
    );
}

/// Draw the roads in view (casing, then fill); returns them for their names.
fn draw_roads<'a>(
    svg: &mut Svg,
    p: &Proj,
    area: &'a PrintArea,
    view: &Rect,
) -> Vec<&'a crate::model::Road> {
    let visible: Vec<&crate::model::Road> = area
        .roads
        .iter()
        .filter(|r| r.line.intersects(view))
        .collect();
    // casings under fills, wider classes last so that they join cleanly
    let mut order: Vec<&&crate::model::Road> = visible.iter().collect();
    order.sort_by(|a, b| road_width(&a.highway).total_cmp(&road_width(&b.highway)));
    for pass in 0..2 {
        for r in &order {
            let w = (road_width(&r.highway) * p.s).clamp(0.8, 16.0);
            let mut d = String::new();
            for (i, c) in r.line.0.iter().enumerate() {
                let (x, y) = p.pt(*c);
                let _ = write!(d, "{}{} {}", if i == 0 { "M" } else { "L" }, n(x), n(y));
            }
            let style = if pass == 0 {
                format!(
                    r##"fill="none" stroke="#a89f8c" stroke-width="{}" stroke-linecap="round" stroke-linejoin="round""##,
                    n(w + 1.2)
                )
            } else {
                format!(
                    r##"fill="none" stroke="#ffffff" stroke-width="{}" stroke-linecap="round" stroke-linejoin="round""##,
                    n(w)
                )
            };
            svg.path(&d, &style);
        }
    }
    visible
}

/// A straight run of a road on the page: length, middle, angle (degrees).
type Run = (f64, (f64, f64), f64);

/// One name per named road, on its longest straight run inside the frame.
fn road_names(svg: &mut Svg, p: &Proj, roads: &[&crate::model::Road], placed: &mut Placed) {
    let fr = p.box_;
    let inside_box = [
        fr.x + 10.0,
        fr.y + 10.0,
        fr.x + fr.w - 10.0,
        fr.y + fr.h - 10.0,
    ];
    // name → (length, mid, angle) of the best run
    let mut best: std::collections::BTreeMap<&str, Run> = std::collections::BTreeMap::new();
    for r in roads {
        let Some(name) = r.name.as_deref().filter(|s| !s.trim().is_empty()) else {
            continue;
        };
        let pts: Vec<(f64, f64)> = r.line.0.iter().map(|c| p.pt(*c)).collect();
        for w in pts.windows(2) {
            let Some((a, b)) = crate::geom::clip_segment(w[0], w[1], inside_box) else {
                continue;
            };
            let len = (b.0 - a.0).hypot(b.1 - a.1);
            if best.get(name).is_none_or(|e| len > e.0) {
                let mut ang = (b.1 - a.1).atan2(b.0 - a.0).to_degrees();
                if ang > 90.0 {
                    ang -= 180.0;
                } else if ang <= -90.0 {
                    ang += 180.0;
                }
                best.insert(name, (len, ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0), ang));
            }
        }
    }
    let mut runs: Vec<(&str, Run)> = best.into_iter().collect();
    runs.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
    for (name, (len, (x, y), ang)) in runs {
        let size = 8.5;
        let tw = text_width(name, size);
        if len < tw + 6.0 {
            continue;
        }
        let (c, s) = (ang.to_radians().cos().abs(), ang.to_radians().sin().abs());
        let (hw, hh) = (tw / 2.0 * c + size / 2.0 * s, tw / 2.0 * s + size / 2.0 * c);
        if placed.take(x, y, hw, hh) {
            svg.label(x, y, size, ang, "#4e4636", name);
        }
    }
}

fn draw_outlines(svg: &mut Svg, p: &Proj, grids: &[&PrintGrid], focus: &Focus) {
    let mut others = String::new();
    for g in grids {
        match focus {
            Focus::Grid(f) if f.code == g.code => {}
            _ => others.push_str(&p.path(&g.geometry)),
        }
    }
    match focus {
        Focus::Grid(f) => {
            svg.path(
                &others,
                r##"fill="none" stroke="#7d7d7d" stroke-width="0.9" stroke-dasharray="4 2""##,
            );
            let d = p.path(&f.geometry);
            svg.path(
                &d,
                r##"fill="none" stroke="#c62828" stroke-opacity="0.25" stroke-width="8" stroke-linejoin="round""##,
            );
            svg.path(
                &d,
                r##"fill="none" stroke="#c62828" stroke-width="2.6" stroke-linejoin="round""##,
            );
        }
        Focus::Community(_) => {
            svg.path(
                &others,
                r##"fill="none" stroke="#37474f" stroke-width="1.1" stroke-linejoin="round""##,
            );
        }
    }
}

fn draw_grid_labels(
    svg: &mut Svg,
    p: &Proj,
    grids: &[&PrintGrid],
    focus: &Focus,
    view: &Rect,
    placed: &mut Placed,
) {
    let view_poly = MultiPolygon(vec![view.to_polygon()]);
    for g in grids {
        let (text, size, fill) = match focus {
            Focus::Grid(f) if f.code == g.code => continue,
            Focus::Grid(f) => {
                let t = if g.community == f.community {
                    short_name(g)
                } else {
                    g.name.clone()
                };
                (t, 8.5, "#424242")
            }
            Focus::Community(c) if g.community == *c => (
                format!("{}\n{}", short_name(g), code_tail(&g.code)),
                9.0,
                "#1a1a1a",
            ),
            Focus::Community(_) => continue,
        };
        // the part in view: a neighbour cut by the frame is named where it shows
        let part = if view_poly.contains_mp(&g.geometry) {
            g.geometry.clone()
        } else {
            g.geometry.intersection(&view_poly)
        };
        let Some(c) = crate::geom::interior_point::interior_point(&part) else {
            continue;
        };
        let (x, y) = p.pt(c);
        let lines: Vec<&str> = text.lines().collect();
        let tw = lines
            .iter()
            .map(|l| text_width(l, size))
            .fold(0.0, f64::max);
        #[expect(clippy::cast_precision_loss, reason = "a line count")]
        let th = size * 1.25 * lines.len() as f64;
        if !placed.take(x, y, tw / 2.0 + 1.0, th / 2.0) {
            continue;
        }
        for (i, l) in lines.iter().enumerate() {
            #[expect(clippy::cast_precision_loss, reason = "a line index")]
            let dy = (i as f64 - (lines.len() as f64 - 1.0) / 2.0) * size * 1.2;
            svg.label(x, y + dy, size, 0.0, fill, l);
        }
    }
}

trait ContainsMp {
    fn contains_mp(&self, other: &MultiPolygon) -> bool;
}
impl ContainsMp for MultiPolygon {
    fn contains_mp(&self, other: &MultiPolygon) -> bool {
        match (self.bounding_rect(), other.bounding_rect()) {
            (Some(a), Some(b)) => {
                a.min().x <= b.min().x
                    && a.min().y <= b.min().y
                    && a.max().x >= b.max().x
                    && a.max().y >= b.max().y
            }
            _ => false,
        }
    }
}

/// The last three digits of a grid code, as printed on the overview ("…007").
fn code_tail(code: &str) -> String {
    let t: String = code
        .chars()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{t}")
}

fn north_arrow(svg: &mut Svg, f: Frame) {
    let (x, y) = (f.x + f.w - 24.0, f.y + 30.0);
    svg.raw(&format!(
        r##"<circle cx="{}" cy="{}" r="15" fill="#ffffff" fill-opacity="0.85" stroke="#555555" stroke-width="0.6"/>"##,
        n(x),
        n(y)
    ));
    svg.path(
        &format!(
            "M{} {}L{} {}L{} {}Z",
            n(x),
            n(y - 11.0),
            n(x + 5.5),
            n(y + 8.0),
            n(x),
            n(y + 4.0)
        ),
        r##"fill="#222222""##,
    );
    svg.path(
        &format!(
            "M{} {}L{} {}L{} {}Z",
            n(x),
            n(y - 11.0),
            n(x - 5.5),
            n(y + 8.0),
            n(x),
            n(y + 4.0)
        ),
        r##"fill="#ffffff" stroke="#222222" stroke-width="0.6""##,
    );
    svg.text(
        x,
        y - 17.0,
        9.0,
        "middle",
        r##"fill="#222222" font-weight="bold""##,
        "北",
    );
}

/// A scale bar of a round length, about a fifth of the frame wide.
fn scale_bar(svg: &mut Svg, f: Frame, pt_per_m: f64) {
    let want = f.w / 5.0 / pt_per_m;
    let mut len = 1.0;
    for k in 0..8 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(k);
            if v <= want {
                len = v;
            }
        }
    }
    let w = len * pt_per_m;
    let (x, y) = (f.x + 12.0, f.y + f.h - 14.0);
    svg.rect(
        x - 6.0,
        y - 16.0,
        w + 44.0,
        24.0,
        r##"fill="#ffffff" fill-opacity="0.85""##,
    );
    svg.rect(x, y - 3.0, w / 2.0, 4.0, r##"fill="#222222""##);
    svg.rect(
        x + w / 2.0,
        y - 3.0,
        w / 2.0,
        4.0,
        r##"fill="#ffffff" stroke="#222222" stroke-width="0.6""##,
    );
    let label = if len >= 1000.0 {
        format!("{} 公里", len / 1000.0)
    } else {
        format!("{len} 米")
    };
    svg.text(x, y - 6.0, 7.5, "middle", r##"fill="#222222""##, "0");
    svg.text(x + w, y - 6.0, 7.5, "start", r##"fill="#222222""##, &label);
}
