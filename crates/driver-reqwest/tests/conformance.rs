//! The public driver conformance suite, run against `ReqwestDriver`: one
//! test per behaviour (see `httpclient_conformance::checks`), once as built
//! by default and once with connection counting off (the connector layer
//! must change nothing but the count).

use httpclient_conformance::ConformanceConfig;
use httpclient_driver_reqwest::ReqwestDriver;

httpclient_conformance::conformance_tests!(|cfg: ConformanceConfig| {
    ReqwestDriver::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout)
        .max_body_bytes(cfg.max_body_bytes)
        .build()
});

mod without_connection_counting {
    use super::*;

    httpclient_conformance::conformance_tests!(|cfg: ConformanceConfig| {
        ReqwestDriver::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .max_body_bytes(cfg.max_body_bytes)
            .count_connections(false)
            .build()
    });
}
