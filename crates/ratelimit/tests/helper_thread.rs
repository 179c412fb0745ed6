//! `Precision::Fine` starts one helper thread and joins it when the limiter
//! goes: nothing outlives the limiter. (Its own test binary, so no other
//! test's limiter is counted.)

use std::time::Duration;

use httpclient_ratelimit::{Limiter, Precision, Quota};

fn helper_threads() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with("ratelimit-prec"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fine_helper_thread_lives_exactly_as_long_as_the_limiter() {
    if std::fs::read_dir("/proc/self/task").is_err() {
        return; // not Linux: nothing to count
    }
    let limiter = Limiter::builder(Quota::per_second(500).unwrap())
        .precision(Precision::Fine)
        .build();
    assert_eq!(helper_threads(), 0, "started lazily");
    for _ in 0..20 {
        let p = tokio::time::timeout(Duration::from_secs(5), limiter.acquire())
            .await
            .expect("bounded")
            .unwrap();
        assert!(limiter.clock().now() >= p.granted_at());
    }
    assert_eq!(helper_threads(), 1);
    let clone = limiter.clone();
    drop(limiter);
    assert_eq!(helper_threads(), 1, "a clone keeps it");
    drop(clone);
    assert_eq!(helper_threads(), 0, "joined on drop");
}
