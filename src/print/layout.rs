//! The pages: a signboard (title, code, street and community, the map, the worker with photo and
//! phone, the four boundaries, a QR code of the grid's page) and an atlas (overview of the
//! community's grids, table of grids, one page per grid). Drawn on A4 (portrait or landscape);
//! A3 is the same drawing scaled.

use super::map::{self, Focus, Frame};
use super::svg::{Svg, n, text_width, wrap};
use super::{Options, Paper, PrintArea, PrintGrid, Sheet, short_name};
use geo::{BoundingRect, MultiPolygon};

const RED: &str = "#b71c1c";
const INK: &str = "#212121";
const GREY: &str = "#616161";

fn page(o: Options) -> (Svg, f64, f64) {
    let (w, h) = Paper::A4.points();
    let (vw, vh) = if o.landscape { (h, w) } else { (w, h) };
    let (pw, ph) = o.paper.points();
    let (pw, ph) = if o.landscape { (ph, pw) } else { (pw, ph) };
    (Svg::new(pw, ph, vw, vh), vw, vh)
}

/// The band in words.
fn band_text(b: &str) -> &'static str {
    match b {
        "under" => "低于标准",
        "over" => "高于标准",
        "oversize" => "单栋超标",
        _ => "在标准内",
    }
}

fn header(svg: &mut Svg, (w, h): (f64, f64), kicker: &str, title: &str, lines: &[String]) {
    svg.rect(0.0, 0.0, w, h, &format!(r#"fill="{RED}""#));
    svg.text(
        30.0,
        24.0,
        10.0,
        "start",
        r##"fill="#ffd9d9" letter-spacing="2""##,
        kicker,
    );
    // the title shrinks to fit one line
    let mut size: f64 = 28.0;
    while size > 14.0 && text_width(title, size) > w - 60.0 {
        size -= 1.0;
    }
    svg.text(
        30.0,
        24.0 + size + 8.0,
        size,
        "start",
        r##"fill="#ffffff" font-weight="bold""##,
        title,
    );
    let mut y = 24.0 + size + 30.0;
    for l in lines {
        svg.text(30.0, y, 12.0, "start", r##"fill="#ffffff""##, l);
        y += 17.0;
    }
}

/// The worker's photo, or a placeholder figure.
fn photo(svg: &mut Svg, x: f64, y: f64, w: f64, h: f64, bytes: Option<&[u8]>) {
    match bytes.and_then(|b| super::render::image_mime(b).map(|m| (m, b))) {
        Some((mime, b)) => svg.image(x, y, w, h, mime, b),
        None => {
            svg.rect(x, y, w, h, r##"fill="#eceff1""##);
            let (cx, cy) = (x + w / 2.0, y + h * 0.38);
            svg.raw(&format!(
                r##"<circle cx="{}" cy="{}" r="{}" fill="#b0bec5"/>"##,
                n(cx),
                n(cy),
                n(w * 0.18)
            ));
            svg.path(
                &format!(
                    "M{} {}Q{} {} {} {}Z",
                    n(x + w * 0.15),
                    n(y + h * 0.9),
                    n(cx),
                    n(y + h * 0.35),
                    n(x + w * 0.85),
                    n(y + h * 0.9)
                ),
                r##"fill="#b0bec5""##,
            );
            svg.text(
                cx,
                y + h - 6.0,
                8.0,
                "middle",
                r##"fill="#78909c""##,
                "照片",
            );
        }
    }
    svg.rect(
        x,
        y,
        w,
        h,
        r##"fill="none" stroke="#90a4ae" stroke-width="0.6""##,
    );
}

/// A QR code of `url`, `size` points wide (quiet zone included).
fn qr(svg: &mut Svg, x: f64, y: f64, size: f64, url: &str) {
    let Ok(code) = qrcode::QrCode::with_error_correction_level(url, qrcode::EcLevel::M) else {
        return;
    };
    let m = code.width();
    let colors = code.to_colors();
    #[expect(clippy::cast_precision_loss, reason = "a module count")]
    let cell = size / (m + 8) as f64;
    let mut d = String::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            #[expect(clippy::cast_precision_loss, reason = "module indices")]
            let (cx, cy) = ((i % m + 4) as f64 * cell + x, (i / m + 4) as f64 * cell + y);
            d.push_str(&format!(
                "M{} {}h{}v{}h-{}Z",
                n(cx),
                n(cy),
                n(cell),
                n(cell),
                n(cell)
            ));
        }
    }
    svg.rect(x, y, size, size, r##"fill="#ffffff""##);
    svg.path(&d, r##"fill="#000000" shape-rendering="crispEdges""##);
}

fn sizhi_lines(s: &Sheet) -> Vec<String> {
    super::sizhi::SIDES
        .iter()
        .zip(&s.sizhi)
        .map(|(side, names)| {
            let v = if names.is_empty() {
                "—".to_string()
            } else {
                names.join("、")
            };
            format!("{side}至 {v}")
        })
        .collect()
}

/// Lines of text wrapped into a column; returns the y below them.
fn column(
    svg: &mut Svg,
    x: f64,
    mut y: f64,
    width: f64,
    size: f64,
    style: &str,
    text: &str,
) -> f64 {
    for l in wrap(text, size, width) {
        svg.text(x, y, size, "start", style, &l);
        y += size * 1.45;
    }
    y
}

fn title_of(g: &PrintGrid) -> String {
    if g.name.starts_with(g.community_name.as_str()) || g.community_name.is_empty() {
        g.name.clone()
    } else {
        format!("{} {}", g.community_name, g.name)
    }
}

fn place_line(g: &PrintGrid) -> String {
    match g.street.as_deref().map(str::trim) {
        Some("") | None => g.community_name.clone(),
        // a code only (no name): say so
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => {
            format!("街道 {s} · {}", g.community_name)
        }
        Some(s) if s.ends_with("街道") || s.ends_with('镇') || s.ends_with('乡') => {
            format!("{s} · {}", g.community_name)
        }
        Some(s) => format!("{s}街道 · {}", g.community_name),
    }
}

/// The worker's name and phone (or placeholders) at `tx`, `y`.
fn worker_block(svg: &mut Svg, s: &Sheet, tx: f64, y: f64) {
    let name = s.worker.as_ref().map_or("（待配备）", |w| w.name.as_str());
    svg.text(
        tx,
        y + 12.0,
        10.0,
        "start",
        &format!(r#"fill="{GREY}""#),
        "网格员",
    );
    svg.text(
        tx,
        y + 36.0,
        20.0,
        "start",
        &format!(r#"fill="{INK}" font-weight="bold""#),
        name,
    );
    svg.text(
        tx,
        y + 58.0,
        10.0,
        "start",
        &format!(r#"fill="{GREY}""#),
        "联系电话",
    );
    let phone = s
        .worker
        .as_ref()
        .and_then(|w| w.phone.as_deref())
        .unwrap_or("—");
    svg.text(
        tx,
        y + 80.0,
        17.0,
        "start",
        &format!(r#"fill="{INK}""#),
        phone,
    );
}

/// The four boundaries from `yy` down in a column `bw` wide at `bx`, and the grid's figures
/// when the sheet is for internal use.
fn boundaries_and_figures(svg: &mut Svg, s: &Sheet, o: Options, (bx, mut yy, bw): (f64, f64, f64)) {
    for l in sizhi_lines(s) {
        yy = column(svg, bx, yy, bw, 11.0, &format!(r#"fill="{INK}""#), &l);
    }
    if o.internal {
        let g = &s.grid;
        yy += 6.0;
        svg.text(
            bx,
            yy,
            10.0,
            "start",
            &format!(r#"fill="{RED}" font-weight="bold""#),
            "内部资料",
        );
        let fig = format!(
            "户数 {} · 建筑 {} 栋 · {}",
            g.households,
            g.buildings,
            band_text(&g.band)
        );
        column(
            svg,
            bx,
            yy + 16.0,
            bw,
            10.0,
            &format!(r#"fill="{INK}""#),
            &fig,
        );
    }
}

/// The info block: worker, four boundaries, QR; `internal` figures.
fn info(svg: &mut Svg, s: &Sheet, o: Options, x: f64, y: f64, w: f64, stacked: bool) {
    let (pw, ph) = (96.0, 124.0);
    photo(svg, x, y, pw, ph, s.photo.as_deref());
    let tx = x + pw + 14.0;
    worker_block(svg, s, tx, y);
    let qr_size = 104.0;
    let (qx, qy) = if stacked {
        (x + w - qr_size, y + ph + 18.0)
    } else {
        (x + w - qr_size, y)
    };
    qr(svg, qx, qy, qr_size, &s.url);
    svg.text(
        qx + qr_size / 2.0,
        qy + qr_size + 11.0,
        8.5,
        "middle",
        &format!(r#"fill="{GREY}""#),
        "扫码查看网格地图",
    );
    // the four boundaries: beside the worker in portrait, below in landscape
    let (bx, by, bw) = if stacked {
        (x, y + ph + 26.0, w - qr_size - 14.0)
    } else {
        (tx + 150.0, y + 12.0, w - (tx + 150.0 - x) - qr_size - 14.0)
    };
    svg.text(
        bx,
        by,
        12.0,
        "start",
        &format!(r#"fill="{RED}" font-weight="bold""#),
        "四至范围",
    );
    boundaries_and_figures(svg, s, o, (bx, by + 20.0, bw));
}

fn footer(svg: &mut Svg, s: &Sheet, w: f64, h: f64) {
    let from = s
        .in_force_from
        .as_deref()
        .map_or(String::new(), |d| format!("，{d} 起施行"));
    svg.line(
        (30.0, h - 30.0),
        (w - 30.0, h - 30.0),
        r##"stroke="#bdbdbd" stroke-width="0.5""##,
    );
    svg.text(
        30.0,
        h - 16.0,
        8.0,
        "start",
        &format!(r#"fill="{GREY}""#),
        &format!("网格编码 {} · 网格方案 {}{from}", s.grid.code, s.plan),
    );
    svg.text(
        w - 30.0,
        h - 16.0,
        8.0,
        "end",
        &format!(r#"fill="{GREY}""#),
        "wangge 网格化管理",
    );
}

/// One grid's signboard as an SVG page.
#[must_use]
pub fn signboard(s: &Sheet, area: &PrintArea, o: Options) -> String {
    let (mut svg, w, h) = page(o);
    let g = &s.grid;
    header(
        &mut svg,
        (w, 112.0),
        if o.internal {
            "网格图 · 内部资料"
        } else {
            "社区网格公示牌"
        },
        &title_of(g),
        &[format!("网格编码 {}", g.code), place_line(g)],
    );
    let extent = map::extent_of(&g.geometry, 0.12);
    if o.landscape {
        let frame = Frame {
            x: 30.0,
            y: 126.0,
            w: w * 0.58,
            h: h - 126.0 - 44.0,
        };
        if let Some(e) = extent {
            map::draw(&mut svg, frame, area, &Focus::Grid(g), e);
        }
        let x = frame.x + frame.w + 20.0;
        info(&mut svg, s, o, x, 126.0, w - x - 30.0, true);
    } else {
        let frame = Frame {
            x: 30.0,
            y: 126.0,
            w: w - 60.0,
            h: h - 126.0 - 230.0,
        };
        if let Some(e) = extent {
            map::draw(&mut svg, frame, area, &Focus::Grid(g), e);
        }
        info(
            &mut svg,
            s,
            o,
            30.0,
            frame.y + frame.h + 18.0,
            w - 60.0,
            false,
        );
    }
    footer(&mut svg, s, w, h);
    svg.finish()
}

/// A community's atlas: overview, table (as many pages as it takes), one page per grid.
#[must_use]
pub fn atlas(
    community: &str,
    community_name: &str,
    sheets: &[Sheet],
    area: &PrintArea,
    o: Options,
) -> Vec<String> {
    let mut pages = vec![overview(community, community_name, sheets, area, o)];
    pages.extend(table_pages(community, community_name, sheets, o));
    let internal = Options {
        internal: true,
        ..o
    };
    pages.extend(sheets.iter().map(|s| signboard(s, area, internal)));
    pages
}

fn overview(
    community: &str,
    community_name: &str,
    sheets: &[Sheet],
    area: &PrintArea,
    o: Options,
) -> String {
    let (mut svg, w, h) = page(o);
    let street = sheets.first().and_then(|s| s.grid.street.clone());
    let mut lines = vec![format!("社区编码 {community} · 网格 {} 个", sheets.len())];
    if let Some(g) = sheets.first().filter(|_| street.is_some()) {
        lines.push(place_line(&g.grid));
    }
    header(
        &mut svg,
        (w, 112.0),
        "社区网格图册",
        &format!("{community_name} 网格图册"),
        &lines,
    );
    let all = MultiPolygon(
        sheets
            .iter()
            .flat_map(|s| s.grid.geometry.0.iter().cloned())
            .collect(),
    );
    let frame = Frame {
        x: 30.0,
        y: 126.0,
        w: w - 60.0,
        h: h - 126.0 - 50.0,
    };
    if let Some(e) = all.bounding_rect().and_then(|_| map::extent_of(&all, 0.04)) {
        map::draw(&mut svg, frame, area, &Focus::Community(community), e);
    }
    svg.text(
        30.0,
        h - 16.0,
        8.0,
        "start",
        &format!(r#"fill="{GREY}""#),
        "每个网格标注名称与编码末三位；各网格详图见后页。",
    );
    svg.finish()
}

fn table_pages(community: &str, community_name: &str, sheets: &[Sheet], o: Options) -> Vec<String> {
    let mut out = Vec::new();
    let rows_per_page = if o.landscape { 22 } else { 34 };
    let chunks: Vec<&[Sheet]> = if sheets.is_empty() {
        vec![&[]]
    } else {
        sheets.chunks(rows_per_page).collect()
    };
    let total = chunks.len();
    for (k, chunk) in chunks.into_iter().enumerate() {
        let (mut svg, w, h) = page(o);
        let title = if total > 1 {
            format!("{community_name} 网格一览（{}/{total}）", k + 1)
        } else {
            format!("{community_name} 网格一览")
        };
        svg.text(
            30.0,
            56.0,
            20.0,
            "start",
            &format!(r#"fill="{RED}" font-weight="bold""#),
            &title,
        );
        svg.text(
            30.0,
            76.0,
            10.0,
            "start",
            &format!(r#"fill="{GREY}""#),
            &format!("社区编码 {community}"),
        );
        let cols = [30.0, 150.0, 0.52 * w, 0.72 * w, 0.85 * w];
        let heads = ["网格编码", "网格名称", "网格员", "户数", "建筑（栋）"];
        let mut y = 104.0;
        svg.rect(30.0, y - 14.0, w - 60.0, 20.0, r##"fill="#eeeeee""##);
        for (x, t) in cols.iter().zip(heads) {
            svg.text(*x + 4.0, y, 10.0, "start", r#"font-weight="bold""#, t);
        }
        for s in chunk {
            y += 20.0;
            let g = &s.grid;
            let worker = s.worker.as_ref().map_or("—".to_string(), |w| {
                w.phone
                    .as_ref()
                    .map_or(w.name.clone(), |p| format!("{} {p}", w.name))
            });
            let cells = [
                g.code.clone(),
                short_name(g),
                worker,
                g.households.to_string(),
                g.buildings.to_string(),
            ];
            for (x, t) in cols.iter().zip(&cells) {
                svg.text(*x + 4.0, y, 10.0, "start", &format!(r#"fill="{INK}""#), t);
            }
            svg.line(
                (30.0, y + 6.0),
                (w - 30.0, y + 6.0),
                r##"stroke="#e0e0e0" stroke-width="0.5""##,
            );
        }
        if k + 1 == total {
            let hh: u64 = sheets.iter().map(|s| s.grid.households).sum();
            let b: u64 = sheets.iter().map(|s| s.grid.buildings).sum();
            y += 24.0;
            svg.text(
                30.0,
                y,
                10.0,
                "start",
                r#"font-weight="bold""#,
                &format!("合计 {} 个网格 · {hh} 户 · {b} 栋", sheets.len()),
            );
        }
        svg.text(
            w - 30.0,
            h - 16.0,
            8.0,
            "end",
            &format!(r#"fill="{GREY}""#),
            "内部资料 · wangge 网格化管理",
        );
        out.push(svg.finish());
    }
    out
}
