//! Counting real connections with a tower layer on reqwest's connector.
//!
//! reqwest 0.13 lets a [`tower_layer::Layer`] wrap the service that
//! establishes connections (`ClientBuilder::connector_layer`). The service's
//! request and response types are deliberately unnameable, so the layer
//! here is generic over both: it only watches the connect future and adds
//! one to a shared counter when it resolves `Ok`, i.e. when a TCP connection
//! (plus its TLS session, for `https`) is established and handed to the
//! pool. Reused keep-alive connections never reach the connector, so the
//! counter is exactly "connections opened". The counting itself is one
//! relaxed atomic increment per new connection, but the layer is not free
//! per request: reqwest boxes it and hyper-util clones the connector stack
//! for every request, so it is opt-in
//! (`ReqwestDriverBuilder::count_connections`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// Wraps reqwest's connector so every established connection is counted.
#[derive(Debug, Clone)]
pub(crate) struct CountConnectsLayer {
    count: Arc<AtomicU64>,
}

impl CountConnectsLayer {
    pub(crate) fn new(count: Arc<AtomicU64>) -> Self {
        CountConnectsLayer { count }
    }
}

impl<S> tower_layer::Layer<S> for CountConnectsLayer {
    type Service = CountConnects<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountConnects {
            inner: Arc::new(inner),
            count: Arc::clone(&self.count),
        }
    }
}

/// The connector service with a counter.
///
/// hyper-util clones the whole connector stack for **every request** (the
/// clone feeds a lazy connect that a pooled connection usually makes
/// unnecessary), and reqwest boxes each layer, so a plain wrapper would turn
/// every request into a deep clone of reqwest's connector plus a dozen
/// allocations. Keeping the inner service behind an `Arc` makes that
/// per-request clone two reference-count increments; the inner service is
/// cloned only when a connection is really made (`call`), where it is
/// readied and called once — tower's "clone, then oneshot" idiom.
#[derive(Debug)]
pub(crate) struct CountConnects<S> {
    inner: Arc<S>,
    count: Arc<AtomicU64>,
}

impl<S> Clone for CountConnects<S> {
    fn clone(&self) -> Self {
        CountConnects {
            inner: Arc::clone(&self.inner),
            count: Arc::clone(&self.count),
        }
    }
}

impl<S, R> tower_service::Service<R> for CountConnects<S>
where
    S: tower_service::Service<R> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CountConnect<S, R>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is checked on the clone that serves the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        CountConnect {
            state: State::Ready {
                svc: S::clone(&self.inner),
                req: Some(req),
            },
            count: Arc::clone(&self.count),
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, R, F> {
        Ready { svc: S, req: Option<R> },
        Calling { #[pin] fut: F },
    }
}

pin_project_lite::pin_project! {
    /// One connection attempt; counts itself when it succeeds.
    pub(crate) struct CountConnect<S, R>
    where
        S: tower_service::Service<R>,
    {
        #[pin]
        state: State<S, R, S::Future>,
        count: Arc<AtomicU64>,
    }
}

impl<S, R> Future for CountConnect<S, R>
where
    S: tower_service::Service<R>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Ready { svc, req } => {
                    std::task::ready!(svc.poll_ready(cx))?;
                    let Some(req) = req.take() else {
                        unreachable!("the request is taken once, then the state moves on")
                    };
                    let fut = svc.call(req);
                    this.state.set(State::Calling { fut });
                }
                StateProj::Calling { fut } => {
                    let out = std::task::ready!(fut.poll(cx));
                    if out.is_ok() {
                        this.count.fetch_add(1, Ordering::Relaxed);
                    }
                    return Poll::Ready(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_layer::Layer;
    use tower_service::Service;

    /// A connector that succeeds for even requests and fails for odd ones.
    #[derive(Clone)]
    struct Even;
    impl Service<u32> for Even {
        type Response = u32;
        type Error = &'static str;
        type Future = std::future::Ready<Result<u32, &'static str>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, n: u32) -> Self::Future {
            std::future::ready(if n % 2 == 0 { Ok(n) } else { Err("odd") })
        }
    }

    #[tokio::test]
    async fn counts_only_successful_connects() {
        let count = Arc::new(AtomicU64::new(0));
        let mut svc = CountConnectsLayer::new(Arc::clone(&count)).layer(Even);
        for n in 0..7 {
            let _ = svc.call(n).await;
        }
        assert_eq!(count.load(Ordering::Relaxed), 4); // 0, 2, 4, 6
        // A connect future dropped before it resolves is not counted.
        drop(svc.call(8));
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }
}
