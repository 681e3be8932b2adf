//! [`ConfigError`], the one error type of parameter validation, in a module of
//! its own so that the types it validates (`profile`'s and `epidemic`'s) need
//! not import each other.

/// A bad configuration value: which parameter, and what is wrong with it.
/// The parameter's flat name (as written in scenarios and on command lines)
/// is `field` followed by `part`: `node_timeout` `_ms`, `rumor` `_fanout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field's name, as in the builder's setter.
    pub field: &'static str,
    /// The part of the field at fault, as a suffix of its flat name.
    pub part: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

impl ConfigError {
    /// The parameter's flat name.
    pub fn param(&self) -> alloc::string::String {
        let mut n = alloc::string::String::from(self.field);
        n.push_str(self.part);
        n
    }
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "invalid config: {}{}: {}",
            self.field, self.part, self.problem
        )
    }
}

impl core::error::Error for ConfigError {}
