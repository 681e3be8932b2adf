//! Replays the decode fuzz target's corpus (and any crash artifacts) on stable
//! Rust, through the very check the fuzz target runs (`fuzz/src/lib.rs`).
//!
//! Seeds named `valid-*` must decode, `reject-*` must be refused, and `edge-*`
//! and libFuzzer's hash-named finds only have to pass the check. Every vector of
//! `docs/wire-format.md` must be in the corpus.

#[path = "../../fuzz/src/lib.rs"]
mod check;

use std::fs;
use std::path::{Path, PathBuf};

const DOC: &str = include_str!("../../docs/wire-format.md");

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file in `dir`, sorted by name; none when `dir` does not exist.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = read
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Runs the fuzz target's check on one input, naming the file if it panics.
fn replay(name: &str, bytes: &[u8]) -> Result<(), gossip_core::wire::DecodeError> {
    std::panic::catch_unwind(|| check::check_decode(bytes))
        .unwrap_or_else(|_| panic!("fuzz check failed on {name}"))
}

#[test]
fn every_corpus_input_passes_the_fuzz_check() {
    let corpus = files(&fuzz_dir().join("corpus/decode"));
    assert!(
        corpus.len() >= 20,
        "fuzz/corpus/decode has only {} seeds",
        corpus.len()
    );
    let (mut valid, mut rejected) = (0, 0);
    for (name, bytes) in &corpus {
        let result = replay(name, bytes);
        if name.starts_with("valid-") {
            assert_eq!(result, Ok(()), "{name} should decode");
            valid += 1;
        } else if name.starts_with("reject-") {
            assert!(result.is_err(), "{name} should be refused");
            rejected += 1;
        }
    }
    assert!(
        valid >= 6 && rejected >= 10,
        "{valid} valid, {rejected} rejected seeds"
    );
}

#[test]
fn every_crash_artifact_now_passes_the_fuzz_check() {
    // fuzz/artifacts/decode exists only after the fuzzer found something; each
    // input there must pass once the bug is fixed.
    for (name, bytes) in files(&fuzz_dir().join("artifacts/decode")) {
        let _ = replay(&name, &bytes);
    }
}

#[test]
fn every_documented_vector_is_a_corpus_seed() {
    let corpus = files(&fuzz_dir().join("corpus/decode"));
    let vectors = doc_vectors();
    assert!(vectors.len() >= 6, "found only {} vectors", vectors.len());
    for (label, bytes) in vectors {
        assert!(
            corpus.iter().any(|(_, seed)| *seed == bytes),
            "vector {label} of docs/wire-format.md is missing from fuzz/corpus/decode"
        );
    }
}

/// The `hex` block of each `### vector:` section, as bytes.
fn doc_vectors() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut label = None;
    let mut lines = DOC.lines();
    while let Some(line) = lines.next() {
        if let Some(l) = line.strip_prefix("### vector: ") {
            label = Some(l.trim().to_string());
        } else if line == "```hex" && label.is_some() {
            let digits: String = lines
                .by_ref()
                .take_while(|l| *l != "```")
                .flat_map(|l| l.split('#').next().unwrap_or("").chars())
                .filter(|c| !c.is_whitespace())
                .collect();
            let bytes = (0..digits.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digits"))
                .collect();
            out.push((
                label.take().expect("a hex block follows a vector heading"),
                bytes,
            ));
        }
    }
    out
}

#[test]
fn every_node_ops_seed_runs_and_keeps_the_node_s_promises() {
    // Each seed drives a live Node through `fuzz/src/node_ops.rs`, the code
    // the `node_ops` fuzz target runs; any broken promise panics there.
    let corpus = files(&fuzz_dir().join("corpus/node_ops"));
    assert!(
        corpus.len() >= 6,
        "fuzz/corpus/node_ops has {} seeds",
        corpus.len()
    );
    for (name, bytes) in corpus
        .iter()
        .chain(&files(&fuzz_dir().join("artifacts/node_ops")))
    {
        std::panic::catch_unwind(|| check::node_ops::run(bytes))
            .unwrap_or_else(|_| panic!("node_ops check failed on {name}"));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Stable Rust's stand-in for the fuzzer between its runs: arbitrary
    /// inputs, and seeds with bytes overwritten, through the same check.
    #[test]
    fn random_node_ops_keep_the_node_s_promises(
        mode in 0u8..8,
        ops in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3_000),
        seed in proptest::prelude::any::<proptest::sample::Index>(),
        flips in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
            0..8,
        ),
    ) {
        let mut random = vec![mode];
        random.extend_from_slice(&ops);
        check::node_ops::run(&random);
        let corpus = files(&fuzz_dir().join("corpus/node_ops"));
        let mut mutated = corpus[seed.index(corpus.len())].1.clone();
        for (at, byte) in flips {
            let i = at.index(mutated.len());
            mutated[i] = byte;
        }
        check::node_ops::run(&mutated);
    }
}
