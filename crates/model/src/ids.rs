//! Typed identifiers. Each is a `u64` on the wire and in storage; the types
//! keep an account id from ever being passed where a recording id belongs.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

typed_id!(
    /// An account. Never reused once assigned.
    AccountId,
    "acct-"
);
typed_id!(
    /// A physical device (speaker, phone app).
    DeviceId,
    "dev-"
);
typed_id!(
    /// A stored recording, assigned by the store.
    RecordingId,
    "rec-"
);
typed_id!(
    /// A data-subject-access export.
    ExportId,
    "exp-"
);
