//! The store's internal routes with a user's own credentials: the service
//! API the export service reads recordings through
//! (`/v1/service/accounts/{account}/recordings/...`) is reachable by anyone
//! who can reach the store, so a curious user calls it for someone else's
//! recording (its account and id, seen on the board) with no token, with
//! their own session and with their own device's token. Each must be
//! refused as unauthenticated (401, no token) or forbidden (403, a token
//! that is not the service's), revealing nothing; whatever audio or listing
//! comes back anyway is judged by its watermark (isolation), never by the
//! store's word.

use super::super::person::Person;
use super::{CallError, FORBIDDEN, UNAUTHORIZED};
use crate::check::Invariant;
use crate::net::sim_now_ms;
use crate::workload::Service;
use http::Method;

/// The kind of attempt, in the summary's probe counters.
pub(crate) const SERVICE_ROUTE_AS_USER: &str = "service route with a user's credentials";

impl Person {
    /// Someone else's recording through the service routes, with each
    /// credential a user holds (none, their session, their device's token).
    pub(super) async fn service_routes_as_user(&mut self, pick: u64) -> Result<(), CallError> {
        let Some((owner, id)) = self.foreign_recording(pick.rotate_left(23)) else {
            return Ok(());
        };
        let account = self.account_of(owner);
        let base = format!("/v1/service/accounts/{account}/recordings");
        let device = self.devices.first().map(|d| d.token.clone());
        let mut credentials = vec![
            ("no token", None, UNAUTHORIZED),
            ("their own session", Some(self.session.clone()), FORBIDDEN),
        ];
        if let Some(token) = device {
            credentials.push(("their own device's token", Some(token), FORBIDDEN));
        }
        for (n, (how, token, refusals)) in credentials.into_iter().enumerate() {
            // Audio each time; the listing with one credential in turn.
            let listing = (pick >> 8) % 3 == n as u64;
            let audio = format!("{base}/{id}/audio");
            self.service_route(&audio, how, token.as_deref(), refusals, true)
                .await?;
            if listing {
                let path = format!("{base}?limit=5");
                self.service_route(&path, how, token.as_deref(), refusals, false)
                    .await?;
            }
        }
        Ok(())
    }

    /// One call of a service route; judged, and what it delivered too.
    async fn service_route(
        &mut self,
        path: &str,
        how: &str,
        token: Option<&str>,
        refusals: &[u16],
        audio: bool,
    ) -> Result<(), CallError> {
        let requested = sim_now_ms();
        let Some(r) = self
            .probe_call(Service::Store, Method::GET, path, token, None)
            .await?
        else {
            return Ok(());
        };
        let what = format!("called the store's service route {path} with {how}");
        let kind = SERVICE_ROUTE_AS_USER;
        if !self.judge(kind, &r, refusals, Invariant::AccessControl, &what) {
            let channel = format!("{path} with {how}");
            if audio {
                self.judge_audio(&r, &channel, requested);
            } else {
                self.judge_page(&r, &channel, requested);
            }
        }
        Ok(())
    }
}
