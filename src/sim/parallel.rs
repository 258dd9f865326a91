//! Work on many peers at once, on every core, with results in a fixed order.
//!
//! The simulator hands over jobs that each touch one peer (a frame or an inventory for it, its
//! tick). Threads own disjoint, contiguous ranges of peers, so no peer is shared; each job's
//! result comes back in job order, so what happens next does not depend on the thread count or
//! on which thread finished first.

/// Jobs below this many run on the calling thread (a thread costs more than they do).
const MIN_PARALLEL: usize = 64;

/// Threads to use: `MESHRTC_SIM_THREADS`, else rayon's pool size (the machine's cores). Results
/// do not depend on it.
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("MESHRTC_SIM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(rayon::current_num_threads)
            .max(1)
    })
}

/// Runs `f(peer, job)` for every `(peer index, job)`, in parallel over disjoint peer ranges;
/// returns the results in job order.
pub fn map_peers<P, J, R, F>(peers: &mut [P], jobs: Vec<(usize, J)>, f: F) -> Vec<R>
where
    P: Send,
    J: Send,
    R: Send,
    F: Fn(&mut P, J) -> R + Sync,
{
    let threads = threads();
    if threads < 2 || jobs.len() < MIN_PARALLEL {
        return jobs.into_iter().map(|(i, j)| f(&mut peers[i], j)).collect();
    }
    // Cut the peers where the jobs split evenly.
    let mut targets: Vec<usize> = jobs.iter().map(|(i, _)| *i).collect();
    targets.sort_unstable();
    let mut cuts: Vec<usize> = (1..threads)
        .map(|k| targets[k * targets.len() / threads])
        .collect();
    cuts.dedup();
    let n = jobs.len();
    // Jobs per range, each with its position in `jobs`.
    let mut per_range: Vec<Vec<(usize, usize, J)>> = (0..=cuts.len()).map(|_| Vec::new()).collect();
    for (pos, (peer, job)) in jobs.into_iter().enumerate() {
        let range = cuts.partition_point(|&c| c <= peer);
        per_range[range].push((pos, peer, job));
    }
    let mut slices = Vec::with_capacity(per_range.len());
    let mut rest = peers;
    let mut base = 0;
    for &cut in &cuts {
        let (head, tail) = rest.split_at_mut(cut - base);
        slices.push((base, head));
        rest = tail;
        base = cut;
    }
    slices.push((base, rest));
    // rayon's pool keeps its threads (a thread per batch cost more than the batch saved), and
    // its ordered collect gives the ranges back in order.
    use rayon::prelude::*;
    let f = &f;
    let done: Vec<Vec<(usize, R)>> = slices
        .into_par_iter()
        .zip(per_range)
        .map(|((base, slice), jobs)| {
            jobs.into_iter()
                .map(|(pos, peer, job)| (pos, f(&mut slice[peer - base], job)))
                .collect()
        })
        .collect();
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for (pos, r) in done.into_iter().flatten() {
        out[pos] = Some(r);
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_job_order_and_each_peer_sees_its_jobs_in_order() {
        let mut peers: Vec<Vec<u32>> = vec![Vec::new(); 100];
        let jobs: Vec<(usize, u32)> = (0..1000).map(|j| ((j * 37 % 100) as usize, j)).collect();
        let out = map_peers(&mut peers, jobs.clone(), |seen, j| {
            seen.push(j);
            j * 2
        });
        assert_eq!(out, jobs.iter().map(|(_, j)| j * 2).collect::<Vec<_>>());
        for (p, seen) in peers.iter().enumerate() {
            let want: Vec<u32> = jobs
                .iter()
                .filter(|(i, _)| *i == p)
                .map(|(_, j)| *j)
                .collect();
            assert_eq!(*seen, want);
        }
    }
}
