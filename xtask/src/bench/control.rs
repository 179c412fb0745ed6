//! The run's A/A control: plain reqwest against an identically built plain
//! reqwest. Its interval measures how much the machine moves a ratio that
//! should be exactly 1; when it is wider than ±2 % no comparison of the run
//! is trusted (see [`crate::report::apply_control_gate`]).

use super::load::{plain_reqwest_client, reqwest_slice};
use super::{Comparison, Scenario};
use crate::report::CONTROL_ID;
use crate::stats::{Threshold, Verdict, control_is_tight};

/// Concurrency of the control.
const CONCURRENCY: usize = 64;

/// The control scenario (always run, whatever `--filter` says).
pub fn scenario() -> Scenario {
    Scenario::new(CONTROL_ID, |ctx| async move {
        let url = ctx.url("/");
        let a = plain_reqwest_client()?;
        let b = plain_reqwest_client()?;
        let cmp = Comparison::new(CONTROL_ID, "plain reqwest (second identical client)")
            .slice_requests(ctx.config().slice_for(CONCURRENCY))
            .rps_threshold(Threshold::Within(0.98, 1.02))
            .notes("A/A control: both sides are plain reqwest, buffered(64)");
        let mut records = ctx
            .compare(
                &cmp,
                |n| reqwest_slice(&a, &url, n, CONCURRENCY),
                |n| reqwest_slice(&b, &url, n, CONCURRENCY),
            )
            .await?;
        // The control's own verdict is the noise check itself, whatever the
        // number of pairs: pass = this run can be trusted at the ±2 % level.
        for r in records.iter_mut().filter(|r| r.metric == "rps") {
            r.verdict = r.ratio_ci.map(|[lo, hi]| {
                if control_is_tight(lo, hi) {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                }
            });
        }
        Ok(records)
    })
}
