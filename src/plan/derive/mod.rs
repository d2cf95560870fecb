//! Grid polygons and figures derived from a fabric and a state: the same assembly and
//! straightening as a regrid, so a grid's polygon depends only on its atoms and its neighbours'.

use super::EditError;
use super::state::State;
use crate::model::grid_name;
use crate::partition::fabric::Fabric;
use crate::partition::follow::Followed;
use crate::partition::{Band, assemble, metrics};
use crate::store::{GridRecord, band_label};
use geo::{LineString, MultiPolygon, Polygon};
use serde_json::{Value, json};

/// One grid as derived.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub code: String,
    pub name: Option<String>,
    pub locked: bool,
    pub households: u64,
    pub weight: f64,
    /// Buildings (indices into the fabric's list), ascending.
    pub buildings: Vec<u32>,
    /// Atom ids, ascending.
    pub atoms: Vec<u32>,
    pub area_m2: f64,
    pub perimeter_m: f64,
    pub polsby_popper: f64,
    /// "in", "under", "over" or "oversize".
    pub band: &'static str,
    /// WGS84.
    pub geometry: Polygon,
}

impl Derived {
    /// The grid as the store keeps it.
    #[must_use]
    pub fn record(&self, f: &Fabric) -> GridRecord {
        GridRecord {
            code: self.code.clone(),
            name: self.name.clone(),
            community: f.community.clone(),
            street: f.street.clone(),
            households: self.households,
            buildings: self.buildings.len() as u64,
            weight: self.weight,
            band: self.band.to_string(),
            geometry: MultiPolygon(vec![self.geometry.clone()]),
            valid_from: None,
            valid_to: None,
        }
    }

    /// The grid as a GeoJSON feature with its figures.
    #[must_use]
    pub fn feature(&self, f: &Fabric) -> Value {
        json!({
            "type": "Feature",
            "id": self.code,
            "properties": {
                "code": self.code, "name": self.name, "community": f.community,
                "street": f.street, "households": self.households, "weight": self.weight,
                "buildings": self.buildings.len(), "atoms": self.atoms.len(), "band": self.band,
                "locked": self.locked, "area_m2": round2(self.area_m2),
                "polsby_popper": (self.polsby_popper * 1e4).round() / 1e4,
            },
            "geometry": crate::io::write::polygon_json(&self.geometry),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The name of grid `code` in community `name`: 第N网格 from the code's sequence number.
#[must_use]
pub fn name_of(f: &Fabric, code: &str) -> Option<String> {
    let n = super::state::seq_of(code)?;
    f.name.as_deref().map(|nm| grid_name(nm, n))
}

/// The grids' polygons on the written coordinate grid, shared edges kept shared (as a regrid
/// writes them); left as drawn where rounding would make a ring touch itself, or around kept
/// polygons.
fn snap(
    f: &Fabric,
    st: &State,
    (members, mut polys): (&[Vec<u32>], Vec<Option<Polygon>>),
    follow: Option<&mut crate::geom::snap::SnapFollow>,
) -> Vec<Option<Polygon>> {
    let mut snapped: Vec<Polygon> = polys
        .iter_mut()
        .map(|p| {
            p.take()
                .unwrap_or_else(|| Polygon::new(LineString(vec![]), vec![]))
        })
        .collect();
    let keep = members.iter().any(|m| match m.as_slice() {
        [a] => f.atom(*a as usize).is_some_and(|at| at.fixed.is_some()),
        _ => false,
    });
    if !keep {
        let _s = tracing::debug_span!("snap").entered();
        let names: Vec<&str> = st.grids.iter().map(|g| g.code.as_str()).collect();
        let step = crate::geom::snap::GRID_DEG;
        let _ = match follow {
            Some(fw) => crate::geom::snap::snap_round_following(fw, &names, &mut snapped, step),
            None => crate::geom::snap::snap_round(&mut snapped, step),
        };
    }
    snapped
        .into_iter()
        .map(|p| (!p.exterior().0.is_empty()).then_some(p))
        .collect()
}

/// Every grid of the state, in the state's order.
///
/// # Errors
/// A grid with no atoms, or in more than one piece.
pub fn derive(f: &Fabric, st: &State, band: Band) -> Result<Vec<Derived>, EditError> {
    // what the fabric's last derivation kept (a fresh start when another derivation holds it)
    let mut guard = f.follow.0.try_lock().ok();
    let mut fresh = Followed::default();
    let fol: &mut Followed = match guard.as_deref_mut() {
        Some(kept) => kept.get_or_insert_with(Box::default),
        None => &mut fresh,
    };
    derive_with(f, st, band, Some(fol))
}

/// [`derive`] of a fabric derived once (an import, a whole plan): nothing kept for a next edit.
///
/// # Errors
/// A grid with no atoms, or in more than one piece.
pub fn derive_once(f: &Fabric, st: &State, band: Band) -> Result<Vec<Derived>, EditError> {
    derive_with(f, st, band, None)
}

fn derive_with(
    f: &Fabric,
    st: &State,
    band: Band,
    mut fol: Option<&mut Followed>,
) -> Result<Vec<Derived>, EditError> {
    let n = st.grids.len();
    let members = st.members();
    let (polys, mut metres) = assemble_parts(f, st, &members, fol.as_mut().map(|f| &mut f.parts))?;
    let mut polys = snap(f, st, (&members, polys), fol.map(|f| &mut f.snap));
    let mut grids = Vec::with_capacity(n);
    for (g, slot) in st.grids.iter().enumerate() {
        let (Some(poly), Some(m)) = (polys[g].take(), metres[g].take()) else {
            return Err(EditError::Refused(format!(
                "grid {} would be left empty",
                slot.code
            )));
        };
        let mut hh = 0u64;
        let mut wt = 0.0;
        let mut blds = Vec::new();
        for &a in &members[g] {
            if let Some(at) = f.atom(a as usize) {
                hh += at.households;
                wt += at.weight;
                blds.extend(at.buildings.iter().copied());
            }
        }
        blds.sort_unstable();
        let (area, perim) = metrics::area_perimeter(&m);
        let single = blds.len() == 1;
        grids.push(Derived {
            code: slot.code.clone(),
            name: name_of(f, &slot.code),
            locked: slot.locked,
            households: hh,
            weight: wt,
            band: band_label(wt, band.min(), band.max(), single),
            buildings: blds,
            atoms: members[g].clone(),
            area_m2: area,
            perimeter_m: perim,
            polsby_popper: if perim > 0.0 {
                4.0 * std::f64::consts::PI * area / (perim * perim)
            } else {
                0.0
            },
            geometry: poly,
        });
    }
    Ok(grids)
}

mod parts;
use parts::*;
