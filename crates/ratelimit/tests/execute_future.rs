//! The future returned by `RateLimitedExecutor::execute` (hand-written, not
//! an `async` body): when it takes its permit, what dropping it does in
//! each phase, and what it returns once finished. Paused clock, so every
//! instant is exact.

use std::time::Duration;

use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_core::{Driver, Error, Request};
use httpclient_ratelimit::{Quota, RateLimitedExecutor};
use tokio::time::Instant;

fn q(rate: u32) -> Quota {
    Quota::per_second(rate).unwrap()
}

fn get() -> Request {
    Request::get("http://api.test/").build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_permit_is_taken_at_the_first_poll_not_when_the_future_is_made() {
    let mock = MockDriver::new();
    let exec = RateLimitedExecutor::new(mock.clone(), q(10));
    let t0 = Instant::now();
    let first_made = exec.execute(get());
    let second_made = exec.execute(get());
    // Made, never polled: nothing asked of the limiter, nothing sent.
    drop(exec.execute(get()));
    assert_eq!(exec.stats().limiter.requests, 0);
    assert_eq!(mock.call_count(), 0);
    // The future made second is polled first: it gets the free permit.
    let r = second_made.await.unwrap();
    assert_eq!(r.permit_wait().unwrap().wait, Duration::ZERO);
    let r = first_made.await.unwrap();
    assert_eq!(r.permit_wait().unwrap().wait, Duration::from_millis(100));
    assert_eq!(Instant::now() - t0, Duration::from_millis(100));
    let s = exec.stats();
    assert_eq!(
        (s.limiter.requests, s.limiter.granted, s.executed),
        (2, 2, 2)
    );
    assert_eq!(s.limiter.throttled, 1);
    assert_eq!(mock.call_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn dropped_while_queued_it_gives_its_place_back_and_sends_nothing() {
    let mock = MockDriver::new();
    let exec = RateLimitedExecutor::new(mock.clone(), q(10));
    let t0 = Instant::now();
    exec.execute(get()).await.unwrap();
    // Queued for the 100 ms permit, gives up at 50 ms.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), exec.execute(get())).await;
    assert!(gave_up.is_err());
    assert_eq!(exec.limiter().queue_len(), 0);
    // The next caller gets the 100 ms permit the quitter left.
    let r = exec.execute(get()).await.unwrap();
    assert_eq!(Instant::now() - t0, Duration::from_millis(100));
    assert_eq!(r.permit_wait().unwrap().wait, Duration::from_millis(50));
    let s = exec.stats();
    assert_eq!(s.limiter.cancelled, 1);
    assert_eq!(s.executed, 2);
    assert_eq!(mock.call_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn dropped_while_the_driver_runs_it_leaves_nothing_in_flight() {
    let mock = MockDriver::new().default_behavior(Behavior::hang());
    let exec = RateLimitedExecutor::new(mock.clone(), q(10));
    let fut = exec.execute(get());
    let gave_up = tokio::time::timeout(Duration::from_secs(1), fut).await;
    assert!(gave_up.is_err());
    let s = exec.stats();
    assert_eq!((s.executed, s.in_flight), (1, 0));
    assert_eq!(mock.in_flight(), 0, "the driver's future was dropped");
}

#[tokio::test(start_paused = true)]
async fn refusals_and_driver_errors_come_back_as_errors() {
    // Stopped: refused at once, the driver never called.
    let mock = MockDriver::new();
    let exec = RateLimitedExecutor::new(mock.clone(), q(10));
    exec.stop();
    assert!(matches!(
        exec.execute(get()).await,
        Err(Error::Stopped { .. })
    ));
    // Stopped while queued: the waiter wakes with the error.
    let exec = RateLimitedExecutor::new(mock.clone(), q(10));
    exec.execute(get()).await.unwrap();
    let (queued, ()) = tokio::join!(exec.execute(get()), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        exec.stop();
    });
    assert!(matches!(queued, Err(Error::Stopped { .. })));
    assert_eq!(mock.call_count(), 1);
    // A driver error passes through untouched, with the permit spent.
    let failing = RateLimitedExecutor::new(
        MockDriver::new().default_behavior(Behavior::refused()),
        q(10),
    );
    assert!(failing.execute(get()).await.unwrap_err().is_connect());
    assert_eq!(failing.stats().executed, 1);
    assert_eq!(failing.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn polled_again_after_completion_it_errs_and_takes_no_permit() {
    let mock = MockDriver::new();
    let exec = RateLimitedExecutor::new(mock.clone(), q(10));
    let mut fut = exec.execute(get());
    assert!((&mut fut).await.is_ok());
    let again = std::future::poll_fn(|cx| fut.as_mut().poll(cx)).await;
    assert!(matches!(again, Err(Error::InvalidRequest { .. })));
    assert_eq!(exec.stats().limiter.requests, 1);
    assert_eq!(mock.call_count(), 1);
}
