//! The few system calls outside the datapaths proper that std does not wrap:
//! CPU affinity and CPU-time clocks. Kept here so that all `unsafe` stays under
//! `datapath/`.

use std::io;
use std::time::Duration;

/// Pins the calling thread to one CPU (`sched_setaffinity`).
///
/// # Errors
/// When the CPU does not exist or is not allowed to this process.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is a plain bit array for which all-zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET stays in the array.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid, initialised cpu_set_t and the size passed is its own;
    // pid 0 means the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs `f` with the process's umask set to `mask`, then restores it (for
/// files that must be created private, with no window open to others). Call
/// it while no other thread creates files.
pub fn with_umask<R>(mask: libc::mode_t, f: impl FnOnce() -> R) -> R {
    // SAFETY: umask only swaps the process's file-creation mask.
    let old = unsafe { libc::umask(mask) };
    let r = f();
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    r
}

/// CLOCK_MONOTONIC now, µs: the clock an agent's times are on, and the one a
/// loadgen reads to estimate an agent's offset (the same base on one host).
pub fn monotonic_us() -> u64 {
    let d = read_clock(libc::CLOCK_MONOTONIC);
    d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())
}

/// CPU time (user + system) used by the whole process so far.
pub fn process_cpu_time() -> Duration {
    read_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time (user + system) used by the calling thread so far.
pub fn thread_cpu_time() -> Duration {
    read_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn read_clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec the call may write; the clock ids used are
    // the two CPU-time clocks and CLOCK_MONOTONIC, which Linux always has.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Maximum resident set size of this process so far, in bytes.
pub fn max_rss_bytes() -> u64 {
    // SAFETY: rusage is plain integers; all-zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid rusage the call may write.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return 0;
    }
    (ru.ru_maxrss as u64) * 1024
}

/// Sets a socket's receive or send buffer to `bytes` past `net.core.[rw]mem_max`
/// (`SO_RCVBUFFORCE` / `SO_SNDBUFFORCE`, which need CAP_NET_ADMIN).
///
/// # Errors
/// EPERM without CAP_NET_ADMIN; the caller then falls back to the capped option.
pub fn force_buffer(fd: std::os::fd::RawFd, receive: bool, bytes: usize) -> io::Result<()> {
    let opt = match receive {
        true => libc::SO_RCVBUFFORCE,
        false => libc::SO_SNDBUFFORCE,
    };
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `value` outlives the call and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The kernel's UDP `RcvbufErrors` in this network namespace (the counter
/// is per namespace: machine-wide outside any lab), if readable.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?.split_whitespace();
    let values = udp.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forced_buffer_passes_the_cap_or_is_refused_for_lack_of_permission() {
        use std::os::fd::AsRawFd;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let want = 32 << 20;
        match force_buffer(socket.as_raw_fd(), true, want) {
            // The kernel doubles the value for its bookkeeping.
            Ok(()) => {
                let got = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
                assert!(got >= want, "{got} < {want}");
            }
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}"),
        }
    }

    #[test]
    fn cpu_clocks_advance_with_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(thread_cpu_time() > before);
        assert!(process_cpu_time() >= thread_cpu_time());
        assert!(max_rss_bytes() > 0);
    }

    #[test]
    fn a_thread_pins_to_an_existing_cpu_and_not_to_a_missing_one() {
        let ok = std::thread::spawn(|| pin_current_thread(0)).join().unwrap();
        assert!(ok.is_ok(), "{ok:?}");
        let missing = std::thread::spawn(|| pin_current_thread(100_000))
            .join()
            .unwrap();
        assert!(missing.is_err());
    }
}
