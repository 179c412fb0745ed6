//! The high-resolution helper behind [`crate::Precision::Fine`].
//!
//! One OS thread waits on a condition variable with a timeout (the kernel's
//! high-resolution timer, tens of microseconds of slack on Linux) until the
//! earliest registered instant, then wakes that task. Registrations are
//! replaced, not accumulated: a limiter only ever has its queue head
//! waiting on a deadline, and a deadline fires at most once. The thread is started on first use and joined
//! when the timer is dropped (when the last clone of its limiter goes).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::Instant;

#[derive(Default)]
struct State {
    /// (deadline, registration id) → waker.
    entries: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registration handle: `(deadline, id)`.
pub(crate) type TimerKey = (Instant, u64);

#[derive(Default)]
pub(crate) struct PreciseTimer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl PreciseTimer {
    /// Wake `waker` at `deadline`, replacing the registration `previous`.
    /// Returns the new key, or `None` when the helper thread cannot be
    /// started (the caller then relies on its tokio timer alone).
    pub(crate) fn register(
        &self,
        previous: Option<TimerKey>,
        deadline: Instant,
        waker: &Waker,
    ) -> Option<TimerKey> {
        if !self.ensure_thread() {
            return None;
        }
        let mut st = lock(&self.shared.state);
        if let Some(prev) = previous {
            if prev.0 == deadline {
                // Same instant: refresh the waker if it has not fired yet,
                // and never re-arm one that has. (Under a simulated clock
                // the real instant can pass long before the simulated one;
                // re-arming would wake the task in a loop and keep the
                // runtime from ever going idle and advancing its clock.)
                if let Some(w) = st.entries.get_mut(&prev)
                    && !w.will_wake(waker)
                {
                    w.clone_from(waker);
                }
                return Some(prev);
            }
            st.entries.remove(&prev);
        }
        let id = st.next_id;
        st.next_id += 1;
        let key = (deadline, id);
        let earliest = st.entries.keys().next().is_none_or(|k| *k > key);
        st.entries.insert(key, waker.clone());
        drop(st);
        if earliest {
            self.shared.cv.notify_one();
        }
        Some(key)
    }

    /// Forget a registration.
    pub(crate) fn cancel(&self, key: TimerKey) {
        lock(&self.shared.state).entries.remove(&key);
    }

    fn ensure_thread(&self) -> bool {
        let mut t = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if t.is_some() {
            return true;
        }
        let shared = self.shared.clone();
        match std::thread::Builder::new()
            .name("ratelimit-precise".into())
            .spawn(move || run(&shared))
        {
            Ok(handle) => {
                *t = Some(handle);
                true
            }
            Err(e) => {
                tracing::warn!("ratelimit: cannot start the Precision::Fine helper thread: {e}");
                false
            }
        }
    }
}

fn run(shared: &Shared) {
    let mut st = lock(&shared.state);
    loop {
        if st.shutdown {
            return;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some((&key, _)) = st.entries.first_key_value() {
            if key.0 > now {
                break;
            }
            if let Some(w) = st.entries.remove(&key) {
                due.push(w);
            }
        }
        if !due.is_empty() {
            drop(st);
            for w in due {
                w.wake();
            }
            st = lock(&shared.state);
            continue;
        }
        st = match st.entries.first_key_value().map(|(k, _)| k.0) {
            Some(deadline) => {
                shared
                    .cv
                    .wait_timeout(st, deadline.saturating_duration_since(now))
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
            None => shared.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

impl Drop for PreciseTimer {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.cv.notify_all();
        if let Some(handle) = self
            .thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            && handle.thread().id() != std::thread::current().id()
        {
            // (Never join ourselves: a waker run on the helper thread could
            // in principle drop the last owner; the loop exits on its own.)
            let _ = handle.join();
        }
    }
}
