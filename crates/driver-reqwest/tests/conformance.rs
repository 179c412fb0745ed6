//! The public driver conformance suite, run against `ReqwestDriver`: one
//! test per behaviour (see `httpclient_conformance::checks`), once as built
//! by default (connection counting off) and once with connection counting
//! on (the connector layer must change nothing but the count, and the
//! keep-alive check then compares the count with the server's).

use httpclient_conformance::ConformanceConfig;
use httpclient_driver_reqwest::ReqwestDriver;

httpclient_conformance::conformance_tests!(|cfg: ConformanceConfig| {
    ReqwestDriver::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout)
        .max_body_bytes(cfg.max_body_bytes)
        .build()
});

mod with_connection_counting {
    use super::*;

    httpclient_conformance::conformance_tests!(|cfg: ConformanceConfig| {
        ReqwestDriver::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .max_body_bytes(cfg.max_body_bytes)
            .count_connections(true)
            .build()
    });
}
