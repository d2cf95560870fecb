//! The household (or workload) band of a grid: between `min` and `max`, aiming at `target`.

/// A band `min ≤ target ≤ max`, all finite and non-negative. Made only by [`Band::new`] (or
/// [`Band::DEFAULT`]), so an empty or inverted band cannot exist.
///
/// ```
/// use wangge::partition::Band;
/// let b = Band::new(200.0, 300.0, 400.0).unwrap();
/// assert!(b.contains(400.0) && !b.contains(401.0));
/// assert!(Band::new(500.0, 300.0, 400.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Band {
    min: f64,
    max: f64,
    target: f64,
}

/// Why numbers do not make a band.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum BandError {
    #[error("min, max and target must be non-negative numbers")]
    NotNumbers,
    #[error("min {min} is above max {max}: the band is empty")]
    Empty { min: f64, max: f64 },
    #[error("target {target} must lie between min {min} and max {max}")]
    TargetOutside { min: f64, target: f64, max: f64 },
}

impl Band {
    /// The usual grid band: 200–400 households, 300 aimed at (about 300 households a grid).
    pub const DEFAULT: Band = Band {
        min: 200.0,
        max: 400.0,
        target: 300.0,
    };

    /// A band of `min ≤ target ≤ max`.
    ///
    /// # Errors
    /// A number that is not finite or is negative, `min > max`, or a target outside.
    pub fn new(min: f64, target: f64, max: f64) -> Result<Band, BandError> {
        if !(min.is_finite() && max.is_finite() && target.is_finite()) || min < 0.0 {
            return Err(BandError::NotNumbers);
        }
        if min > max {
            return Err(BandError::Empty { min, max });
        }
        if target < min || target > max {
            return Err(BandError::TargetOutside { min, target, max });
        }
        Ok(Band { min, max, target })
    }

    #[must_use]
    pub fn min(self) -> f64 {
        self.min
    }

    #[must_use]
    pub fn max(self) -> f64 {
        self.max
    }

    #[must_use]
    pub fn target(self) -> f64 {
        self.target
    }

    /// True when `w` is inside the band.
    #[must_use]
    pub fn contains(&self, w: f64) -> bool {
        w >= self.min - 1e-9 && w <= self.max + 1e-9
    }
}

impl Default for Band {
    fn default() -> Self {
        Band::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ordered_finite_bands_exist() {
        assert_eq!(Band::new(200.0, 300.0, 400.0), Ok(Band::DEFAULT));
        assert_eq!(Band::new(0.0, 0.0, 0.0).map(Band::max), Ok(0.0));
        assert_eq!(Band::new(-1.0, 0.0, 1.0), Err(BandError::NotNumbers));
        assert_eq!(Band::new(f64::NAN, 0.0, 1.0), Err(BandError::NotNumbers));
        assert_eq!(
            Band::new(5.0, 5.0, 4.0),
            Err(BandError::Empty { min: 5.0, max: 4.0 })
        );
        assert!(matches!(
            Band::new(1.0, 9.0, 4.0),
            Err(BandError::TargetOutside { .. })
        ));
    }
}
