//! `sim`: a seeded discrete-event network of real [`crate::Node`]s. Being built (issue 3).
