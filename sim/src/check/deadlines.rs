//! A request's legal deadline is extended at most once (GDPR Art. 12(3)).
//!
//! The agent extends a verified ticket's export, and now and then does it
//! twice (the same click again). When the first extension was acknowledged
//! (200), the second must be refused (409): a console that extends again
//! and again lets a request wait forever within "its deadline".

use super::{Invariant, Oracle};

impl Oracle {
    /// The agent extended export `export_id` twice: the first answered
    /// `first`, the second `second` (`None`: no answer, outcome unknown).
    pub fn on_deadline_extended_twice(
        &mut self,
        export_id: u64,
        first: Option<u16>,
        second: Option<u16>,
        at_ms: u64,
    ) {
        let (Some(200), Some(second)) = (first, second) else {
            return;
        };
        self.controls.second_extensions_judged += 1;
        if second == 409 {
            return;
        }
        let detail = format!(
            "the agent extended exp-{export_id}'s deadline a second time and the console answered {second}, not 409 (one extension only)"
        );
        self.violate(Invariant::Liveness, at_ms, None, None, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    #[test]
    fn a_deadline_is_extended_once() {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.on_deadline_extended_twice(1, Some(200), Some(409), 5);
        o.on_deadline_extended_twice(2, None, Some(200), 5);
        o.on_deadline_extended_twice(3, Some(200), None, 5);
        assert!(o.violations.is_empty());
        o.on_deadline_extended_twice(4, Some(200), Some(200), 6);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::Liveness);
        assert_eq!(o.controls.second_extensions_judged, 2);
    }
}
