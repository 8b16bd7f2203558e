//! Which seeds a `crosstalk run` runs: a range (`--seeds A..B`) or an
//! open-ended sequence from a base (`--for 8h --seed-base N`), optionally cut
//! into shards (`--shard I/N`).
//!
//! Shards are taken **by residue**: shard `I` of `N` runs exactly the seeds
//! `s` with `s % N == I`. The shards of one range are therefore disjoint and
//! their union is the range; with `--for`, each shard walks its own residue
//! class upwards from the base, so shards never run the same seed twice
//! however long each of them runs.

use std::time::Duration;

/// `--shard I/N`: run the seeds whose residue modulo `count` is `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole run as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parse `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {text:?}: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    pub fn holds(&self, seed: u64) -> bool {
        seed % self.count == self.index
    }

    /// The `k`-th seed (from 0) of this shard at or above `base`, if it fits
    /// in a `u64`.
    pub fn nth_from(&self, base: u64, k: u64) -> Option<u64> {
        let offset = (self.index + self.count - base % self.count) % self.count;
        base.checked_add(offset)?
            .checked_add(k.checked_mul(self.count)?)
    }

    pub fn describe(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}

/// Parse a wall-time budget: a number with a unit `s`, `m`, `h` or `d`,
/// possibly several (`1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("--for {text:?}: expected a duration such as 30s, 10m, 8h or 1h30m");
    let (mut seconds, mut number) = (0u64, String::new());
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        seconds = n
            .checked_mul(unit)
            .and_then(|s| seconds.checked_add(s))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || seconds == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(seconds))
}

/// The (scenario index, seed) pairs of a run, numbered from 0 in the order
/// they are reported.
#[derive(Clone, Debug)]
pub enum Selection {
    /// A range: every scenario's seeds of the shard, scenario by scenario.
    Range {
        seeds: std::ops::Range<u64>,
        shard: Shard,
        pairs: Vec<(usize, u64)>,
    },
    /// Open-ended: the shard's seeds from `base` upwards, each on every
    /// scenario in turn, until the wall-time budget is spent.
    Budget {
        budget: Duration,
        text: String,
        base: u64,
        shard: Shard,
        scenarios: usize,
    },
}

impl Selection {
    pub fn range(seeds: std::ops::Range<u64>, shard: Shard, scenarios: usize) -> Selection {
        Selection::range_capped(seeds, shard, &vec![None; scenarios])
    }

    /// A range in which scenario `i` takes only the first `caps[i]` seeds
    /// (a costly world's `max_seeds`).
    pub fn range_capped(
        seeds: std::ops::Range<u64>,
        shard: Shard,
        caps: &[Option<u64>],
    ) -> Selection {
        let pairs = caps
            .iter()
            .enumerate()
            .flat_map(|(file, cap)| {
                let end = cap.map_or(seeds.end, |cap| {
                    seeds.end.min(seeds.start.saturating_add(cap))
                });
                (seeds.start..end)
                    .filter(move |s| shard.holds(*s))
                    .map(move |seed| (file, seed))
            })
            .collect();
        Selection::Range {
            seeds,
            shard,
            pairs,
        }
    }

    /// The `index`-th pair, if the selection has one.
    pub fn pair(&self, index: u64) -> Option<(usize, u64)> {
        match self {
            Selection::Range { pairs, .. } => pairs.get(usize::try_from(index).ok()?).copied(),
            Selection::Budget {
                base,
                shard,
                scenarios,
                ..
            } => {
                let n = (*scenarios as u64).max(1);
                Some(((index % n) as usize, shard.nth_from(*base, index / n)?))
            }
        }
    }

    pub fn budget(&self) -> Option<Duration> {
        match self {
            Selection::Range { .. } => None,
            Selection::Budget { budget, .. } => Some(*budget),
        }
    }

    pub fn shard(&self) -> Shard {
        match self {
            Selection::Range { shard, .. } | Selection::Budget { shard, .. } => *shard,
        }
    }

    /// How the run header names the seeds.
    pub fn describe(&self) -> String {
        let shard = self.shard();
        let sharded = if shard == Shard::ALL {
            String::new()
        } else {
            format!(
                " (shard {}: the seeds s with s % {} == {})",
                shard.describe(),
                shard.count,
                shard.index
            )
        };
        match self {
            Selection::Range { seeds, .. } => {
                format!("seeds {}..{}{sharded}", seeds.start, seeds.end)
            }
            Selection::Budget { text, base, .. } => {
                format!("fresh seeds from {base} for {text} of wall time{sharded}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_of_an_open_sequence_are_disjoint_and_cover_it() {
        let mut all: Vec<u64> = (0..3)
            .flat_map(|i| {
                let shard = Shard { index: i, count: 3 };
                (0..10).map(move |k| shard.nth_from(7, k).unwrap())
            })
            .collect();
        all.sort_unstable();
        assert_eq!(all, (7..37).collect::<Vec<_>>());
        assert_eq!(Shard::ALL.nth_from(5, 2), Some(7));
        assert_eq!(Shard::ALL.nth_from(u64::MAX, 1), None);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(28_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "10", "0s", "5x", "h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_shards_of_a_range_partition_it() {
        let whole = Selection::range(3..20, Shard::ALL, 2);
        let mut union: Vec<(usize, u64)> = (0..4)
            .flat_map(|index| {
                let part = Selection::range(3..20, Shard { index, count: 4 }, 2);
                (0..).map_while(move |i| part.pair(i))
            })
            .collect();
        union.sort_unstable();
        let mut all: Vec<(usize, u64)> = (0..).map_while(|i| whole.pair(i)).collect();
        assert_eq!(all.len(), 34);
        all.sort_unstable();
        assert_eq!(union, all);
    }

    #[test]
    fn a_capped_scenario_takes_only_its_first_seeds() {
        let run = Selection::range_capped(10..200, Shard::ALL, &[None, Some(3)]);
        let pairs: Vec<(usize, u64)> = (0..).map_while(|i| run.pair(i)).collect();
        assert_eq!(pairs.iter().filter(|(f, _)| *f == 0).count(), 190);
        let capped: Vec<u64> = pairs
            .iter()
            .filter(|(f, _)| *f == 1)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(capped, [10, 11, 12]);
        // Shards split the capped seeds too, and together hold all of them.
        let shard =
            Selection::range_capped(10..200, Shard { index: 1, count: 2 }, &[None, Some(3)]);
        let held: Vec<u64> = (0..)
            .map_while(|i| shard.pair(i))
            .filter(|(f, _)| *f == 1)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(held, [11]);
    }
}
