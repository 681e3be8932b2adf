//! The agent: `gossip-node agent` runs no nodes until a loadgen tells it to,
//! over a control channel (HTTP + JSON, [`api`]).

pub mod api;
