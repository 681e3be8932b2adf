//! [`ConfigError`], the one error type of parameter validation, in a module of
//! its own so that the types it validates (`profile`'s and `epidemic`'s) need
//! not import each other.

/// A bad configuration value: which field, and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field's name, as in the builder's setter.
    pub field: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid config: {}: {}", self.field, self.problem)
    }
}

impl core::error::Error for ConfigError {}
