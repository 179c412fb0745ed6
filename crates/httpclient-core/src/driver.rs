//! The one trait every driver and every layer implements.
//!
//! A driver executes a request over a real client; a layer wraps another
//! `Driver` and is itself a `Driver`, so layers chain in any order
//! (`BatchExecutor<ConnectionPool<RateLimitedExecutor<ReqwestDriver>>>`).
//! The trait is object safe (through `async-trait`), so `Arc<dyn Driver>`
//! works where the concrete type should not leak.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Error, IntoRequest, Request, Response};

/// Executes HTTP requests.
///
/// Implementations must:
/// * return 4xx/5xx as `Ok(Response)`, never as errors;
/// * read the body before returning unless the request set
///   `stream_response`;
/// * honour [`crate::RequestOptions::timeout`] as a per-attempt limit (their
///   own default applies when it is `None`);
/// * map failures to the precise [`Error`] kind (walk the source chain);
/// * be cancel-safe: dropping the future abandons the request and frees its
///   connection;
/// * never retry on their own — retries belong to the pool layer, so that
///   server-side counts equal attempts.
///
/// Layers must forward every optional method to the driver they wrap, or an
/// outer layer silently reports nothing.
///
/// ```
/// use httpclient_core::{async_trait, Driver, Error, Request, Response};
/// use http::StatusCode;
///
/// struct Teapot;
///
/// #[async_trait]
/// impl Driver for Teapot {
///     async fn execute(&self, _request: Request) -> Result<Response, Error> {
///         Ok(Response::new(StatusCode::IM_A_TEAPOT))
///     }
/// }
///
/// # tokio_test_block_on(async {
/// let d: std::sync::Arc<dyn Driver> = std::sync::Arc::new(Teapot);
/// let r = d.execute(Request::get("http://x/").build()?).await?;
/// assert_eq!(r.status(), 418);
/// # Ok::<(), Error>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     futures::executor::block_on(f)
/// # }
/// ```
#[async_trait]
pub trait Driver: Send + Sync {
    /// Execute one request (one attempt, for a driver).
    async fn execute(&self, request: Request) -> Result<Response, Error>;

    /// Real TCP connections this driver has opened so far, where the client
    /// can count them; `None` when it cannot (never a guess). Layers forward
    /// their inner driver's answer.
    fn connections_opened(&self) -> Option<u64> {
        None
    }
}

#[async_trait]
impl<D: Driver + ?Sized> Driver for &D {
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        (**self).execute(request).await
    }
    fn connections_opened(&self) -> Option<u64> {
        (**self).connections_opened()
    }
}

#[async_trait]
impl<D: Driver + ?Sized> Driver for Arc<D> {
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        (**self).execute(request).await
    }
    fn connections_opened(&self) -> Option<u64> {
        (**self).connections_opened()
    }
}

#[async_trait]
impl<D: Driver + ?Sized> Driver for Box<D> {
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        (**self).execute(request).await
    }
    fn connections_opened(&self) -> Option<u64> {
        (**self).connections_opened()
    }
}

/// Conveniences on every driver.
#[async_trait]
pub trait DriverExt: Driver {
    /// Build and execute in one step; a build error is returned without
    /// touching the driver.
    ///
    /// ```no_run
    /// # use httpclient_core::{Driver, DriverExt, Request, Error};
    /// # async fn demo(driver: impl Driver) -> Result<(), Error> {
    /// let resp = driver.send(Request::get("http://127.0.0.1:8080/")).await?;
    /// let also = driver.send("http://127.0.0.1:8080/other").await?;
    /// # Ok(()) }
    /// ```
    async fn send<R: IntoRequest + Send>(&self, request: R) -> Result<Response, Error> {
        let request = request.into_request()?;
        self.execute(request).await
    }
}

impl<D: Driver + ?Sized> DriverExt for D {}
