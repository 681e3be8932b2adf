//! The redis world: a real Redis Cluster as the system under test.

pub mod cluster;

use anyhow::{bail, Result};

use crate::scenario::Scenario;
use crate::world::{Control, World};

/// Starts one trial's Redis Cluster.
///
/// # Errors
/// A server that cannot start.
pub fn start(_s: &Scenario, _trial: usize, _control: &Control) -> Result<Box<dyn World>> {
    bail!("the redis world is not built yet")
}
