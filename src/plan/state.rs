//! The mutable part of a community's fabric in a plan: which grid each atom is in, the grids'
//! codes, and which are locked. Stored as JSON beside the fabric; every edit writes a new one
//! and the edit log keeps the one before, so undo restores it exactly.

use crate::model::grid_code;
use serde::{Deserialize, Serialize};

/// A grid of the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub code: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
}

/// Grids and the grid (index into `grids`) of every atom of one community.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub grids: Vec<Slot>,
    pub atoms: Vec<u32>,
}

/// The sequence number of a grid code: its last three digits.
#[must_use]
pub fn seq_of(code: &str) -> Option<usize> {
    let digits: String = code
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.get(digits.len().saturating_sub(3)..)?.parse().ok()
}

impl State {
    /// The index of grid `code`.
    #[must_use]
    pub fn index(&self, code: &str) -> Option<usize> {
        self.grids.iter().position(|s| s.code == code)
    }

    /// The atoms of each grid.
    #[must_use]
    pub fn members(&self) -> Vec<Vec<u32>> {
        let mut m = vec![Vec::new(); self.grids.len()];
        for (a, &g) in self.atoms.iter().enumerate() {
            if let Some(v) = m.get_mut(g as usize) {
                v.push(a as u32);
            }
        }
        m
    }

    /// A new grid code for `community`: the sequence number after the highest in use.
    #[must_use]
    pub fn next_code(&self, community: &str) -> String {
        let n = self
            .grids
            .iter()
            .filter_map(|s| seq_of(&s.code))
            .max()
            .unwrap_or(0);
        grid_code(community, n + 1).to_string()
    }

    /// Add a grid; its index.
    pub fn push(&mut self, code: String) -> u32 {
        self.grids.push(Slot {
            code,
            locked: false,
        });
        (self.grids.len() - 1) as u32
    }

    /// Grids without atoms dropped, the rest in code order.
    pub fn normalize(&mut self) {
        let mut used = vec![false; self.grids.len()];
        for &g in &self.atoms {
            if let Some(u) = used.get_mut(g as usize) {
                *u = true;
            }
        }
        let mut order: Vec<usize> = (0..self.grids.len()).filter(|&i| used[i]).collect();
        order.sort_by(|&a, &b| self.grids[a].code.cmp(&self.grids[b].code));
        let mut new_of = vec![u32::MAX; self.grids.len()];
        for (k, &i) in order.iter().enumerate() {
            new_of[i] = k as u32;
        }
        self.grids = order.iter().map(|&i| self.grids[i].clone()).collect();
        for g in &mut self.atoms {
            *g = new_of[*g as usize];
        }
    }

    /// The state as JSON text (stable: the same state gives the same text).
    #[must_use]
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A state from [`State::to_text`], checked against the fabric's atom count.
    ///
    /// # Errors
    /// Text that is not such a state.
    pub fn from_text(s: &str, n_atoms: usize) -> Result<State, String> {
        let st: State = serde_json::from_str(s).map_err(|e| format!("plan state: {e}"))?;
        if st.atoms.len() != n_atoms {
            return Err(format!(
                "plan state: {} atoms, the fabric has {n_atoms}",
                st.atoms.len()
            ));
        }
        if st.atoms.iter().any(|&g| g as usize >= st.grids.len()) {
            return Err("plan state: an atom in no grid".into());
        }
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_empty_grids_and_sorts() {
        let mut s = State {
            grids: vec![
                Slot {
                    code: "105-003".into(),
                    locked: true,
                },
                Slot {
                    code: "105-001".into(),
                    locked: false,
                },
                Slot {
                    code: "105-002".into(),
                    locked: false,
                },
            ],
            atoms: vec![0, 1, 0, 1],
        };
        s.normalize();
        assert_eq!(s.grids.len(), 2);
        assert_eq!(s.grids[0].code, "105-001");
        assert!(s.grids[1].locked);
        assert_eq!(s.atoms, vec![1, 0, 1, 0]);
        assert_eq!(s.next_code("105"), "105-004");
        assert_eq!(seq_of("110101001002007"), Some(7));
        let t = s.to_text();
        assert_eq!(State::from_text(&t, 4).unwrap(), s);
        assert!(State::from_text(&t, 5).is_err());
    }
}
