//! Faults the simulator injects into the world.
//!
//! - [`ack_crash`]: a power loss right after the store acknowledges a
//!   rare write (an account closed, a device sold or reset, a deletion).
//! - [`crashes`]: host crashes and restarts, scheduled and armed, and the
//!   supervisor's restart of a process that exited by itself.
//! - [`disk`]: a simulated disk for the services' redb databases that loses
//!   unsynced writes (some torn) when its host crashes and can fail I/O.
//! - [`live_check`]: a power loss of the store right after it introspects
//!   the session of a download whose archive lost a recording, so that the
//!   export's live check finds the store down.
//! - [`net`]: partitions and latency spikes between hosts, on schedule.
//! - [`points`]: seeded fault points inside the services.
//! - [`publish_crash`]: a power loss of the export host inside a
//!   publication (at one of its disk writes).
//! - [`poison`]: the store refusing the export worker's collection reads,
//!   now and then and, for one poisoned subject, for a long window.
//! - [`schedule`]: every schedule above, applied between the world's steps
//!   (`FaultSchedule`), and the services' disks and armed power losses the
//!   service hosts are built with (`ServiceFaults`).
//!
//! Network latency itself comes from turmoil's latency model.

pub mod ack_crash;
pub mod crashes;
pub mod disk;
pub mod live_check;
pub mod net;
pub mod points;
pub mod poison;
pub mod publish_crash;
pub mod schedule;
