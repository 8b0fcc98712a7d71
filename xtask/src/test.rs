//! Task `test`: everything in order (`suite`), and the host-made Pi card a scenario can ask
//! for (`host_card`).

pub mod host_card;
pub mod suite;
