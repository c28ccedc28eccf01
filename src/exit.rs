//! How a command's outcome becomes an exit code and the one line on stderr: the only place
//! that decides either.
//!
//! - `0` everything asked for was written;
//! - `1` the command finished, or stopped, with some work not done (the summary names it), or a
//!   store failed part-way: what was written is whole;
//! - `2` bad usage or configuration (flags, dates, tables, URLs, refused credentials, an output
//!   another run holds): nothing was attempted.

use wxcube_connector::rebuild::RebuildError;
use wxcube_connector::run::RunError;

use crate::config::UsageError;

/// Why a command did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
    /// The simulator could not start or serve.
    #[error("{0}")]
    Simulator(String),
    /// Writing the report or summary to stdout failed.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::Run(_) | Failure::Rebuild(RebuildError::Refused(_)) => 2,
            Failure::Rebuild(_) | Failure::Simulator(_) | Failure::Output(_) => 1,
        }
    }

    /// The error line: one line, however the message was built.
    pub fn line(&self) -> String {
        format!("error: {}", wxcube_connector::text::one_line(&self.to_string()))
    }
}

/// What a command that ran reports: everything written, or some work not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    Complete,
    Partial,
}

impl Done {
    pub fn exit_code(self) -> u8 {
        match self {
            Done::Complete => 0,
            Done::Partial => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_attempted_is_2_and_anything_else_1() {
        assert_eq!(Failure::Usage(UsageError("x".into())).exit_code(), 2);
        assert_eq!(Failure::Run(RunError::LeaseHeld("x".into())).exit_code(), 2);
        assert_eq!(Failure::Run(RunError::NoState { appid: "wxa".into(), table: "t".into() }).exit_code(), 2);
        assert_eq!(Failure::Rebuild(RebuildError::Refused("x".into())).exit_code(), 2);
        assert_eq!(Failure::Simulator("x".into()).exit_code(), 1);
        assert_eq!(Failure::Usage(UsageError("a\n  b".into())).line(), "error: a b");
        assert_eq!((Done::Complete.exit_code(), Done::Partial.exit_code()), (0, 1));
    }
}
