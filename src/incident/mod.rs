//! Incidents (事件) and their handling: the digital city management case loop (GB/T 30428):
//! reported → accepted → opened (立案) → dispatched (派遣) → handled (处置) → verified (核查) →
//! closed (结案), with returns (退回), extensions (延期), suspensions (挂账) and voiding (作废),
//! time limits on a working calendar, escalation (小事不出格、大事不出社区), duplicate hints, and
//! statistics.
//!
//! No I/O: the store and HTTP layers persist and expose these values.

pub mod calendar;
pub mod catalogue;
pub mod stats;
pub mod workflow;

pub use calendar::Calendar;
pub use catalogue::{Catalogue, Category, Limit};
pub use workflow::{Action, Case, HistoryEntry, State, TransitionError};

use serde::{Deserialize, Serialize};

/// The level that handles a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Grid,
    Community,
    Street,
    District,
}

impl Level {
    /// The level above (district stays district).
    #[must_use]
    pub fn up(self) -> Level {
        match self {
            Level::Grid => Level::Community,
            Level::Community => Level::Street,
            Level::Street | Level::District => Level::District,
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grid" | "网格" => Ok(Level::Grid),
            "community" | "社区" => Ok(Level::Community),
            "street" | "街道" => Ok(Level::Street),
            "district" | "区" => Ok(Level::District),
            o => Err(format!(
                "unknown level {o:?}: expected grid, community, street or district"
            )),
        }
    }
}

/// Where a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Patrol,
    Hotline,
    ResidentApp,
    Video,
    Department,
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', ' '], "_")
            .as_str()
        {
            "patrol" => Ok(Source::Patrol),
            "hotline" | "12345" | "phone" => Ok(Source::Hotline),
            "resident_app" | "app" | "wechat" | "mobile" => Ok(Source::ResidentApp),
            "video" => Ok(Source::Video),
            "department" => Ok(Source::Department),
            o => Err(format!(
                "unknown source {o:?}: expected patrol, hotline, resident_app, video or department"
            )),
        }
    }
}
