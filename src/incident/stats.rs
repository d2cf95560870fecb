//! Assessment figures (考核): per grid, grid worker, community, street or category — received, accepted,
//! closed, closed on time, on-time closure rate, overdue now, median and p90 time to close,
//! escalations, returns — and H3 cell counts for heat maps.

use super::{Case, State};
use serde::Serialize;
use std::collections::BTreeMap;

/// How to group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Grid,
    Community,
    Street,
    Category,
    /// The grid worker of the case's grid (网格员考核), by name; `""` for grids without one.
    Worker,
}

impl std::str::FromStr for By {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "grid" => Ok(By::Grid),
            "community" => Ok(By::Community),
            "street" => Ok(By::Street),
            "category" => Ok(By::Category),
            "worker" => Ok(By::Worker),
            o => Err(format!(
                "--by {o:?}: expected grid, worker, community, street or category"
            )),
        }
    }
}

/// Figures for one group.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Figures {
    pub key: String,
    /// By worker: the grids whose cases are counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grids: Vec<String>,
    pub received: u64,
    pub accepted: u64,
    pub closed: u64,
    pub closed_on_time: u64,
    /// closed on time ÷ closed, percent (None when nothing closed).
    pub on_time_rate_pct: Option<f64>,
    /// closed ÷ accepted, percent.
    pub closure_rate_pct: Option<f64>,
    pub overdue_now: u64,
    pub median_hours_to_close: Option<f64>,
    pub p90_hours_to_close: Option<f64>,
    pub escalations: u64,
    pub returns: u64,
    pub mean_score: Option<f64>,
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// Figures per group for cases reported in [from, to), evaluated at `now` (`received` counts
/// only those). By worker, `workers` maps grid codes to their worker's name.
#[must_use]
pub fn figures(
    cases: &[Case],
    by: By,
    from: Option<i64>,
    to: Option<i64>,
    now: i64,
    workers: &BTreeMap<String, String>,
) -> Vec<Figures> {
    let mut groups: BTreeMap<String, Vec<&Case>> = BTreeMap::new();
    let mut grids_of: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for c in cases {
        if from.is_some_and(|f| c.reported_at < f) || to.is_some_and(|t| c.reported_at >= t) {
            continue;
        }
        let key = match by {
            By::Grid => c.grid.clone(),
            By::Community => c.community.clone(),
            By::Street => c.street.clone(),
            By::Category => Some(c.category.clone()),
            By::Worker => c.grid.as_ref().and_then(|g| workers.get(g)).cloned(),
        }
        .unwrap_or_default();
        if by == By::Worker
            && let Some(g) = &c.grid
        {
            grids_of.entry(key.clone()).or_default().insert(g.clone());
        }
        groups.entry(key).or_default().push(c);
    }
    groups
        .into_iter()
        .map(|(key, cs)| {
            let mut f = Figures {
                grids: grids_of
                    .remove(&key)
                    .map(|s| s.into_iter().collect())
                    .unwrap_or_default(),
                key,
                ..Figures::default()
            };
            let mut hours = Vec::new();
            let mut scores = Vec::new();
            for c in cs {
                f.received += 1;
                if !matches!(c.state, State::Reported | State::Rejected) {
                    f.accepted += 1;
                }
                if let Some(closed) = c.closed_at {
                    f.closed += 1;
                    hours.push((closed - c.reported_at) as f64 / 3600.0);
                    if c.closed_on_time() == Some(true) {
                        f.closed_on_time += 1;
                    }
                }
                if c.overdue(now) {
                    f.overdue_now += 1;
                }
                f.escalations += u64::from(c.escalations);
                f.returns += u64::from(c.returns);
                if let Some(s) = c.score {
                    scores.push(f64::from(s));
                }
            }
            hours.sort_by(f64::total_cmp);
            f.median_hours_to_close = quantile(&hours, 0.5);
            f.p90_hours_to_close = quantile(&hours, 0.9);
            f.on_time_rate_pct =
                (f.closed > 0).then(|| 100.0 * f.closed_on_time as f64 / f.closed as f64);
            f.closure_rate_pct =
                (f.accepted > 0).then(|| 100.0 * f.closed as f64 / f.accepted as f64);
            f.mean_score =
                (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
            f
        })
        .collect()
}

/// Count of cases per H3 cell at `resolution` (0–15), cells with fewer than `min_count`
/// dropped (public heat maps show aggregates only).
#[must_use]
pub fn h3_counts(cases: &[Case], resolution: u8, min_count: u64) -> Vec<(String, u64)> {
    let Ok(res) = h3o::Resolution::try_from(resolution) else {
        return Vec::new();
    };
    let mut m: BTreeMap<u64, u64> = BTreeMap::new();
    for c in cases {
        if let Ok(ll) = h3o::LatLng::new(c.lat, c.lon) {
            *m.entry(u64::from(ll.to_cell(res))).or_insert(0) += 1;
        }
    }
    m.into_iter()
        .filter(|&(_, n)| n >= min_count)
        .filter_map(|(cell, n)| {
            h3o::CellIndex::try_from(cell)
                .ok()
                .map(|ci| (ci.to_string(), n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Action, Calendar, Catalogue, Source};

    fn t(s: &str) -> i64 {
        crate::model::parse_time_in(s, crate::incident::Calendar::default_calendar().offset)
            .unwrap()
    }

    /// Three cases in grid G1 reported Monday 09:00: closed 10:00, closed 16:00, open.
    fn three_cases() -> Vec<Case> {
        let cat = Catalogue::default_catalogue();
        let cal = Calendar::default_calendar();
        let c = cat.get("02-01").unwrap();
        let mut cases = Vec::new();
        for (i, close) in ["2025-03-10 10:00", "2025-03-10 16:00", ""]
            .iter()
            .enumerate()
        {
            let mut k = Case::report(
                i.to_string(),
                c,
                String::new(),
                111.3,
                30.7,
                Source::Patrol,
                None,
                t("2025-03-10 09:00"),
            );
            k.grid = Some("G1".into());
            for a in [
                Action::Accept,
                Action::Open,
                Action::Dispatch { unit: "u".into() },
            ] {
                k.apply(a, "d", t("2025-03-10 09:00"), c, &cal).unwrap();
            }
            if !close.is_empty() {
                for a in [
                    Action::Handle,
                    Action::Verify { passed: true },
                    Action::Close,
                ] {
                    k.apply(a, "d", t(close), c, &cal).unwrap();
                }
            }
            cases.push(k);
        }
        cases
    }

    #[test]
    fn on_time_and_medians() {
        let cases = three_cases();
        let f = &figures(
            &cases,
            By::Grid,
            None,
            None,
            t("2025-03-11 09:00"),
            &BTreeMap::new(),
        )[0];
        assert_eq!(
            (
                f.received,
                f.accepted,
                f.closed,
                f.closed_on_time,
                f.overdue_now
            ),
            (3, 3, 2, 1, 1)
        );
        assert_eq!(f.on_time_rate_pct, Some(50.0));
        assert_eq!(f.median_hours_to_close, Some(4.0));
        let h = h3_counts(&cases, 9, 1);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].1, 3);
        assert!(h3_counts(&cases, 9, 4).is_empty());
    }

    #[test]
    fn by_grid_worker() {
        let cases = three_cases();
        // by worker: 张三 looks after G1 and G2 (G2 has no cases), 李四 after G9
        let workers: BTreeMap<String, String> = [("G1", "张三"), ("G2", "张三"), ("G9", "李四")]
            .into_iter()
            .map(|(g, w)| (g.to_string(), w.to_string()))
            .collect();
        let mut other = cases[0].clone();
        other.grid = Some("G7".into());
        let mut all = cases.clone();
        all.push(other);
        let w = figures(
            &all,
            By::Worker,
            None,
            None,
            t("2025-03-11 09:00"),
            &workers,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            (w[0].key.as_str(), w[0].received),
            ("", 1),
            "a grid without a worker"
        );
        assert_eq!(
            (w[1].key.as_str(), w[1].received, w[1].closed),
            ("张三", 3, 2)
        );
        assert_eq!(w[1].grids, ["G1"]);
        assert_eq!(w[1].on_time_rate_pct, Some(50.0));
        // `received` counts only cases reported in the period
        let later = figures(
            &all,
            By::Worker,
            Some(t("2025-03-11 00:00")),
            None,
            t("2025-03-11 09:00"),
            &workers,
        );
        assert!(later.is_empty(), "{later:?}");
    }
}
