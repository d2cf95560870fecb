//! Household counts: given per building, or estimated from floors and floor area.

use serde::Serialize;

/// Where a building's household count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HouseholdSource {
    /// The input's `households` property.
    Given,
    /// Estimated from floors × footprint × residential share ÷ dwelling size.
    Estimated,
}

/// Parameters of the household estimate used when a building has no `households` property.
///
/// households = round(footprint m² × floors × residential share ÷ `dwelling_m2`), where floors
/// come from `floors`, else `building:levels`, else round(`height` ÷ `storey_height_m`), else 1.
#[derive(Debug, Clone, Serialize)]
pub struct EstimateParams {
    /// Storey height in metres used to turn `height` into floors (default 3.0).
    pub storey_height_m: f64,
    /// Gross floor area per household in m² (default 100).
    pub dwelling_m2: f64,
    /// Residential share for `building=yes` or untagged buildings (default 0.5).
    pub unknown_share: f64,
}

impl Default for EstimateParams {
    fn default() -> Self {
        EstimateParams {
            storey_height_m: 3.0,
            dwelling_m2: 100.0,
            unknown_share: 0.5,
        }
    }
}

impl EstimateParams {
    /// Share of floor area that is dwellings, by the building's tag.
    #[must_use]
    pub fn residential_share(&self, building: Option<&str>) -> f64 {
        match building.unwrap_or("yes") {
            "apartments" | "residential" | "house" | "detached" | "semidetached_house"
            | "terrace" | "dormitory" | "bungalow" | "cabin" | "farm" | "static_caravan"
            | "houseboat" | "villa" => 1.0,
            "yes" | "" => self.unknown_share,
            _ => 0.0,
        }
    }

    /// Floors from the properties that say so, else 1.
    #[must_use]
    pub fn floors(&self, floors: Option<f64>, levels: Option<f64>, height: Option<f64>) -> f64 {
        if let Some(f) = floors.filter(|f| *f > 0.0) {
            return f;
        }
        if let Some(l) = levels.filter(|l| *l > 0.0) {
            return l;
        }
        if let Some(h) = height.filter(|h| *h > 0.0) {
            return (h / self.storey_height_m).round().max(1.0);
        }
        1.0
    }

    /// The estimate for one building.
    #[must_use]
    pub fn estimate(&self, footprint_m2: f64, floors: f64, share: f64) -> u32 {
        let v = (footprint_m2 * floors * share / self.dwelling_m2).round();
        if v.is_finite() && v > 0.0 {
            v.min(f64::from(u32::MAX)) as u32
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_storey_slab() {
        let p = EstimateParams::default();
        let f = p.floors(None, Some(6.0), None);
        assert_eq!(
            p.estimate(1000.0, f, p.residential_share(Some("apartments"))),
            60
        );
        assert_eq!(p.floors(None, None, Some(30.0)), 10.0);
        assert_eq!(p.residential_share(Some("school")), 0.0);
    }
}
