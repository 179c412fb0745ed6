//! Plain-client absolute scenarios: `plain/reqwest/c{16,64,256}`.
//!
//! They exercise the harness (slicing, bounded `buffered(C)` loops, CPU
//! accounting, absolute records) and give the reference throughput of the
//! plain client every driver is compared with: 20,000 GETs per measurement
//! run (5,000 with `--quick`) split into slices.

use super::Scenario;
use super::load::{plain_reqwest_client, reqwest_slice};

/// Concurrencies measured.
pub const CONCURRENCIES: [usize; 3] = [16, 64, 256];

/// The plain-client scenarios.
pub fn scenarios() -> Vec<Scenario> {
    CONCURRENCIES
        .into_iter()
        .map(|c| {
            let id = format!("plain/reqwest/c{c}");
            Scenario::new(id.clone(), move |ctx| async move {
                let url = ctx.url("/");
                let client = plain_reqwest_client()?;
                let cfg = ctx.config();
                let records = ctx
                    .measure_absolute(&id, cfg.absolute_requests, cfg.slice_for(c), |n| {
                        reqwest_slice(&client, &url, n, c)
                    })
                    .await?;
                Ok(records
                    .into_iter()
                    .map(|r| r.note(format!("plain reqwest, buffered({c}), GET / -> 200 \"ok\"")))
                    .collect())
            })
        })
        .collect()
}
