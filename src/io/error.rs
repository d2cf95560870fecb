//! Input errors that name the file, the feature and the field, and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in an input something is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The feature (`feature #12 (id w123)`) or row (`row 7`), when one is concerned.
    pub item: Option<String>,
    /// The field or property, when one is concerned.
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(i) = &self.item {
            write!(f, ": {i}")?;
        }
        if let Some(fl) = &self.field {
            write!(f, ": field `{fl}`")?;
        }
        Ok(())
    }
}

/// An error in an input file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid JSON / CSV / PBF.
    #[error("{file}: {message}")]
    Syntax { file: PathBuf, message: String },
    /// A feature, row or field is wrong.
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
}

impl InputError {
    /// An error about the whole file.
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        InputError::Syntax {
            file: file.to_path_buf(),
            message: message.into(),
        }
    }

    /// An error about one item (feature/row) and optionally a field.
    pub fn item(
        file: &Path,
        item: impl Into<String>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        InputError::Invalid {
            at: Location {
                file: file.to_path_buf(),
                item: Some(item.into()),
                field: field.map(str::to_string),
            },
            message: message.into(),
        }
    }
}
