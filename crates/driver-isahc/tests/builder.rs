//! Builder validation: every bad setting is a typed `ConfigError` at
//! `build()`, never a panic and never a silent default.

use std::time::Duration;

use httpclient_core::{Driver, Error};
use httpclient_driver_isahc::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, IsahcDriver, RedirectPolicy, isahc,
};

fn config_field(result: Result<IsahcDriver, Error>) -> &'static str {
    match result {
        Err(Error::Config(e)) => e.field,
        other => panic!("expected a ConfigError, got {other:?}"),
    }
}

#[test]
fn zero_values_are_config_errors() {
    let b = IsahcDriver::builder;
    assert_eq!(
        config_field(b().connect_timeout(Duration::ZERO).build()),
        "connect_timeout"
    );
    assert_eq!(config_field(b().timeout(Duration::ZERO).build()), "timeout");
    assert_eq!(
        config_field(b().idle_timeout(Duration::ZERO).build()),
        "idle_timeout"
    );
    assert_eq!(
        config_field(b().max_body_bytes(0).build()),
        "max_body_bytes"
    );
}

#[test]
fn invalid_user_agent_is_a_config_error() {
    let err = IsahcDriver::builder()
        .user_agent("bad\nagent")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(e) if e.field == "user_agent"),
        "{err:?}"
    );
    assert!(!err.may_have_been_sent());
}

#[test]
fn the_first_mistake_wins_and_later_good_values_do_not_hide_it() {
    let err = IsahcDriver::builder()
        .timeout(Duration::ZERO)
        .max_body_bytes(0)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(e) if e.field == "timeout"),
        "{err:?}"
    );
}

#[test]
fn defaults_and_settings_are_visible() {
    let d = IsahcDriver::new().unwrap();
    assert_eq!(d.default_timeout(), DEFAULT_TIMEOUT);
    assert_eq!(d.max_body_bytes(), Some(DEFAULT_MAX_BODY_BYTES));
    assert_eq!(d.redirect_policy(), RedirectPolicy::Limit(10));
    assert_eq!(
        d.connections_opened(),
        None,
        "isahc cannot count connections"
    );

    let d = IsahcDriver::builder()
        .timeout(Duration::from_millis(1500))
        .no_body_limit()
        .redirect(RedirectPolicy::None)
        .max_idle_connections(0)
        .idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(d.default_timeout(), Duration::from_millis(1500));
    assert_eq!(d.max_body_bytes(), None);
    assert_eq!(d.redirect_policy(), RedirectPolicy::None);
    assert!(format!("{d:?}").contains("IsahcDriver"));
}

#[test]
fn build_with_client_refuses_client_wide_settings() {
    for (builder, field) in [
        (
            IsahcDriver::builder().connect_timeout(Duration::from_secs(1)),
            "connect_timeout",
        ),
        (
            IsahcDriver::builder().max_idle_connections(4),
            "max_idle_connections",
        ),
        (
            IsahcDriver::builder().idle_timeout(Duration::from_secs(1)),
            "idle_timeout",
        ),
    ] {
        let client = isahc::HttpClient::new().unwrap();
        assert_eq!(config_field(builder.build_with_client(client)), field);
    }
    // Per-request settings do apply to a client of your own.
    let d = IsahcDriver::builder()
        .timeout(Duration::from_secs(3))
        .max_body_bytes(10)
        .build_with_client(isahc::HttpClient::new().unwrap())
        .unwrap();
    assert_eq!(d.default_timeout(), Duration::from_secs(3));
    assert_eq!(d.max_body_bytes(), Some(10));
    // And a mistake is still reported first.
    let client = isahc::HttpClient::new().unwrap();
    assert_eq!(
        config_field(
            IsahcDriver::builder()
                .max_body_bytes(0)
                .build_with_client(client)
        ),
        "max_body_bytes"
    );
}

#[test]
fn from_client_uses_the_driver_defaults() {
    let d = IsahcDriver::from_client(isahc::HttpClient::new().unwrap());
    assert_eq!(d.default_timeout(), DEFAULT_TIMEOUT);
    assert_eq!(d.max_body_bytes(), Some(DEFAULT_MAX_BODY_BYTES));
    assert_eq!(d.redirect_policy(), RedirectPolicy::Limit(10));
}

#[cfg(feature = "http2")]
#[test]
fn http2_prior_knowledge_is_a_client_wide_setting() {
    assert!(
        IsahcDriver::builder()
            .http2_prior_knowledge()
            .build()
            .is_ok()
    );
    let client = isahc::HttpClient::new().unwrap();
    assert_eq!(
        config_field(
            IsahcDriver::builder()
                .http2_prior_knowledge()
                .build_with_client(client)
        ),
        "http2_prior_knowledge"
    );
}
