//! Planted bugs: named defects, each a small faithful copy of a real
//! incident's mechanism, that the simulator must catch (docs/design.md,
//! "Planted bugs"). They prove the harness can see.
//!
//! The catalogue ([`Bug`]) is always compiled, so tools can name and list
//! it. The defects themselves sit in the store, the export service and the
//! HTTP client behind `planted.on(Bug::X)`, and [`Planted::on`] is a
//! constant `false` unless this crate is built with the `planted-bugs`
//! feature (`crosstalk-store/planted-bugs` and `crosstalk-export/planted-bugs`
//! turn it on). No normal build, and no `serve`, has that feature; a service
//! takes a [`Planted`] set like it takes a clock, and production wiring
//! passes [`Planted::none`].

use std::fmt;
use std::str::FromStr;

/// One defect of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    AgentFreeRecipient,
    PoolCancelDesync,
    FingerprintCache,
    ClockIdCollision,
    ResaleHistory,
    UnscopedCursor,
    SharedTempPath,
    UnboundLink,
    DeleteExportRace,
    CacheMissingTenant,
    ContactFuzzyMatch,
    RecycledAccountId,
    DuplicateRequestBypass,
    WeakIdentity,
    StaleCacheFill,
    CloseMissesLateUpload,
    LiveCheckFailsOpen,
}

impl Bug {
    pub const ALL: [Bug; 17] = [
        Bug::AgentFreeRecipient,
        Bug::PoolCancelDesync,
        Bug::FingerprintCache,
        Bug::ClockIdCollision,
        Bug::ResaleHistory,
        Bug::UnscopedCursor,
        Bug::SharedTempPath,
        Bug::UnboundLink,
        Bug::DeleteExportRace,
        Bug::CacheMissingTenant,
        Bug::ContactFuzzyMatch,
        Bug::RecycledAccountId,
        Bug::DuplicateRequestBypass,
        Bug::WeakIdentity,
        Bug::StaleCacheFill,
        Bug::CloseMissesLateUpload,
        Bug::LiveCheckFailsOpen,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::AgentFreeRecipient => "agent-free-recipient",
            Bug::PoolCancelDesync => "pool-cancel-desync",
            Bug::FingerprintCache => "fingerprint-cache",
            Bug::ClockIdCollision => "clock-id-collision",
            Bug::ResaleHistory => "resale-history",
            Bug::UnscopedCursor => "unscoped-cursor",
            Bug::SharedTempPath => "shared-temp-path",
            Bug::UnboundLink => "unbound-link",
            Bug::DeleteExportRace => "delete-export-race",
            Bug::CacheMissingTenant => "cache-missing-tenant",
            Bug::ContactFuzzyMatch => "contact-fuzzy-match",
            Bug::RecycledAccountId => "recycled-account-id",
            Bug::DuplicateRequestBypass => "duplicate-request-bypass",
            Bug::WeakIdentity => "weak-identity",
            Bug::StaleCacheFill => "stale-cache-fill",
            Bug::CloseMissesLateUpload => "close-misses-late-upload",
            Bug::LiveCheckFailsOpen => "live-check-fails-open",
        }
    }

    /// The real incident the defect is modelled on.
    pub fn incident(self) -> &'static str {
        match self {
            Bug::AgentFreeRecipient => "Alexa DSAR 2018",
            Bug::PoolCancelDesync => "ChatGPT 2023",
            Bug::FingerprintCache => "San Diego broadcast, Wyze 2024",
            Bug::ClockIdCollision => "broadcast burst",
            Bug::ResaleHistory => "Nest/Wink 2019",
            Bug::UnscopedCursor => "paging bugs",
            Bug::SharedTempPath => "givewp #5346",
            Bug::UnboundLink => "Alexa DSAR 2018",
            Bug::DeleteExportRace => "Twitter 2019, Instagram 2020",
            Bug::CacheMissingTenant => "Steam 2015",
            Bug::ContactFuzzyMatch => "Portland 2018",
            Bug::RecycledAccountId => "Yahoo 2013",
            Bug::DuplicateRequestBypass => "fides GHSA-qx5f-ghc2-7g5c",
            Bug::WeakIdentity => "Pavur 2019, Honan 2012",
            Bug::StaleCacheFill => "Steam 2015, Wyze 2024",
            Bug::CloseMissesLateUpload => "Twitter 2019, Instagram 2020",
            Bug::LiveCheckFailsOpen => "Twitter 2019, Instagram 2020",
        }
    }

    /// What is wrong when the bug is planted.
    pub fn defect(self) -> &'static str {
        match self {
            Bug::AgentFreeRecipient => "the agent console sends any ready archive to any ticket",
            Bug::PoolCancelDesync => {
                "a connection whose request was cancelled goes back to the pool with the reply unread"
            }
            Bug::FingerprintCache => {
                "a cache keyed by audio fingerprint (no account) serves one household's capture to another"
            }
            Bug::ClockIdCollision => {
                "recording ids from device time; simultaneous captures overwrite each other"
            }
            Bug::ResaleHistory => "history keyed by device, not by ownership epoch",
            Bug::UnscopedCursor => "the list cursor is a global offset not bound to the account",
            Bug::SharedTempPath => "two export jobs stage their archive at the same temp path",
            Bug::UnboundLink => "a download link works for whoever holds it",
            Bug::DeleteExportRace => "the export reads an index that deletion does not update",
            Bug::CacheMissingTenant => "a response cache keyed by path without the principal",
            Bug::ContactFuzzyMatch => {
                "message recipients resolved by fuzzy match, without confirmation"
            }
            Bug::RecycledAccountId => "closed account ids are reused; old data follows",
            Bug::DuplicateRequestBypass => "a duplicate DSAR skips identity verification",
            Bug::WeakIdentity => "the agent accepts knowable facts as proof of identity",
            Bug::StaleCacheFill => {
                "a cache fill that read before a deletion on another thread puts the deleted audio back"
            }
            Bug::CloseMissesLateUpload => {
                "closing an account forgets the uploads that landed between its two transactions"
            }
            Bug::LiveCheckFailsOpen => {
                "the download's erasure check assumes every recording live when the store cannot answer"
            }
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(name: &str) -> Result<Bug, String> {
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
                format!(
                    "no planted bug named {name:?}; the catalogue: {}",
                    names.join(", ")
                )
            })
    }
}

/// The set of planted bugs a service runs with. Empty in production.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Planted(u32);

impl Planted {
    /// Whether this build can plant bugs at all (the `planted-bugs` feature).
    pub const AVAILABLE: bool = cfg!(feature = "planted-bugs");

    /// No bugs: the production choice.
    pub const fn none() -> Planted {
        Planted(0)
    }

    pub fn of(bugs: impl IntoIterator<Item = Bug>) -> Planted {
        Planted(bugs.into_iter().fold(0, |set, bug| set | bug.bit()))
    }

    /// Whether `bug` is planted. Always `false` unless built with the
    /// `planted-bugs` feature.
    #[inline]
    pub fn on(&self, bug: Bug) -> bool {
        Self::AVAILABLE && self.0 & bug.bit() != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn bugs(&self) -> Vec<Bug> {
        Bug::ALL
            .into_iter()
            .filter(|b| self.0 & b.bit() != 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for bug in Bug::ALL {
            assert_eq!(bug.name().parse::<Bug>().unwrap(), bug);
        }
        let mut names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 17);
        assert!(
            "no-such-bug"
                .parse::<Bug>()
                .unwrap_err()
                .contains("pool-cancel-desync")
        );
    }

    #[test]
    fn a_set_holds_what_was_put_in_and_is_inert_without_the_feature() {
        let set = Planted::of([Bug::UnboundLink, Bug::WeakIdentity]);
        assert_eq!(set.bugs(), vec![Bug::UnboundLink, Bug::WeakIdentity]);
        assert_eq!(set.on(Bug::UnboundLink), Planted::AVAILABLE);
        assert!(!set.on(Bug::ResaleHistory));
        assert!(!Planted::none().on(Bug::UnboundLink));
    }
}
