//! Rules of publication and edits: what may be published, with which exceptions, and when.

use super::*;

/// A plan may be published when it is a draft and, with `expected_version` (the caller's
/// ETag), still at that version.
pub(crate) fn check_publishable(p: &Plan, expected_version: Option<i64>) -> Result<()> {
    if let Some(v) = expected_version
        && v != p.version
    {
        return Err(StoreError::Stale(format!(
            "plan {} is at version {}, not {v}: it changed meanwhile",
            p.id, p.version
        )));
    }
    if p.status != PlanStatus::Draft {
        return Err(StoreError::Conflict(format!(
            "plan {} is {}; only a draft can be published",
            p.id,
            p.status.as_str()
        )));
    }
    Ok(())
}

/// A plan takes effect after every plan in force for the same communities: `prev` are those
/// plans with the start of their grids (seconds).
pub(crate) fn check_not_before(prev: &[(i64, i64)], valid_from: i64) -> Result<()> {
    for &(pid, from) in prev {
        if from >= valid_from {
            return Err(StoreError::Invalid(format!(
                "plan {pid} takes effect at {}, not before {}: publish from a later time",
                ts_text(from),
                ts_text(valid_from)
            )));
        }
    }
    Ok(())
}

/// What a grid published out of band always carries when no reason is given: one building
/// above the band cannot be split.
pub const OVERSIZE_REASON: &str =
    "一栋楼的户数超出上限，不可拆分（a single building above the band cannot be split）";

/// The exception register of a publication: every grid of plan `id` out of band (code, band,
/// households, in code order) with its reason from `reasons` (by code, `*` for the rest under
/// or over the band); a grid of one building above the band takes [`OVERSIZE_REASON`] unless
/// named.
///
/// # Errors
/// A grid out of band without a reason (all of them named), a blank reason, or a reason for a
/// grid that is not out of band in this plan.
pub(crate) fn exception_register(
    id: i64,
    out_of_band: &[(String, String, u64)],
    reasons: &super::super::Reasons,
) -> Result<Vec<(String, String, u64, String)>> {
    if let Some((code, _)) = reasons.iter().find(|(_, r)| r.trim().is_empty()) {
        return Err(StoreError::Invalid(format!(
            "the reason for grid {code} is blank: say why it may stay out of band"
        )));
    }
    for code in reasons.keys().filter(|c| *c != "*") {
        if !out_of_band.iter().any(|g| &g.0 == code) {
            return Err(StoreError::Invalid(format!(
                "a reason is given for grid {code}, which is not out of band in plan {id} (only grids out of band are registered)"
            )));
        }
    }
    let mut out = Vec::with_capacity(out_of_band.len());
    let mut missing = Vec::new();
    for (code, band, hh) in out_of_band {
        // `*` covers the grids a planner could redraw; one building above the band has its own
        let reason = reasons
            .get(code)
            .or_else(|| reasons.get("*").filter(|_| band != "oversize"))
            .map(|r| r.trim().to_string())
            .or_else(|| (band == "oversize").then(|| OVERSIZE_REASON.to_string()));
        match reason {
            Some(r) => out.push((code.clone(), band.clone(), *hh, r)),
            None => missing.push(format!("{code} ({band}, {hh} households)")),
        }
    }
    if !missing.is_empty() {
        return Err(StoreError::Invalid(format!(
            "plan {id} has {} grid{} out of band without a reason: {}; give one per grid (`--exception CODE=REASON`, or \"exceptions\": {{\"CODE\": \"reason\"}} in the body)",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        )));
    }
    out.sort();
    Ok(out)
}

/// The audit line of a publication: (target, detail).
pub(crate) fn publish_detail(
    id: i64,
    valid_from: i64,
    retired: &[i64],
    exceptions: usize,
) -> (String, String) {
    (
        format!("plan {id}"),
        format!(
            "valid from {}; retired grids of plans {retired:?}; {exceptions} grids out of band registered with reasons",
            ts_text(valid_from)
        ),
    )
}

/// A plan may be edited when it is a draft still at the version the edit was computed on.
pub(crate) fn check_editable(p: &Plan, expected_version: i64) -> Result<()> {
    if p.status != PlanStatus::Draft {
        return Err(StoreError::Conflict(format!(
            "plan {} is {}; only a draft can be edited (copy it first: `wangge plans copy {}`)",
            p.id,
            p.status.as_str(),
            p.id
        )));
    }
    if expected_version != p.version {
        return Err(StoreError::Stale(format!(
            "plan {} is at version {}, not {expected_version}: it changed meanwhile",
            p.id, p.version
        )));
    }
    Ok(())
}
