//! Faults the simulator injects into the world.
//!
//! - [`ack_crash`]: a power loss right after the store acknowledges a
//!   rare write (an account closed, a device sold or reset, a deletion).
//! - [`disk`]: a simulated disk for the services' redb databases that loses
//!   unsynced writes (some torn) when its host crashes and can fail I/O.
//! - [`live_check`]: a power loss of the store right after it introspects
//!   the session of a download whose archive lost a recording, so that the
//!   export's live check finds the store down.
//! - [`points`]: seeded fault points inside the services.
//! - [`publish_crash`]: a power loss of the export host inside a
//!   publication (at one of its disk writes).
//! - [`poison`]: the store refusing the export worker's collection reads,
//!   now and then and, for one poisoned subject, for a long window.
//!
//! Host crashes and restarts are scheduled by the world (`world.rs`) from
//! the plan; network latency comes from turmoil's latency model.

pub mod ack_crash;
pub mod disk;
pub mod live_check;
pub mod points;
pub mod poison;
pub mod publish_crash;
