//! `gossip-node`: runs `gossip-core` nodes on real UDP sockets.
//!
//! Not built yet: the io_uring and recvmmsg/sendmmsg datapaths, the many-nodes
//! host and the `gossip-node` binary land with the real-world issue. Until then
//! this crate only re-exports the core so the workspace layout is final.

pub use gossip_core as core;
