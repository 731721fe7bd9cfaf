//! Errors of training runs: data, checkpoints, divergence, files. Each names the place (file,
//! iteration, layer) and says how to get out.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct RunError {
    /// Stable code (`E05xx`, listed in docs/errors.md).
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
}

impl RunError {
    pub fn new(code: &'static str, message: impl Into<String>) -> RunError {
        RunError { code, message: message.into(), help: None }
    }
    pub fn help(mut self, help: impl Into<String>) -> RunError {
        self.help = Some(help.into());
        self
    }
    pub fn io(path: &Path, what: &str, e: std::io::Error) -> RunError {
        RunError::new("E0500", format!("cannot {what} `{}`: {e}", path.display()))
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "error[{}]: {}", self.code, self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\n  = help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RunError {}

/// Run, engine and data errors reach the user as diagnostics, rendered once at the boundary like
/// every other (they have no location in a spec).
impl From<RunError> for crate::diagnostic::Diagnostic {
    fn from(e: RunError) -> crate::diagnostic::Diagnostic {
        crate::diagnostic::Diagnostic::error(e.code, e.message).with_help(e.help)
    }
}
