//! Epidemic dissemination of versioned data (Demers et al. 1987): anti-entropy
//! and rumor mongering. Being built (issue 3).
