//! What the tests that need root and a lab share: the lab's name per test,
//! clean-up guards, and running `gossip-loadgen`.
#![allow(dead_code)] // each test binary uses its own part

use std::fs;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use gossip_loadgen::lab;

pub const LOADGEN: &str = env!("CARGO_BIN_EXE_gossip-loadgen");

/// A lab name unique to this test and process, or None when root tests are
/// skipped; fails without root or the tools, unless told to skip.
pub fn lab_name(tag: &str) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        if std::env::var("GOSSIP_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
            eprintln!("!!!!! SKIPPED lab test {tag}: not root (GOSSIP_SKIP_ROOT_TESTS=1) !!!!!");
            return None;
        }
        panic!(
            "the lab tests need root (network namespaces); run them as root, \
             or set GOSSIP_SKIP_ROOT_TESTS=1 to skip them"
        );
    }
    for (program, arg, package) in [
        ("ip", "-V", "iproute2"),
        ("tc", "-V", "iproute2"),
        ("nft", "--version", "nftables"),
    ] {
        if let Err(e) = Command::new(program).arg(arg).output() {
            panic!("`{program}` cannot run ({e}): install the Debian package `{package}`");
        }
    }
    // Two letters and the pid in hex: at most 8 characters.
    Some(format!("{tag}{:x}", std::process::id()))
}

/// Removes the test's lab when the test ends, passed or failed.
pub struct DownOnDrop(pub String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = lab::down(&self.0);
    }
}

/// A child process killed if the test fails while it runs.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn loadgen(args: &[&str]) -> Output {
    Command::new(LOADGEN)
        .args(args)
        .output()
        .expect("run gossip-loadgen")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether `pid` is a process that has not exited (a zombie has).
pub fn is_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 2..].chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
