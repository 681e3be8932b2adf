//! Driver for real redis-server processes in cluster mode.
