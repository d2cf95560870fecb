//! Workload weights (任务相当): a linear formula over numeric building properties, e.g.
//! `households + 3*special + 0.5*shops`. Missing properties count as 0.

use serde_json::{Map, Value};

/// A parsed formula: a constant plus coefficient × property terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    pub terms: Vec<(f64, String)>,
    pub constant: f64,
    text: String,
}

impl Weight {
    /// Parse a formula.
    ///
    /// ```
    /// use wangge::model::Weight;
    /// let w = Weight::parse("households + 3*special - 0.5 * shops + 2").unwrap();
    /// assert_eq!(w.terms.len(), 3);
    /// assert_eq!(w.constant, 2.0);
    /// ```
    ///
    /// # Errors
    /// A message saying which term cannot be read.
    pub fn parse(text: &str) -> Result<Weight, String> {
        let mut terms = Vec::new();
        let mut constant = 0.0;
        let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if s.is_empty() {
            return Err("the weight formula is empty".into());
        }
        let mut parts: Vec<(f64, String)> = Vec::new();
        let mut cur = String::new();
        let mut sign = 1.0;
        for (i, ch) in s.char_indices() {
            if (ch == '+' || ch == '-') && i > 0 && !cur.ends_with(['*', 'e', 'E']) {
                parts.push((sign, std::mem::take(&mut cur)));
                sign = if ch == '-' { -1.0 } else { 1.0 };
            } else if (ch == '+' || ch == '-') && i == 0 {
                sign = if ch == '-' { -1.0 } else { 1.0 };
            } else {
                cur.push(ch);
            }
        }
        parts.push((sign, cur));
        for (sign, term) in parts {
            if term.is_empty() {
                return Err(format!("weight {text:?}: a term is missing"));
            }
            let factors: Vec<&str> = term.split('*').collect();
            let mut coef = sign;
            let mut prop: Option<String> = None;
            for f in factors {
                if let Ok(v) = f.parse::<f64>() {
                    coef *= v;
                } else if !f.is_empty()
                    && f.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '.')
                {
                    if prop.is_some() {
                        return Err(format!(
                            "weight {text:?}: term {term:?} multiplies two properties; the formula must be linear"
                        ));
                    }
                    prop = Some(f.to_string());
                } else {
                    return Err(format!(
                        "weight {text:?}: cannot read {f:?} in term {term:?}"
                    ));
                }
            }
            match prop {
                Some(p) => terms.push((coef, p)),
                None => constant += coef,
            }
        }
        Ok(Weight {
            terms,
            constant,
            text: text.trim().to_string(),
        })
    }

    /// The formula as given.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluate on a feature's properties; `households` is the building's (given or estimated).
    ///
    /// # Errors
    /// A property that is present but not numeric (named).
    pub fn eval(&self, props: &Map<String, Value>, households: u32) -> Result<f64, String> {
        let mut w = self.constant;
        for (c, p) in &self.terms {
            let v = if p == "households" {
                f64::from(households)
            } else {
                match props.get(p) {
                    None | Some(Value::Null) => 0.0,
                    Some(v) => crate::io::geojson::value_number(v).ok_or_else(|| {
                        format!("property `{p}` used in --weight is not a number: {v}")
                    })?,
                }
            };
            w += c * v;
        }
        if !w.is_finite() || w < 0.0 {
            return Err(format!(
                "--weight gives {w}; weights must be finite and not negative"
            ));
        }
        Ok(w)
    }
}
