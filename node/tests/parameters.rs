//! `docs/parameters.md` is made from the core's one declaration of the
//! protocol parameters; this test fails when the file is out of step
//! (`GOSSIP_BLESS=1` writes it).

use std::path::Path;

#[test]
fn the_parameter_reference_matches_the_declaration() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/parameters.md");
    let made = gossip_node::profile::reference();
    if std::env::var_os("GOSSIP_BLESS").is_some() {
        std::fs::write(&path, &made).unwrap();
    }
    let held = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        held == made,
        "docs/parameters.md is out of step with core/src/profile/mod.rs: \
         run GOSSIP_BLESS=1 cargo test -p gossip-node --test parameters"
    );
}
