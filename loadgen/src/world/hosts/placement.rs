//! Which host runs which node, and the faults each host applies so that the
//! network between hosts looks as the scenario says.
//!
//! Placement: the starting nodes in contiguous blocks (host h runs nodes
//! `h·n/H .. (h+1)·n/H`), so node 0 is on host 0 and a partition by
//! hosts keeps each host's nodes together; joiners round-robin from host 0.
//! On each host the starting nodes come first (local indices 0..), its
//! joiners after them, held until they join.

use std::net::IpAddr;

use gossip_node::agent::api::{Faults, LossRule};

/// Where each trial node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Host of each trial node.
    host: Vec<usize>,
    /// Local index of each trial node on its host.
    local: Vec<usize>,
    /// Trial nodes of each host, by local index.
    nodes: Vec<Vec<usize>>,
    /// Starting nodes of each host (the rest are held joiners).
    starting: Vec<usize>,
}

impl Placement {
    /// `initial` starting nodes and `joins` joiners over `hosts` hosts.
    pub fn new(initial: usize, joins: usize, hosts: usize) -> Self {
        let hosts = hosts.max(1);
        let mut nodes = vec![Vec::new(); hosts];
        for n in 0..initial {
            nodes[n * hosts / initial.max(1)].push(n);
        }
        let starting: Vec<usize> = nodes.iter().map(Vec::len).collect();
        for j in 0..joins {
            nodes[j % hosts].push(initial + j);
        }
        let total = initial + joins;
        let (mut host, mut local) = (vec![0; total], vec![0; total]);
        for (h, list) in nodes.iter().enumerate() {
            for (l, &n) in list.iter().enumerate() {
                host[n] = h;
                local[n] = l;
            }
        }
        Placement {
            host,
            local,
            nodes,
            starting,
        }
    }

    /// Hosts.
    pub fn hosts(&self) -> usize {
        self.nodes.len()
    }

    /// Node `n`'s host and local index.
    pub fn of(&self, n: usize) -> (usize, usize) {
        (self.host[n], self.local[n])
    }

    /// The trial node at local index `local` of host `h`.
    pub fn node(&self, h: usize, local: usize) -> Option<usize> {
        self.nodes.get(h)?.get(local).copied()
    }

    /// Trial nodes of host `h`, by local index.
    pub fn nodes(&self, h: usize) -> &[usize] {
        &self.nodes[h]
    }

    /// Starting nodes of host `h`.
    pub fn starting(&self, h: usize) -> usize {
        self.starting[h]
    }

    /// The first `round(hosts × fraction)` hosts (at least one, and one
    /// fewer than all) and their nodes: a partition by fraction splits the
    /// hosts, never a host.
    pub fn side(&self, fraction: f64) -> (Vec<usize>, Vec<usize>) {
        let h = self.hosts();
        let k = ((h as f64 * fraction).round() as usize).clamp(1, h.saturating_sub(1).max(1));
        let hosts: Vec<usize> = (0..k).collect();
        let mut nodes: Vec<usize> = hosts.iter().flat_map(|&h| self.nodes[h].clone()).collect();
        nodes.sort_unstable();
        (hosts, nodes)
    }

    /// The hosts whose nodes are all in `side`, or the first host split by it.
    ///
    /// # Errors
    /// The index of a host with nodes on both sides.
    pub fn hosts_of(&self, side: &[usize]) -> Result<Vec<bool>, usize> {
        let mut inside = vec![0usize; self.hosts()];
        for &n in side {
            if let Some(&h) = self.host.get(n) {
                inside[h] += 1;
            }
        }
        inside
            .iter()
            .enumerate()
            .map(|(h, &k)| match k {
                0 => Ok(false),
                k if k == self.nodes[h].len() => Ok(true),
                _ => Err(h),
            })
            .collect()
    }
}

/// The network between hosts as the scenario wants it now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Net {
    /// Loss between any two hosts.
    pub loss: f64,
    /// Hosts on the first side of a partition, if one is in force.
    pub partition: Option<Vec<bool>>,
    /// One-way latency added, ms.
    pub latency_ms: f64,
    /// Jitter on it, ms.
    pub jitter_ms: f64,
}

impl Net {
    /// Whether hosts `a` and `b` hear each other.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.partition.as_ref().is_none_or(|p| p[a] == p[b])
    }

    /// What host `h` applies on arrival, given every host's address: total
    /// loss from hosts across a partition, the scenario's loss from the
    /// others. A host's own nodes never lose to each other.
    pub fn faults(&self, h: usize, addrs: &[IpAddr]) -> Faults {
        let (mut cut, mut lossy) = (Vec::new(), Vec::new());
        for (other, &addr) in addrs.iter().enumerate() {
            if other == h || addr == addrs[h] {
                continue;
            }
            if self.connected(h, other) {
                lossy.push(addr);
            } else {
                cut.push(addr);
            }
        }
        let mut loss = Vec::new();
        if !cut.is_empty() {
            loss.push(LossRule {
                from: cut,
                probability: 1.0,
            });
        }
        if self.loss > 0.0 && !lossy.is_empty() {
            loss.push(LossRule {
                from: lossy,
                probability: self.loss,
            });
        }
        Faults {
            loss,
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
        }
    }

    /// Whether any fault is in force.
    pub fn any(&self) -> bool {
        self.loss > 0.0 || self.partition.is_some() || self.latency_ms > 0.0 || self.jitter_ms > 0.0
    }
}

/// Node ranges, for the report: `0-249,1000,1004`.
pub fn ranges(nodes: &[usize]) -> String {
    let mut sorted = nodes.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_node_zero_first_and_joiners_round_robin() {
        let p = Placement::new(10, 3, 4);
        assert_eq!(p.nodes(0), &[0, 1, 2, 10]);
        assert_eq!(p.nodes(1), &[3, 4, 11]);
        assert_eq!(p.nodes(2), &[5, 6, 7, 12]);
        assert_eq!(p.nodes(3), &[8, 9]);
        assert_eq!(p.starting(0), 3);
        assert_eq!(p.of(11), (1, 2));
        assert_eq!(p.node(1, 2), Some(11));
        assert_eq!(p.node(1, 3), None);
        let all: usize = (0..4).map(|h| p.nodes(h).len()).sum();
        assert_eq!(all, 13);
    }

    #[test]
    fn a_partition_by_fraction_takes_whole_hosts() {
        let p = Placement::new(1000, 0, 4);
        let (hosts, nodes) = p.side(0.25);
        assert_eq!(hosts, vec![0]);
        assert_eq!(nodes, (0..250).collect::<Vec<_>>());
        assert_eq!(p.side(0.6).0, vec![0, 1]);
        // Never none and never all.
        assert_eq!(p.side(0.01).0, vec![0]);
        assert_eq!(p.side(0.99).0, vec![0, 1, 2]);
        assert_eq!(p.hosts_of(&nodes), Ok(vec![true, false, false, false]));
        assert_eq!(p.hosts_of(&[0, 1, 2]), Err(0));
    }

    #[test]
    fn faults_cut_across_the_partition_and_lose_elsewhere() {
        let addrs: Vec<IpAddr> = (1..=4).map(|i| IpAddr::from([198, 18, 0, i])).collect();
        let net = Net {
            loss: 0.01,
            partition: Some(vec![true, false, false, false]),
            ..Net::default()
        };
        let f0 = net.faults(0, &addrs);
        assert_eq!(f0.loss.len(), 1, "host 0 hears nobody: {f0:?}");
        assert_eq!(f0.loss[0].probability, 1.0);
        assert_eq!(f0.loss[0].from, addrs[1..].to_vec());
        let f2 = net.faults(2, &addrs);
        assert_eq!(f2.loss[0].from, vec![addrs[0]]);
        assert_eq!(f2.loss[1].from, vec![addrs[1], addrs[3]]);
        assert_eq!(f2.loss[1].probability, 0.01);
        assert!(!net.connected(0, 3) && net.connected(1, 3));
        let healed = Net {
            partition: None,
            ..net
        };
        assert_eq!(healed.faults(0, &addrs).loss[0].from, addrs[1..].to_vec());
        assert!(!Net::default().any());
    }

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(ranges(&[3, 0, 1, 2, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(ranges(&[]), "");
    }
}
