//! The event catalogue (事件分类目录): categories with class, time limit, handling level and
//! escalation, read from TOML. The default follows the GB/T 30428 classes (`data/catalogue.toml`).

use super::Level;
use serde::Deserialize;
use std::collections::HashMap;

/// A time limit in working hours or working days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Limit {
    WorkingHours(u32),
    WorkingDays(u32),
}

impl std::str::FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u32 = num
            .parse()
            .map_err(|_| format!("time limit {s:?}: expected e.g. \"4h\" or \"3d\""))?;
        match unit.trim() {
            "h" | "wh" | "hours" => Ok(Limit::WorkingHours(n)),
            "d" | "wd" | "days" => Ok(Limit::WorkingDays(n)),
            _ => Err(format!(
                "time limit {s:?}: expected e.g. \"4h\" (working hours) or \"3d\" (working days)"
            )),
        }
    }
}

/// One category.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Category {
    pub code: String,
    pub name: String,
    /// Major class (城市部件 / 城市管理事件 / 社会管理事件).
    pub class: String,
    pub subclass: String,
    pub limit: Limit,
    /// The level that handles it first.
    pub level: Level,
    /// Whether a case still open at its due time goes up one level.
    pub escalate: bool,
    /// The highest level escalation reaches.
    pub max_level: Level,
    pub aliases: Vec<String>,
}

#[derive(Deserialize)]
struct RawCat {
    code: String,
    name: String,
    class: String,
    #[serde(default)]
    subclass: String,
    limit: String,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    escalate: Option<bool>,
    #[serde(default)]
    max_level: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
}

#[derive(Deserialize)]
struct RawFile {
    category: Vec<RawCat>,
}

/// The catalogue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Catalogue {
    pub categories: Vec<Category>,
    #[serde(skip)]
    by_key: HashMap<String, usize>,
}

/// Errors reading a catalogue.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("catalogue: {0}")]
    Toml(String),
    #[error("catalogue: category {code}: {message}")]
    Category { code: String, message: String },
}

/// The default catalogue text (GB/T 30428 classes).
pub const DEFAULT_CATALOGUE: &str = include_str!("../../data/catalogue.toml");

impl Catalogue {
    /// Parse a catalogue from TOML.
    ///
    /// # Errors
    /// Bad TOML, an unknown level, a bad time limit, or a duplicate code or alias.
    pub fn from_toml(text: &str) -> Result<Self, CatalogueError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| CatalogueError::Toml(e.to_string()))?;
        let mut categories = Vec::new();
        let mut by_key = HashMap::new();
        for r in raw.category {
            let err = |m: String| CatalogueError::Category {
                code: r.code.clone(),
                message: m,
            };
            let level: Level = r.level.as_deref().unwrap_or("grid").parse().map_err(err)?;
            let max_level: Level = r
                .max_level
                .as_deref()
                .unwrap_or("district")
                .parse()
                .map_err(err)?;
            let limit: Limit = r.limit.parse().map_err(err)?;
            let i = categories.len();
            for key in std::iter::once(&r.code)
                .chain(std::iter::once(&r.name))
                .chain(r.aliases.iter())
            {
                if by_key.insert(key.to_lowercase(), i).is_some_and(|j| j != i) {
                    return Err(err(format!("{key:?} names two categories")));
                }
            }
            categories.push(Category {
                code: r.code,
                name: r.name,
                class: r.class,
                subclass: r.subclass,
                limit,
                level,
                escalate: r.escalate.unwrap_or(true),
                max_level,
                aliases: r.aliases,
            });
        }
        Ok(Catalogue { categories, by_key })
    }

    /// The default catalogue.
    ///
    /// # Panics
    /// Never: the shipped catalogue is checked by a test.
    #[must_use]
    pub fn default_catalogue() -> Self {
        Self::from_toml(DEFAULT_CATALOGUE)
            .unwrap_or_else(|e| unreachable!("shipped catalogue is valid: {e}"))
    }

    /// Look a category up by code, name or alias (case-insensitive).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Category> {
        self.by_key
            .get(&key.trim().to_lowercase())
            .map(|&i| &self.categories[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_catalogue_loads_and_maps_aliases() {
        let c = Catalogue::default_catalogue();
        assert!(c.categories.len() >= 10);
        assert_eq!(c.get("Noise - Residential").unwrap().code, "02-04");
        assert_eq!(
            c.get("井盖破损、丢失").unwrap().limit,
            Limit::WorkingHours(4)
        );
        assert!(c.get("nothing like it").is_none());
    }

    #[test]
    fn bad_limit_is_named() {
        let e = Catalogue::from_toml("[[category]]\ncode='x'\nname='n'\nclass='c'\nlimit='soon'\n")
            .unwrap_err();
        assert!(e.to_string().contains("category x"), "{e}");
    }
}
