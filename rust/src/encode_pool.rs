//! The thread pools batches are encoded on, kept by size, and where their
//! threads are woken.
//!
//! A batch wakes the pool's sleeping threads and waits. On a virtual
//! machine, Linux often queues a woken thread on the waker's CPU rather than
//! on an idle one, as an idle virtual CPU that the host has descheduled
//! counts as preempted (`vcpu_is_preempted`); the thread then waits for the
//! load balancer, milliseconds. On the 2-CPU development VM that put both
//! threads of a batch on one CPU in a third to half of the batches after a
//! pause (1.00-1.01 CPUs busy, where the others used 1.75-1.9), and a thread
//! woken while its waker ran on waited 3 ms at the 90th percentile (20 us
//! when the waker then slept). So before a batch wakes its threads, each is
//! pinned to a CPU of its own (the caller's last, as it only waits), and
//! gives itself its mask from before back when it starts: only the wake-up
//! is placed, the rest is the scheduler's.
//! (Woken onto a named idle CPU, a thread started in 50-70 us, at most
//! 0.5 ms.)

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

/// A pool and what it knows of its threads.
pub struct EncodePool {
    pool: rayon::ThreadPool,
    threads: Arc<Threads>,
}

/// Each pool thread's id (0 until it has started), and while it is pinned
/// for a wake-up, the CPU mask it had before (to be given back).
struct Threads {
    tids: Vec<AtomicI32>,
    before_pin: Vec<Mutex<Option<cpus::Mask>>>,
}

impl EncodePool {
    /// The pool of `n` threads, made on first use and kept (for the first
    /// few sizes asked for, and up to the machine's size): its threads keep
    /// their piece caches from call to call.
    pub fn sized(n: usize) -> Result<Arc<EncodePool>, String> {
        const KEPT: usize = 4;
        /// The process they were made in, and the pools by size.
        type Pools = (u32, Vec<(usize, Arc<EncodePool>)>);
        static POOLS: Mutex<Pools> = Mutex::new((0, Vec::new()));
        let mut guard = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        let (pid, pools) = &mut *guard;
        // A forked child inherits the pools but not their threads: it makes its own.
        if *pid != std::process::id() {
            // Leaked, not dropped: dropping a pool whose threads are gone could block.
            std::mem::forget(std::mem::take(pools));
            *pid = std::process::id();
        }
        if let Some((_, pool)) = pools.iter().find(|(size, _)| *size == n) {
            return Ok(Arc::clone(pool));
        }
        let threads = Arc::new(Threads {
            tids: (0..n).map(|_| AtomicI32::new(0)).collect(),
            before_pin: (0..n).map(|_| Mutex::new(None)).collect(),
        });
        let started = Arc::clone(&threads);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(move |k| format!("fastllm-encode-{n}-{k}"))
            .start_handler(move |k| started.tids[k].store(cpus::this_thread(), Ordering::Release))
            .build()
            .map_err(|e| e.to_string())?;
        let pool = Arc::new(EncodePool { pool, threads });
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        if pools.len() < KEPT && n <= cores.max(2) * 2 {
            pools.push((n, Arc::clone(&pool)));
        }
        Ok(pool)
    }

    /// `body` in the pool's scope on this thread (see rayon's
    /// `in_place_scope`). Where `jobs` (how many it spawns) are more than
    /// one, the threads are pinned apart for their wake-up first (see the
    /// module's note), and each job should call [`EncodePool::settle`] first.
    pub fn in_place_scope<'scope, R>(&self, jobs: usize, body: impl FnOnce(&rayon::Scope<'scope>) -> R) -> R {
        if jobs > 1 {
            self.pin_apart();
        }
        self.pool.in_place_scope(body)
    }

    /// Gives the pool thread this runs on the CPU mask it had before
    /// [`EncodePool::in_place_scope`] pinned it for its wake-up, if it is pinned.
    pub fn settle(&self) {
        let Some(k) = self.pool.current_thread_index() else { return };
        if let Some(mask) = self.threads.before_pin[k].lock().unwrap_or_else(|e| e.into_inner()).take() {
            mask.apply(0);
        }
    }

    /// Pins each started thread to one CPU allowed to the caller: the
    /// others first, then the caller's own (it waits while they work).
    fn pin_apart(&self) {
        let (Some(allowed), Some(here)) = (cpus::Mask::of_this_thread(), cpus::current()) else { return };
        let mut order: Vec<usize> = allowed.cpus().filter(|&c| c != here).collect();
        if order.is_empty() {
            return;
        }
        order.push(here);
        for (k, tid) in self.threads.tids.iter().enumerate() {
            let tid = tid.load(Ordering::Acquire);
            if tid == 0 {
                continue;
            }
            // A thread still pinned by another batch keeps the mask saved then.
            let mut before = self.threads.before_pin[k].lock().unwrap_or_else(|e| e.into_inner());
            if before.is_none() {
                *before = cpus::Mask::of_thread(tid);
            }
            if before.is_some() {
                cpus::Mask::one(order[k % order.len()]).apply(tid);
            }
        }
    }
}

/// CPU masks of threads (Linux; elsewhere nothing is pinned).
#[cfg(target_os = "linux")]
mod cpus {
    /// A set of CPUs.
    #[derive(Clone, Copy)]
    pub struct Mask(libc::cpu_set_t);

    impl Mask {
        /// The CPUs this thread may run on.
        pub fn of_this_thread() -> Option<Mask> {
            Self::of_thread(0)
        }

        /// The CPUs thread `tid` may run on (None: it is gone).
        pub fn of_thread(tid: i32) -> Option<Mask> {
            // SAFETY: a zeroed cpu_set_t is an empty set; the call writes at most its size.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            let ok = unsafe { libc::sched_getaffinity(tid, size_of::<libc::cpu_set_t>(), &mut set) } == 0;
            ok.then_some(Mask(set))
        }

        /// The set of CPU `cpu` alone.
        pub fn one(cpu: usize) -> Mask {
            // SAFETY: as above; CPU_SET ignores a CPU past the set's size.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            unsafe { libc::CPU_SET(cpu, &mut set) };
            Mask(set)
        }

        pub fn cpus(&self) -> impl Iterator<Item = usize> + '_ {
            // SAFETY: reads the set only.
            (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &self.0) })
        }

        /// Restricts thread `tid` (0: this one) to these CPUs; a failure
        /// (a thread gone, a CPU taken away) leaves it as it was.
        pub fn apply(&self, tid: i32) {
            // SAFETY: a valid set of its own size; the call only reads it.
            unsafe { libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &self.0) };
        }
    }

    /// The CPU this thread is running on.
    pub fn current() -> Option<usize> {
        // SAFETY: no arguments; -1 on failure.
        usize::try_from(unsafe { libc::sched_getcpu() }).ok()
    }

    /// This thread's id.
    pub fn this_thread() -> i32 {
        // SAFETY: no arguments, cannot fail.
        unsafe { libc::gettid() }
    }
}

#[cfg(not(target_os = "linux"))]
mod cpus {
    #[derive(Clone, Copy)]
    pub struct Mask;

    impl Mask {
        pub fn of_this_thread() -> Option<Mask> {
            None
        }
        pub fn of_thread(_: i32) -> Option<Mask> {
            None
        }
        pub fn one(_: usize) -> Mask {
            Mask
        }
        pub fn cpus(&self) -> impl Iterator<Item = usize> + '_ {
            std::iter::empty()
        }
        pub fn apply(&self, _: i32) {}
    }

    pub fn current() -> Option<usize> {
        None
    }

    pub fn this_thread() -> i32 {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The CPUs thread `tid` may run on, from /proc.
    fn allowed_of(tid: i32) -> String {
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
        status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string()
    }

    /// Pinning puts each thread of the pool on one CPU (distinct ones while
    /// there are CPUs enough), and `settle` gives each its own mask back.
    #[test]
    fn threads_are_pinned_apart_for_a_wake_up_and_settle_back() {
        // A size no other test asks for: their batches would pin the same threads.
        let pool = EncodePool::sized(7).unwrap();
        // Every thread started, its id known.
        pool.pool.broadcast(|_| ());
        let own: Vec<String> = pool.threads.tids.iter().map(|t| allowed_of(t.load(Ordering::Acquire))).collect();
        let cpus = cpus::Mask::of_this_thread().unwrap().cpus().count();
        pool.pin_apart();
        // A second batch before the threads settle: the masks from before the first are kept.
        pool.pin_apart();
        let pinned: Vec<String> = pool.threads.tids.iter().map(|t| allowed_of(t.load(Ordering::Acquire))).collect();
        if cpus > 1 {
            assert!(pinned.iter().all(|p| p.parse::<usize>().is_ok()), "one CPU each: {pinned:?}");
            assert_ne!(pinned[0], pinned[1], "apart");
        }
        pool.pool.broadcast(|_| pool.settle());
        let settled: Vec<String> = pool.threads.tids.iter().map(|t| allowed_of(t.load(Ordering::Acquire))).collect();
        assert_eq!(settled, own);
    }
}
