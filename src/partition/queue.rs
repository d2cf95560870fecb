//! Independent jobs of unequal size (communities) on all cores, heaviest first, each taken by
//! the next free core; the answers come back in the jobs' own order, so the output does not
//! depend on scheduling.
//!
//! Rayon's indexed `par_iter` splits a list into halves up front: with four communities on two
//! cores, one core gets the first two and the other the last two, whatever their sizes
//! (Manhattan's import tessellated 851 + 2,311 buildings on one core and 2,462 + 2,351 on the
//! other). A queue in decreasing weight is the classic longest-processing-time rule.

use rayon::iter::{ParallelBridge, ParallelIterator};
use std::cmp::Reverse;

/// `f` of every job, heaviest (by `weight`) started first; answers in `jobs`' order.
pub fn heaviest_first<T, R, W, F>(jobs: Vec<T>, weight: W, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    W: Fn(&T) -> usize,
    F: Fn(T) -> R + Sync + Send,
{
    let mut order: Vec<(usize, T)> = jobs.into_iter().enumerate().collect();
    order.sort_by_key(|(i, t)| (Reverse(weight(t)), *i));
    let mut out: Vec<(usize, R)> = order
        .into_iter()
        .par_bridge()
        .map(|(i, t)| (i, f(t)))
        .collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::heaviest_first;
    use std::sync::Mutex;

    #[test]
    fn answers_in_order_and_starts_heaviest() {
        // one core: the order jobs are taken in is the queue's order
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let started = Mutex::new(Vec::new());
        let out = pool.install(|| {
            heaviest_first(
                vec![3usize, 9, 1, 9, 5],
                |w| *w,
                |w| {
                    started.lock().unwrap().push(w);
                    w * 10
                },
            )
        });
        assert_eq!(out, vec![30, 90, 10, 90, 50]);
        assert_eq!(started.into_inner().unwrap(), vec![9, 9, 5, 3, 1]);
    }
}
