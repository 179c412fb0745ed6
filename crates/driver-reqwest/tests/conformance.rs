//! The public driver conformance suite, run against `ReqwestDriver`: one
//! test per behaviour (see `httpclient_conformance::checks`).

use httpclient_conformance::ConformanceConfig;
use httpclient_driver_reqwest::ReqwestDriver;

httpclient_conformance::conformance_tests!(|cfg: ConformanceConfig| {
    ReqwestDriver::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout)
        .max_body_bytes(cfg.max_body_bytes)
        .build()
});
