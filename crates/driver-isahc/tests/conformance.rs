//! The public driver conformance suite, run against `IsahcDriver`.
//!
//! Every check runs through `httpclient_conformance::run_all`, so a check
//! added to the suite later is run here without an edit. Each must pass,
//! except the ones in [`KNOWN_GAPS`]: behaviours isahc cannot give today,
//! each with its reason. A known gap must still *fail* — if it starts
//! passing (a newer isahc), this test says so and the entry (and the crate
//! docs) must go.

use std::time::Duration;

use httpclient_conformance::{ConformanceConfig, check_names, run_all};
use httpclient_driver_isahc::IsahcDriver;

/// Checks this driver is known to fail, with the reason.
const KNOWN_GAPS: &[(&str, &str)] = &[(
    "dropped_future_frees_connection",
    "isahc 2.0 notices a dropped future only inside curl's header/read \
     callbacks; a server that sends nothing triggers none, so curl keeps the \
     connection until the attempt's timeout (see the crate docs, \
     'Cancellation', and tests/cancellation.rs)",
)];

fn make(cfg: ConformanceConfig) -> Result<IsahcDriver, httpclient_core::Error> {
    IsahcDriver::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout)
        .max_body_bytes(cfg.max_body_bytes)
        .build()
}

#[test]
fn conformance_suite() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = rt.block_on(run_all(make));
    drop(rt);
    println!("{report}");

    assert_eq!(
        report.outcomes.len(),
        check_names().len(),
        "every check ran"
    );
    for (gap, _) in KNOWN_GAPS {
        assert!(
            check_names().contains(gap),
            "known gap `{gap}` is no longer a check of the suite: remove it"
        );
    }
    let mut problems = Vec::new();
    for outcome in &report.outcomes {
        let gap = KNOWN_GAPS.iter().find(|(name, _)| *name == outcome.name);
        match (&outcome.result, gap) {
            (Ok(()), None) | (Err(_), Some(_)) => {}
            (Err(failure), None) => problems.push(format!("{}: {failure}", outcome.name)),
            (Ok(()), Some((name, _))) => problems.push(format!(
                "{name} now passes: remove it from KNOWN_GAPS and from the crate docs"
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn known_gaps_fail_for_the_stated_reason_only() {
    // The gap is about *prompt* release. The connection must still be
    // released by the attempt's timeout: check that with a short default.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = rt.block_on(
        httpclient_conformance::checks::dropped_future_frees_connection(
            &|cfg: ConformanceConfig| make(cfg.with_timeout(Duration::from_millis(500))),
        ),
    );
    assert!(
        outcome.is_ok(),
        "with a 500 ms timeout the dropped request's connection must be closed \
         within the suite's 2 s: {outcome:?}"
    );
}
