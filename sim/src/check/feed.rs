//! A notification feed read twice: whole, then after one's cursor.
//!
//! A person's feed (`GET /v1/notifications?after=SEQ`) carries identity
//! challenges and download links; a client keeps the last `seq` it saw and
//! asks only for what came after. The store promises that a read after
//! `seq` returns, oldest first, every notification of the account with a
//! greater `seq` (at most [`FEED_PAGE_ITEMS`]). Nothing is taken on trust:
//! the person first reads the whole feed (`after=0`) and then the feed
//! after their cursor, and because a feed only grows, every notification
//! the whole read showed past the cursor must be in the cursor's read. A
//! cursor read that skips some (a `seq` taken for a count, an off-by-one,
//! a cursor of another account) hides challenge codes and links from the
//! very person they were sent to; it is request integrity. So is a read
//! that returns something at or before the cursor, or out of order.

use super::{Invariant, Oracle};

/// The most notifications one read of the feed returns
/// (`crosstalk_store::Store::notifications`).
pub const FEED_PAGE_ITEMS: usize = 200;

/// One feed read twice by one principal.
pub struct FeedReread<'a> {
    pub principal: usize,
    /// The cursor the second read was sent with.
    pub after: u64,
    /// The `seq`s of the whole feed, read first.
    pub whole: &'a [u64],
    /// The `seq`s the read after the cursor returned, read second.
    pub after_cursor: &'a [u64],
}

impl Oracle {
    /// Judge a feed read whole and then after a cursor, at `now`.
    pub fn judge_feed_reread(&mut self, read: FeedReread<'_>, now: u64) {
        self.controls.feed_rereads_judged += 1;
        let who = self.who(read.principal);
        let mut previous = read.after;
        for &seq in read.after_cursor {
            if seq <= previous {
                let detail = format!(
                    "{who}'s feed read after seq {} returned seq {seq} after seq {previous} (at or before the cursor, or out of order)",
                    read.after
                );
                self.violate(
                    Invariant::RequestIntegrity,
                    now,
                    None,
                    Some(read.principal),
                    detail,
                );
                return;
            }
            previous = seq;
        }
        if read.after_cursor.len() >= FEED_PAGE_ITEMS {
            return; // A full page: the rest comes with the next cursor.
        }
        let missing: Vec<u64> = read
            .whole
            .iter()
            .copied()
            .filter(|seq| *seq > read.after && !read.after_cursor.contains(seq))
            .collect();
        self.controls.feed_items_past_cursor_judged +=
            read.whole.iter().filter(|seq| **seq > read.after).count() as u64;
        if let Some(first) = missing.first() {
            let detail = format!(
                "{who}'s feed read after seq {} left out {} notification(s) the whole feed had just shown past it (first: seq {first})",
                read.after,
                missing.len()
            );
            self.violate(
                Invariant::RequestIntegrity,
                now,
                None,
                Some(read.principal),
                detail,
            );
        }
    }
}
