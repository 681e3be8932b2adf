//! Figures with their uncertainty, end to end through the binary (issue
//! 15): `sweep --trials auto`, the busy-host flag, and `diff`.

use std::path::PathBuf;
use std::process::Command;

use gossip_loadgen::report::Report;
use gossip_loadgen::sweep::Verdict;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gossip-loadgen-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gossip-loadgen"))
}

#[test]
fn trials_auto_adds_trials_until_the_target_is_decided() {
    let dir = out_dir("sweep-auto");
    let out = bin()
        .args([
            "sweep",
            "-s",
            "crash",
            "-n",
            "20",
            "--set",
            "run.warmup_s=8",
            "--set",
            "run.duration_s=20",
            "--sweep",
            "profile.node_timeout_ms=1000,3000",
            "--target",
            "detect_all_fail_s.p50=2.5",
            "--trials",
            "auto",
            "--budget",
            "120",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = Report::read(&dir).unwrap();
    let sw = r.sweep.unwrap();
    // One crash bounds no median; six do (ranks 1 and 6 of six: 96.9 %).
    assert!(sw.points.iter().all(|p| p.summary.trials >= 6), "{sw:?}");
    assert_eq!(sw.points[0].verdict, Some(Verdict::Met));
    assert_eq!(sw.points[1].verdict, Some(Verdict::Missed));
    assert_eq!(sw.recommended, Some(0));
    assert_eq!(sw.auto.unwrap().ended, "decided");
    assert!(sw.statement.contains("Sure at 95 %"), "{}", sw.statement);
}

/// A CPU-bound process beside the run, killed by its pid when dropped.
struct Burner(std::process::Child);

impl Drop for Burner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_run_beside_a_cpu_heavy_process_is_flagged_busy() {
    let _burner = Burner(
        Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    let dir = out_dir("busy");
    let out = bin()
        .args(["run", "-s", "crash", "-n", "20", "--world", "sim", "--set"])
        .args([
            "run.warmup_s=8",
            "--set",
            "run.duration_s=20",
            "-t",
            "2",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = Report::read(&dir).unwrap();
    let h = r.host.expect("host noise recorded");
    // The burner is not the run's descendant: it counts as another process.
    assert!(h.busy && h.others_cores >= 0.3, "{h:?}");
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("**Busy host**"), "{md}");
}

#[test]
fn diff_tells_noise_from_a_node_timeout_change_and_gates_on_it() {
    let run = |name: &str, timeout: &str, seed: &str| {
        let dir = out_dir(name);
        let out = bin()
            .args([
                "run", "-s", "crash", "-n", "20", "--world", "sim", "-t", "16",
            ])
            .args(["--set", "run.warmup_s=8", "--set", "run.duration_s=20"])
            .args(["--set", &format!("profile.node_timeout_ms={timeout}")])
            .args(["--seed", seed, "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    };
    let (a, same, fast) = (
        run("diff-a", "3000", "1"),
        run("diff-same", "3000", "2"),
        run("diff-fast", "2000", "1"),
    );
    let diff = |x: &PathBuf, y: &PathBuf| {
        bin()
            .arg("diff")
            .args([x, y])
            .args(["--fail-on", "detect_all_fail_s.p50"])
            .output()
            .unwrap()
    };
    // Other seeds, same code: nothing beyond noise.
    let out = diff(&a, &same);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("No change beyond noise."), "{text}");
    // node_timeout 3 s → 2 s: detection faster beyond noise (no failure:
    // lower is better), and the other way round it fails the gate.
    let out = diff(&a, &fast);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("| detect_all_fail_s.p50 |") && text.contains("detect_all_fail_s.p50 lower"),
        "{text}"
    );
    let out = diff(&fast, &a);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("regressed beyond noise: detect_all_fail_s.p50"));
    let out = bin()
        .arg("diff")
        .args([&a, &fast])
        .args(["--fail-on", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
