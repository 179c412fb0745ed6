//! The public driver conformance suite, run against `IsahcDriver`: one test
//! per behaviour (see `httpclient_conformance::checks`).

use httpclient_conformance::ConformanceConfig;
use httpclient_driver_isahc::IsahcDriver;

httpclient_conformance::conformance_tests!(|cfg: ConformanceConfig| {
    IsahcDriver::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout)
        .max_body_bytes(cfg.max_body_bytes)
        .build()
});
