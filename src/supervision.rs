//! Supervision: running the box and the services, restart backoff, the watchdog, shutdown.

pub mod backoff;
pub mod exec;
pub mod shutdown;
pub mod supervise;
pub mod watchdog;
