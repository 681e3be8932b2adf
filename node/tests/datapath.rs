//! Both datapaths on real loopback sockets: delivery, batching, truncation,
//! deregistration, refused sends, and (io_uring) recovery from an empty
//! buffer ring.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use gossip_node::datapath::uring::{SendOp, UringDatapath};
use gossip_node::datapath::{self, create, probe_uring, Datapath, DatapathKind, DatapathOptions};
use gossip_node::runtime::bind;

fn kinds(test: &str) -> Vec<DatapathKind> {
    let mut kinds = vec![DatapathKind::Mmsg];
    match probe_uring() {
        Ok(()) => kinds.push(DatapathKind::Uring),
        Err(e) => eprintln!(
            "!!!!! SKIPPED the uring half of {test}: io_uring is refused here ({e}) !!!!!"
        ),
    }
    kinds
}

fn options(recv_buffers: usize) -> DatapathOptions {
    DatapathOptions {
        max_datagram: 1_400,
        max_sockets: 8,
        recv_buffers,
        send_buffers: 256,
        offload: false,
        zerocopy_min_bytes: None,
    }
}

fn socket() -> (UdpSocket, SocketAddr) {
    let s = bind("127.0.0.1:0".parse().unwrap(), 1 << 20).expect("bind");
    let a = s.local_addr().unwrap();
    (s, a)
}

/// Polls until `want` datagrams arrived or 5 s passed; returns (socket, from, bytes) of each.
fn collect(dp: &mut dyn Datapath, want: usize) -> Vec<(usize, SocketAddr, Vec<u8>)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < want && Instant::now() < deadline {
        dp.poll(Some(Duration::from_millis(10)), &mut |s, from, bytes| {
            got.push((s, from, bytes.to_vec()))
        })
        .expect("poll");
    }
    got
}

#[test]
fn queued_datagrams_arrive_whole_in_order_with_their_source() {
    for kind in kinds("queued_datagrams_arrive_whole_in_order_with_their_source") {
        let mut dp = create(kind, options(64)).expect("datapath");
        let (a, addr_a) = socket();
        let (b, addr_b) = socket();
        let ia = dp.register(a).unwrap();
        let ib = dp.register(b).unwrap();
        let mut got = Vec::new();
        for batch in 0..10u32 {
            for k in 0..50u32 {
                let seq = batch * 50 + k;
                let buf = dp.send_buffer().expect("a free send buffer");
                assert!(buf.len() >= 1_400);
                buf[..4].copy_from_slice(&seq.to_be_bytes());
                buf[4..100].fill(seq as u8);
                dp.queue_send(ia, addr_b, 100);
            }
            got.extend(collect(dp.as_mut(), (batch as usize + 1) * 50 - got.len()));
        }
        assert_eq!(got.len(), 500, "{kind}");
        for (i, (s, from, bytes)) in got.iter().enumerate() {
            assert_eq!((*s, *from, bytes.len()), (ib, addr_a, 100), "{kind}");
            assert_eq!(
                u32::from_be_bytes(bytes[..4].try_into().unwrap()),
                i as u32,
                "{kind}: order"
            );
            assert!(bytes[4..].iter().all(|&x| x == i as u8), "{kind}: payload");
        }
        let c = *dp.counters();
        assert_eq!(
            (c.datagrams_out, c.datagrams_in, c.bytes_in),
            (500, 500, 50_000),
            "{kind}"
        );
        assert_eq!(c.send_errors + c.recv_errors + c.truncated, 0, "{kind}");
    }
}

/// A send the kernel refuses by policy between sends it takes: a broadcast
/// from a socket without SO_BROADCAST fails with EACCES, every time, with no
/// firewall needed. Each refusal is counted once as refused, the datagrams
/// around it are sent once each, and with offload a refused GSO run counts
/// every datagram it carried.
#[test]
fn a_refused_send_between_sent_ones_is_counted_once_as_refused() {
    let broadcast: SocketAddr = "127.255.255.255:9".parse().unwrap();
    let mut cases: Vec<(DatapathKind, bool)> = kinds("a_refused_send_between_sent_ones_...")
        .into_iter()
        .map(|k| (k, false))
        .collect();
    let offload: Vec<_> = cases.iter().map(|&(k, _)| (k, true)).collect();
    cases.extend(offload);
    for (kind, offload) in cases {
        let mut dp = create(
            kind,
            DatapathOptions {
                offload,
                ..options(64)
            },
        )
        .expect("datapath");
        let (a, _) = socket();
        let (b, addr_b) = socket();
        let ia = dp.register(a).unwrap();
        dp.register(b).unwrap();
        // Sent, refused, sent, refused, sent: with plain sendmmsg the
        // refusals would hide behind the count of datagrams sent before them.
        for (i, to) in [addr_b, broadcast, addr_b, broadcast, addr_b]
            .into_iter()
            .enumerate()
        {
            dp.send_buffer().unwrap()[..4].copy_from_slice(&(i as u32).to_be_bytes());
            dp.queue_send(ia, to, 4);
        }
        let got = collect(dp.as_mut(), 3);
        // Anything sent twice would arrive within these polls.
        let mut late = Vec::new();
        for _ in 0..20 {
            dp.poll(Some(Duration::from_millis(5)), &mut |s, from, bytes| {
                late.push((s, from, bytes.to_vec()))
            })
            .expect("poll");
        }
        let mut seqs: Vec<u32> = got
            .iter()
            .chain(&late)
            .map(|(_, _, b)| u32::from_be_bytes(b[..4].try_into().unwrap()))
            .collect();
        seqs.sort_unstable();
        let what = format!("{kind}, offload {offload}");
        assert_eq!(seqs, [0, 2, 4], "{what}");
        let c = *dp.counters();
        assert_eq!(
            (
                c.datagrams_out,
                c.send_refused,
                c.send_would_block,
                c.send_errors
            ),
            (3, 2, 0, 0),
            "{what}: {c:?}"
        );
        if offload {
            // Three of a length to one address: one GSO send, refused whole.
            for _ in 0..3 {
                dp.send_buffer().unwrap()[..4].fill(9);
                dp.queue_send(ia, broadcast, 4);
            }
            for _ in 0..5 {
                dp.poll(Some(Duration::from_millis(5)), &mut |_, _, _| {})
                    .unwrap();
            }
            let c = *dp.counters();
            assert_eq!((c.datagrams_out, c.send_refused), (3, 5), "{what}: {c:?}");
        }
    }
}

#[test]
fn oversized_datagrams_are_counted_as_truncated_and_not_delivered() {
    for kind in kinds("oversized_datagrams_are_counted_as_truncated_and_not_delivered") {
        let mut dp = create(kind, options(64)).expect("datapath");
        let (b, addr_b) = socket();
        dp.register(b).unwrap();
        let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
        outside.send_to(&[7u8; 3_000], addr_b).unwrap();
        outside.send_to(&[8u8; 10], addr_b).unwrap();
        let got = collect(dp.as_mut(), 1);
        assert_eq!(got.len(), 1, "{kind}");
        assert_eq!(
            got[0].2,
            vec![8u8; 10],
            "{kind}: the small one gets through"
        );
        assert_eq!(dp.counters().truncated, 1, "{kind}");
    }
}

#[test]
fn a_deregistered_socket_is_closed_and_its_index_reused() {
    for kind in kinds("a_deregistered_socket_is_closed_and_its_index_reused") {
        let mut dp = create(kind, options(64)).expect("datapath");
        let (a, addr_a) = socket();
        let ia = dp.register(a).unwrap();
        dp.deregister(ia).unwrap();
        assert!(dp.deregister(ia).is_err(), "{kind}: twice");
        // Let the cancel complete (a few polls), then the port is free again.
        for _ in 0..5 {
            dp.poll(Some(Duration::from_millis(5)), &mut |_, _, _| {
                panic!("nothing was sent")
            })
            .unwrap();
        }
        let again = bind(addr_a, 1 << 16).expect("the port was released");
        let ib = dp.register(again).unwrap();
        assert_eq!(ib, ia, "{kind}: index reused");
        let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
        outside.send_to(b"hello", addr_a).unwrap();
        let got = collect(dp.as_mut(), 1);
        assert_eq!(got.len(), 1, "{kind}");
        assert_eq!(
            (got[0].0, got[0].2.as_slice()),
            (ib, &b"hello"[..]),
            "{kind}"
        );
    }
}

#[test]
fn an_empty_buffer_ring_ends_the_multishot_receive_which_is_rearmed_without_loss() {
    if probe_uring().is_err() {
        eprintln!("!!!!! SKIPPED an_empty_buffer_ring_...: io_uring is refused here !!!!!");
        return;
    }
    // Two receive buffers for 200 datagrams: the receive runs dry many times.
    let mut dp = create(DatapathKind::Uring, options(2)).expect("datapath");
    let (b, addr_b) = socket();
    dp.register(b).unwrap();
    let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u32 {
        outside.send_to(&i.to_be_bytes(), addr_b).unwrap();
    }
    let got = collect(dp.as_mut(), 200);
    let seqs: Vec<u32> = got
        .iter()
        .map(|(_, _, b)| u32::from_be_bytes(b[..4].try_into().unwrap()))
        .collect();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    let c = dp.counters();
    assert!(c.enobufs > 0, "{c:?}");
    assert!(c.rearms >= c.enobufs, "{c:?}");
}

/// A burst far larger than the buffer ring, as a PING wave brings: with
/// offload the io_uring ring holds 64 receives of 64 KiB, datagrams not
/// coalesced (each from its own send) take one each, and one enter takes at
/// most 33 receives from a socket. One poll still reads the whole burst up
/// to the poll's budget, as mmsg does: a poll that stopped after one enter
/// would leave the rest in the socket's buffer, 33 receives a turn, where a
/// wave overflows it. Beyond the budget the rest waits for the next polls,
/// none lost.
#[test]
fn a_burst_larger_than_the_buffer_ring_is_read_in_one_poll_up_to_the_budget() {
    const RING: usize = 64;
    for kind in kinds("a_burst_larger_than_the_buffer_ring_is_read_in_one_poll") {
        let mut dp = create(
            kind,
            DatapathOptions {
                offload: true,
                ..options(RING)
            },
        )
        .expect("datapath");
        // Room in the socket's buffer for the whole of both bursts.
        let b = bind("127.0.0.1:0".parse().unwrap(), 16 << 20).expect("bind");
        let addr_b = b.local_addr().unwrap();
        dp.register(b).unwrap();
        dp.poll(Some(Duration::ZERO), &mut |_, _, _| {}).unwrap();
        let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut next = 0u32;
        let mut send = |count: usize| {
            let mut datagram = [0u8; 100];
            for _ in 0..count {
                datagram[..4].copy_from_slice(&next.to_be_bytes());
                outside.send_to(&datagram, addr_b).unwrap();
                next += 1;
            }
        };
        let mut got: Vec<u32> = Vec::new();
        let poll_once = |dp: &mut dyn Datapath, got: &mut Vec<u32>| {
            let before = got.len();
            dp.poll(Some(Duration::from_secs(1)), &mut |_, _, bytes| {
                got.push(u32::from_be_bytes(bytes[..4].try_into().unwrap()))
            })
            .unwrap();
            got.len() - before
        };
        // Sixteen rings' worth, within the budget: one poll.
        let burst = 16 * RING;
        send(burst);
        let first = poll_once(dp.as_mut(), &mut got);
        assert_eq!(
            first,
            burst,
            "{kind}: the burst in one poll: {:?}",
            dp.counters()
        );
        // Three budgets' worth: the first poll stops about the budget, the
        // next ones read the rest.
        let big = 3 * datapath::DATAGRAMS_PER_POLL;
        send(big);
        let first = poll_once(dp.as_mut(), &mut got);
        assert!(
            (datapath::DATAGRAMS_PER_POLL..2 * datapath::DATAGRAMS_PER_POLL).contains(&first),
            "{kind}: {first} datagrams in one poll"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < burst + big && Instant::now() < deadline {
            poll_once(dp.as_mut(), &mut got);
        }
        got.sort_unstable();
        assert_eq!(
            got,
            (0..(burst + big) as u32).collect::<Vec<_>>(),
            "{kind}: every datagram once"
        );
        let c = dp.counters();
        assert_eq!(c.truncated + c.recv_errors, 0, "{kind}: {c:?}");
        if kind == DatapathKind::Uring {
            // Read in many enters within a poll (the kernel takes at most
            // 33 receives from a socket per enter).
            assert!(c.drains > 10, "{kind}: {c:?}");
        }
    }
}

#[test]
fn the_fallback_line_names_the_reason() {
    let (kind, line) = datapath::resolve(datapath::DatapathChoice::Auto, || {
        Err(datapath::ProbeError::Forced)
    });
    assert_eq!(kind, DatapathKind::Mmsg);
    assert!(line.unwrap().contains(datapath::FORCE_PROBE_FAIL_ENV));
}

#[test]
fn both_io_uring_send_operations_deliver() {
    if probe_uring().is_err() {
        eprintln!(
            "!!!!! SKIPPED both_io_uring_send_operations_deliver: io_uring is refused here !!!!!"
        );
        return;
    }
    for op in [SendOp::SendMsg, SendOp::SendTo] {
        let mut dp = UringDatapath::new(options(64)).expect("datapath");
        dp.set_send_op(op);
        let (a, addr_a) = socket();
        let (b, addr_b) = socket();
        let ia = dp.register(a).unwrap();
        dp.register(b).unwrap();
        for i in 0..10u8 {
            dp.send_buffer().unwrap()[..3].copy_from_slice(&[i, i, i]);
            dp.queue_send(ia, addr_b, 3);
        }
        let got = collect(&mut dp, 10);
        assert_eq!(got.len(), 10, "{op:?}");
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, (_, from, b))| *from == addr_a && b == &[i as u8; 3]),
            "{op:?}"
        );
    }
}

/// Offload: datagrams of a turn to one address leave as GSO sends and
/// arrive through GRO, each whole and once, whatever their mix of lengths;
/// a receiver without GRO (a plain socket, and the other datapath's
/// receiver without offload) gets them one by one.
#[test]
fn offload_coalesces_on_the_wire_and_delivers_every_datagram_whole() {
    for kind in kinds("offload_coalesces_on_the_wire_and_delivers_every_datagram_whole") {
        let mut dp = create(
            kind,
            DatapathOptions {
                offload: true,
                send_buffers: 1_024,
                ..options(64)
            },
        )
        .expect("datapath");
        let mut plain_dp = create(kind, options(64)).expect("datapath");
        let (a, _) = socket();
        let (b, addr_b) = socket();
        let (c, addr_c) = socket();
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        plain
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let addr_plain = plain.local_addr().unwrap();
        let ia = dp.register(a).unwrap();
        let ib = dp.register(b).unwrap();
        let ic = plain_dp.register(c).unwrap();
        // Lengths: runs of equal ones with shorter ones between, as a turn of
        // PINGs and PONGs with different section sizes looks.
        let len_of = |seq: u32| [300usize, 300, 300, 120, 300, 64][seq as usize % 6];
        let total = 240u32;
        for round in 0..2 {
            for seq in 0..total {
                let buf = dp.send_buffer().expect("a free send buffer");
                let len = len_of(seq);
                buf[..4].copy_from_slice(&seq.to_be_bytes());
                buf[4..len].fill(seq as u8);
                dp.queue_send(ia, if round == 0 { addr_b } else { addr_c }, len);
            }
        }
        for seq in 0..10u32 {
            let buf = dp.send_buffer().expect("a free send buffer");
            buf[..4].copy_from_slice(&seq.to_be_bytes());
            dp.queue_send(ia, addr_plain, 200);
        }
        let got = collect(dp.as_mut(), total as usize);
        let got_plain = collect(plain_dp.as_mut(), total as usize);
        for (got, want_socket, receiver) in [(&got, ib, "GRO"), (&got_plain, ic, "no GRO")] {
            let mut seen = vec![false; total as usize];
            for (s, _, bytes) in got {
                assert_eq!(*s, want_socket);
                let seq = u32::from_be_bytes(bytes[..4].try_into().unwrap());
                assert!(
                    seq < total && !seen[seq as usize],
                    "{kind} {receiver}: datagram {seq} once"
                );
                seen[seq as usize] = true;
                assert_eq!(
                    bytes.len(),
                    len_of(seq),
                    "{kind} {receiver}: datagram {seq}: its own length"
                );
                assert!(
                    bytes[4..].iter().all(|&x| x == seq as u8),
                    "{kind} {receiver}: payload {seq}"
                );
            }
            assert!(seen.iter().all(|&s| s), "{kind} {receiver}: every datagram");
        }
        let mut buf = [0u8; 2_000];
        for _ in 0..10 {
            let (n, _) = plain
                .recv_from(&mut buf)
                .expect("the plain receiver's datagram");
            assert_eq!(
                n, 200,
                "{kind}: split by the kernel for a receiver without GRO"
            );
        }
        let c = *dp.counters();
        assert_eq!(c.datagrams_out, 2 * u64::from(total) + 10, "{kind}: {c:?}");
        assert_eq!(c.datagrams_in, u64::from(total), "{kind}: {c:?}");
        assert!(
            c.gso_sends > 0 && c.gso_sends < 40,
            "{kind}: coalesced sends: {c:?}"
        );
        assert!(c.gro_receives > 0, "{kind}: coalesced receives: {c:?}");
        assert_eq!(c.send_errors + c.recv_errors + c.truncated, 0, "{kind}");
        let p = *plain_dp.counters();
        assert_eq!(
            (p.datagrams_in, p.gro_receives),
            (u64::from(total), 0),
            "{kind}"
        );
    }
}

/// With offload a receive's control message carries the GRO segment size;
/// when the kernel truncates it (here: an IP_TOS message the socket also asked
/// for overflows the room for one), the receive cannot be cut safely and is
/// counted as truncated and dropped; an oversized datagram likewise.
#[test]
fn offload_drops_receives_with_a_truncated_control_message_or_an_oversized_segment() {
    for kind in kinds("offload_drops_receives_with_a_truncated_control_message") {
        let mut dp = create(
            kind,
            DatapathOptions {
                offload: true,
                ..options(64)
            },
        )
        .expect("datapath");
        let (b, addr_b) = socket();
        let (t, addr_t) = socket();
        socket2::SockRef::from(&t).set_recv_tos_v4(true).unwrap();
        let ib = dp.register(b).unwrap();
        dp.register(t).unwrap();
        // Three of a length from one socket: one GSO send, one GRO receive
        // with a UDP_GRO and an IP_TOS control message.
        for _ in 0..3 {
            dp.send_buffer().unwrap()[..100].fill(1);
            dp.queue_send(ib, addr_t, 100);
        }
        let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
        outside.send_to(&[7u8; 3_000], addr_b).unwrap();
        outside.send_to(&[8u8; 10], addr_b).unwrap();
        let got = collect(dp.as_mut(), 1);
        for _ in 0..5 {
            dp.poll(Some(Duration::from_millis(5)), &mut |_, _, _| {
                panic!("a truncated receive was delivered")
            })
            .unwrap();
        }
        assert_eq!(got.len(), 1, "{kind}");
        assert_eq!(
            (got[0].0, got[0].2.as_slice()),
            (ib, &[8u8; 10][..]),
            "{kind}"
        );
        let c = dp.counters();
        assert_eq!((c.truncated, c.datagrams_in), (2, 1), "{kind}: {c:?}");
        assert_eq!((c.datagrams_out, c.gso_sends), (3, 1), "{kind}: {c:?}");
    }
}

/// Zero-copy GSO sends (io_uring): every datagram arrives once and whole, and
/// no send buffer is handed out again before the kernel's notification that
/// it is done with it: the slot pool asserts that (in debug builds, which
/// tests are) whenever it hands out a slot, and with 64 buffers for one run
/// of 8 datagrams a turn every buffer is reused dozens of times.
#[test]
fn zero_copy_sends_deliver_whole_and_reuse_no_buffer_before_its_notification() {
    if let Err(e) = probe_uring() {
        eprintln!("!!!!! SKIPPED zero_copy_sends_...: io_uring is refused here ({e}) !!!!!");
        return;
    }
    if !cfg!(debug_assertions) {
        eprintln!("!!!!! zero_copy_sends_...: built without debug assertions, so the slot pool's reuse check is off; only delivery is checked !!!!!");
    }
    let mut dp = UringDatapath::new(DatapathOptions {
        offload: true,
        send_buffers: 64,
        zerocopy_min_bytes: Some(4_000),
        ..options(64)
    })
    .expect("datapath");
    let (a, _) = socket();
    let (b, addr_b) = socket();
    let ia = dp.register(a).unwrap();
    dp.register(b).unwrap();
    let rounds = 480u32;
    let per_round = 8u32;
    let total = (rounds * per_round) as usize;
    let mut seen = vec![false; total];
    let mut got = 0usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut check = |bytes: &[u8]| {
        let seq = u32::from_be_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(bytes.len(), 1_000, "datagram {seq} whole");
        assert!(
            bytes[4..].iter().all(|&x| x == seq as u8),
            "datagram {seq}: its own payload (a buffer rewritten in flight would show here)"
        );
        assert!(
            !std::mem::replace(&mut seen[seq as usize], true),
            "{seq} once"
        );
    };
    for round in 0..rounds {
        let mut seq = round * per_round;
        while seq < (round + 1) * per_round && Instant::now() < deadline {
            match dp.send_buffer() {
                Some(buf) => {
                    buf[..4].copy_from_slice(&seq.to_be_bytes());
                    buf[4..1_000].fill(seq as u8);
                    dp.queue_send(ia, addr_b, 1_000);
                    seq += 1;
                }
                None => dp
                    .poll(Some(Duration::from_millis(1)), &mut |_, _, bytes| {
                        got += 1;
                        check(bytes)
                    })
                    .unwrap(),
            }
        }
        // One poll a round: the next round's buffers are taken while this
        // round's notifications may still be on their way.
        dp.poll(Some(Duration::ZERO), &mut |_, _, bytes| {
            got += 1;
            check(bytes)
        })
        .unwrap();
    }
    while got < total && Instant::now() < deadline {
        dp.poll(Some(Duration::from_millis(10)), &mut |_, _, bytes| {
            got += 1;
            check(bytes)
        })
        .unwrap();
    }
    let c = *dp.counters();
    assert_eq!(got, total, "every datagram arrived: {c:?}");
    assert!(c.zc_sends > 0, "zero-copy sends: {c:?}");
    assert!(c.zc_copied <= c.zc_sends, "{c:?}");
    assert_eq!(c.datagrams_out, u64::from(rounds * per_round), "{c:?}");
    assert_eq!(c.send_errors + c.recv_errors + c.truncated, 0, "{c:?}");
}

/// A zero-copy send the kernel refuses (a broadcast without SO_BROADCAST:
/// EACCES) is counted as refused, and its buffers come back (Linux 6.18
/// still posts its notification; without one they would come back with the
/// completion) and are reused without tripping the slot pool's check.
#[test]
fn a_refused_zero_copy_send_gives_its_buffers_back() {
    if let Err(e) = probe_uring() {
        eprintln!(
            "!!!!! SKIPPED a_refused_zero_copy_send_...: io_uring is refused here ({e}) !!!!!"
        );
        return;
    }
    let broadcast: SocketAddr = "127.255.255.255:9".parse().unwrap();
    let mut dp = UringDatapath::new(DatapathOptions {
        offload: true,
        send_buffers: 4,
        zerocopy_min_bytes: Some(0),
        ..options(64)
    })
    .expect("datapath");
    let (a, _) = socket();
    let (b, addr_b) = socket();
    let ia = dp.register(a).unwrap();
    dp.register(b).unwrap();
    let mut got = Vec::new();
    for (round, to) in [broadcast, addr_b, broadcast, addr_b]
        .into_iter()
        .enumerate()
    {
        for _ in 0..4 {
            let buf = loop {
                if dp.send_buffer().is_some() {
                    break dp.send_buffer().unwrap();
                }
                dp.poll(Some(Duration::from_millis(5)), &mut |_, _, bytes| {
                    got.push(bytes.to_vec())
                })
                .unwrap();
            };
            buf[..100].fill(round as u8);
            dp.queue_send(ia, to, 100);
        }
        dp.poll(Some(Duration::from_millis(5)), &mut |_, _, bytes| {
            got.push(bytes.to_vec())
        })
        .unwrap();
    }
    got.extend(
        collect(&mut dp, 8 - got.len())
            .into_iter()
            .map(|(_, _, b)| b),
    );
    got.sort();
    let want: Vec<Vec<u8>> = [1u8, 1, 1, 1, 3, 3, 3, 3]
        .iter()
        .map(|&r| vec![r; 100])
        .collect();
    assert_eq!(got, want);
    let c = *dp.counters();
    assert_eq!((c.datagrams_out, c.send_refused), (8, 8), "{c:?}");
    assert!(c.zc_sends > 0, "{c:?}");
}
