//! The `std`/`loom` facade.
//!
//! Every concurrency primitive the crate uses internally comes from here, so the protocols can
//! be model-checked by building with `RUSTFLAGS="--cfg loom"` (the same arrangement tokio and
//! crossbeam use). Outside loom the types are the standard library's.
//!
//! `Mutex` and `Condvar` are thin wrappers that ignore poisoning: no user code ever runs while
//! one of the crate's locks is held, so a poisoned lock can only mean a bug in the crate itself,
//! and the data it guards (counters, lists of waiters) stays consistent at every await point.

#![allow(dead_code, unreachable_pub)]

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic;
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::sync::{Condvar as RawCondvar, Mutex as RawMutex, MutexGuard};
    pub(crate) use loom::thread;
    pub(crate) use loom::thread_local;

    /// Under loom, spinning is replaced by a yield so the model can make progress.
    #[inline]
    pub(crate) fn spin_hint() {
        loom::thread::yield_now();
    }
}

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic;
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::{Condvar as RawCondvar, Mutex as RawMutex, MutexGuard};
    pub(crate) use std::thread;
    pub(crate) use std::thread_local;

    #[inline]
    pub(crate) fn spin_hint() {
        std::hint::spin_loop();
    }
}

pub(crate) use imp::*;

/// Asks the CPU to bring the cache line at `addr` into this core's cache in a state it may
/// write at once (x86's `prefetchw`), so that a store to it soon after does not wait for the
/// line to come from another core. A hint: it never reads or writes memory as the program
/// sees it and never faults, whatever the address. Elsewhere (other architectures, a CPU
/// without the instruction, loom, Miri) it does nothing.
#[inline]
pub(crate) fn prefetch_for_write<T>(addr: *const T) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    if prefetchw::available() {
        // SAFETY: the CPU has the instruction (CPUID, below); a prefetch is a hint that
        // touches no memory architecturally and cannot fault, for any address.
        #[allow(unsafe_code)]
        unsafe {
            std::arch::asm!(
                "prefetchw [{0}]",
                in(reg) addr,
                options(nostack, preserves_flags, readonly)
            );
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = addr;
}

/// Asks the CPU to bring the cache line at `addr` into this core's cache for reading (x86's
/// `prefetcht0`, part of SSE, which every x86-64 processor has). A hint, as
/// [`prefetch_for_write`]: no effect on memory, no fault, and a no-op elsewhere.
#[inline]
pub(crate) fn prefetch_for_read<T>(addr: *const T) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // SAFETY: SSE is part of x86-64; a prefetch touches no memory architecturally and cannot
    // fault, for any address.
    #[allow(unsafe_code, unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(addr.cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = addr;
}

/// Whether this CPU has `prefetchw`, asked once. (The standard library's feature detection
/// does not name it.) Older x86-64 processors may lack it, and then it is not used.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
mod prefetchw {
    use std::sync::atomic::{AtomicU8, Ordering};

    use crossbeam_utils::CachePadded;

    const UNKNOWN: u8 = 0;
    const ABSENT: u8 = 1;
    const PRESENT: u8 = 2;

    /// On a cache line of its own: every post reads it, and a static that shares its line and
    /// is written often (the program's own counter, say) would make each of those reads a miss.
    /// A probe whose tasks bumped a static that the linker had placed in its line ran at
    /// 45–65 % of the speed (docs/PERFORMANCE.md, step 28).
    static STATE: CachePadded<AtomicU8> = CachePadded::new(AtomicU8::new(UNKNOWN));

    #[inline]
    pub(super) fn available() -> bool {
        match STATE.load(Ordering::Relaxed) {
            PRESENT => true,
            ABSENT => false,
            _ => detect(),
        }
    }

    #[cold]
    #[allow(unsafe_code)]
    fn detect() -> bool {
        use std::arch::x86_64::__cpuid;
        // CPUID leaf 0x8000_0001, ECX bit 8: PREFETCHW (Intel's PRFCHW, AMD's 3DNowPrefetch).
        // `__cpuid` is safe from Rust 1.87 on and an `unsafe fn` before (rust-version 1.80).
        // SAFETY: CPUID exists on every x86-64 processor, for any leaf.
        #[allow(unused_unsafe)]
        let present = unsafe {
            __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
        };
        STATE.store(if present { PRESENT } else { ABSENT }, Ordering::Relaxed);
        present
    }

    #[cfg(test)]
    #[test]
    fn the_answer_has_a_cache_line_of_its_own() {
        // Whole lines, so no other static can share one with the byte read on every post.
        assert!(std::mem::align_of_val(&STATE) >= 64);
        assert!(std::mem::size_of_val(&STATE) >= 64);
    }
}

/// Asymmetric barriers: a free barrier on a fast path ([`light_load`](asymmetric::light_load))
/// paired with a costly one on a rare slow path ([`heavy`](asymmetric::heavy)), which together
/// order memory as two full fences would. The pattern of Linux's `membarrier(2)`, folly's
/// `asymmetricLightBarrier`/`asymmetricHeavyBarrier` and liburcu.
///
/// The guarantee: a thread stores, then reads a word with `light_load`; another thread
/// writes that word (with an atomic read-modify-write), then calls `heavy`, then reads what
/// the first thread stored. If the light load read the word's value from before that write,
/// the second thread's read sees the first thread's store. (`heavy` makes every CPU that runs
/// a thread of the process execute a full barrier, so the light side's store and load cannot
/// have passed each other unobserved.)
///
/// Only on Linux, and only where the kernel offers the private expedited command (4.14 and
/// later, not refused by a seccomp filter): [`available`](asymmetric::available) says so,
/// and callers that find it false must not rely on `heavy`. Elsewhere [`SUPPORTED`](
/// asymmetric::SUPPORTED) is false at compile time and a caller's fast path folds away.
///
/// Written here rather than taken from the `membarrier` crate: that crate's light barrier is a
/// full fence wherever the system call is missing, and it does not tell its caller which one it
/// got, so a post would pay a fence on every call on those systems; here the caller asks first
/// and keeps its plain path there.
///
/// Under loom the pair is modelled by what it guarantees: the light load is a read-modify-write
/// of the word (`fetch_add(0)`, acquire and release), so loom orders it against the other
/// thread's write of the word both ways and passes the earlier stores along, and `heavy` does
/// nothing.
pub(crate) mod asymmetric {
    use super::atomic::{AtomicUsize, Ordering};

    /// Whether the fast path can exist on this target at all.
    pub(crate) const SUPPORTED: bool = cfg!(any(loom, all(target_os = "linux", not(miri))));

    /// The fast side: a load of `word` ordered after this thread's earlier stores for any
    /// thread that writes `word` and then calls [`heavy`] (see the module docs). On the
    /// processor it is a plain load: the barrier only stops the compiler from moving it.
    #[inline(always)]
    pub(crate) fn light_load(word: &AtomicUsize) -> usize {
        #[cfg(not(loom))]
        {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            word.load(Ordering::Relaxed)
        }
        #[cfg(loom)]
        {
            word.fetch_add(0, Ordering::AcqRel)
        }
    }

    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    mod linux {
        use std::sync::OnceLock;

        fn membarrier(command: libc::c_int) -> libc::c_long {
            // SAFETY: membarrier(2) takes a command, flags and a CPU number, and reads or
            // writes no memory of the caller's.
            #[allow(unsafe_code)]
            unsafe {
                libc::syscall(libc::SYS_membarrier, command, 0 as libc::c_uint, 0 as libc::c_int)
            }
        }

        /// Asked and registered once per process. The registration may wait for an RCU grace
        /// period in the kernel (milliseconds), so pools ask when they are built
        /// (`ThreadPool::build`), not on a worker's first busy batch.
        pub(crate) fn available() -> bool {
            static REGISTERED: OnceLock<bool> = OnceLock::new();
            *REGISTERED.get_or_init(|| {
                let needed = libc::c_long::from(
                    libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED
                        | libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                );
                let offered = membarrier(libc::MEMBARRIER_CMD_QUERY);
                offered >= 0
                    && offered & needed == needed
                    && membarrier(libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
            })
        }

        pub(crate) fn heavy() {
            debug_assert!(available(), "heavy barrier without a registration");
            // Once registered, the command fails only when the kernel cannot allocate its CPU
            // mask (ENOMEM), which passes; try again rather than give the guarantee up.
            while membarrier(libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 {
                std::thread::yield_now();
            }
        }
    }

    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    pub(crate) use linux::{available, heavy};

    /// Whether [`heavy`] works here (asked once, then a load). Always true under loom.
    #[cfg(any(loom, not(all(target_os = "linux", not(miri)))))]
    pub(crate) fn available() -> bool {
        cfg!(loom)
    }

    /// The slow side (see the module docs); call only where [`available`] said true.
    #[cfg(any(loom, not(all(target_os = "linux", not(miri)))))]
    pub(crate) fn heavy() {}
}

use std::time::Duration;

/// A mutex whose `lock` never reports poisoning (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(RawMutex<T>);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(RawMutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A condition variable paired with [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar(RawCondvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        Condvar(RawCondvar::new())
    }

    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits at most `timeout`. Under loom time does not pass, so this is a plain wait there:
    /// models never rely on a timeout to make progress.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        #[cfg(loom)]
        {
            let _ = timeout;
            self.wait(guard)
        }
        #[cfg(not(loom))]
        {
            self.0.wait_timeout(guard, timeout).unwrap_or_else(|p| p.into_inner()).0
        }
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// An unbounded MPMC FIFO queue: crossbeam's `SegQueue` normally, and under loom a mutex over
/// a `VecDeque`, so the model sees the happens-before edge every push/pop pair provides.
#[cfg(not(loom))]
pub(crate) type Queue<T> = crossbeam_queue::SegQueue<T>;

#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Queue<T>(Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> Queue<T> {
    pub(crate) fn new() -> Self {
        Queue(Mutex::new(std::collections::VecDeque::new()))
    }

    pub(crate) fn push(&self, value: T) {
        self.0.lock().push_back(value);
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.0.lock().pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().len()
    }
}

/// A bounded MPMC FIFO queue: crossbeam's `ArrayQueue` normally, and under loom a mutex over
/// a `VecDeque` of at most `capacity` values.
#[cfg(not(loom))]
pub(crate) type BoundedQueue<T> = crossbeam_queue::ArrayQueue<T>;

#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct BoundedQueue<T> {
    values: Mutex<std::collections::VecDeque<T>>,
    capacity: usize,
}

#[cfg(loom)]
impl<T> BoundedQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedQueue { values: Mutex::new(std::collections::VecDeque::new()), capacity }
    }

    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        let mut values = self.values.lock();
        if values.len() == self.capacity {
            return Err(value);
        }
        values.push_back(value);
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.values.lock().pop_front()
    }
}

/// `UnsafeCell` with loom's closure API (`with`/`with_mut`), so loom can check that accesses
/// to the cell never race.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Same layout as `T` (the task queue relies on it, see `pool/queue.rs`).
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A value that one thread at a time may use, taken without waiting: a try-lock whose
/// `try_take` is one compare-and-swap and whose release is a plain store.
///
/// For a value whose exclusion something else already guarantees (a `SequenceBound`'s value,
/// reached only from the tasks of one sequence), so a failed `try_take` means that guarantee
/// broke. `std::sync::Mutex` did the job with a compare-and-swap to lock and a swap to unlock
/// (it must look for sleepers): with two read-modify-writes per task, `SequenceBound`'s posts
/// ran 5-10 % slower than with this (docs/PERFORMANCE.md, step 26). The loom models check it
/// through this facade's atomics and cell.
pub(crate) struct Exclusive<T> {
    taken: atomic::AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through an `ExclusiveGuard`, of which at most one exists at
// a time (`try_take`), and each guard's accesses happen-before the next guard's (its drop
// releases what the next `try_take` acquires). Sharing an `Exclusive` therefore moves the value
// from thread to thread, as a `Mutex` does, which needs `T: Send`.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    pub(crate) fn new(value: T) -> Self {
        Exclusive { taken: atomic::AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// The value, unless someone holds it.
    #[inline]
    pub(crate) fn try_take(&self) -> Option<ExclusiveGuard<'_, T>> {
        // A compare-and-swap rather than a swap: one that fails writes nothing, so a task that
        // finds the value taken (a broken runner) does not take the holder's line away. (It
        // also keeps the loom model clear of loom 0.7's misordering of a store after a swap
        // that read the value before it, tokio-rs/loom#254.)
        self.taken
            .compare_exchange(false, true, atomic::Ordering::Acquire, atomic::Ordering::Relaxed)
            .ok()
            .map(|_| ExclusiveGuard { cell: self })
    }
}

/// The one holder of an [`Exclusive`]'s value; gives it back when dropped (also when a
/// closure given to `with` unwinds).
pub(crate) struct ExclusiveGuard<'a, T> {
    cell: &'a Exclusive<T>,
}

impl<T> ExclusiveGuard<'_, T> {
    /// Runs `f` with the value.
    #[inline]
    pub(crate) fn with<U>(&mut self, f: impl FnOnce(&mut T) -> U) -> U {
        // SAFETY: this guard is the only one in existence (`try_take`), and every access made
        // under an earlier guard happens-before this one (see the `Sync` impl); the reference
        // does not outlive the call.
        #[allow(unsafe_code)]
        self.cell.value.with_mut(|value| f(unsafe { &mut *value }))
    }
}

impl<T> Drop for ExclusiveGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.cell.taken.store(false, atomic::Ordering::Release);
    }
}

/// Exponential backoff for spin-waits. Under loom every step yields to the model scheduler.
#[cfg(not(loom))]
pub(crate) use crossbeam_utils::Backoff;

#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct Backoff;

#[cfg(loom)]
impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff
    }

    pub(crate) fn spin(&self) {
        loom::thread::yield_now();
    }

    pub(crate) fn snooze(&self) {
        loom::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_for_write_changes_nothing_and_never_faults() {
        let line = [7u64; 8];
        super::prefetch_for_write(line.as_ptr());
        assert_eq!(line, [7; 8]);
        // A load from these would fault; a prefetch may not.
        super::prefetch_for_write(std::ptr::null::<u64>());
        super::prefetch_for_write(usize::MAX as *const u64);
        super::prefetch_for_read(line.as_ptr());
        super::prefetch_for_read(std::ptr::null::<u64>());
        super::prefetch_for_read(usize::MAX as *const u64);
        assert_eq!(line, [7; 8]);
    }

    #[cfg(not(loom))]
    #[test]
    fn an_exclusive_value_has_one_holder_at_a_time() {
        let cell = super::Exclusive::new(1);
        let mut first = cell.try_take().expect("free");
        assert!(cell.try_take().is_none(), "taken twice");
        first.with(|v| *v += 1);
        drop(first);
        assert_eq!(cell.try_take().expect("given back").with(|v| *v), 2);
    }

    #[cfg(not(loom))]
    #[test]
    fn an_exclusive_value_is_given_back_when_its_user_panics() {
        let cell = super::Exclusive::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.try_take().expect("free").with(|v| {
                *v = 5;
                panic!("in the closure");
            })
        }));
        assert!(result.is_err());
        assert_eq!(cell.try_take().expect("given back after the panic").with(|v| *v), 5);
    }

    #[cfg(not(loom))]
    #[test]
    fn an_exclusive_value_passes_between_threads_with_every_write() {
        // Each thread adds one, read and written back as two steps, whenever it holds the value:
        // an update lost to a second holder, or to a holder that missed the last write, would
        // leave the sum short.
        let cell = std::sync::Arc::new(super::Exclusive::new(0u64));
        let (threads, adds) = (4, 20_000);
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let cell = cell.clone();
                std::thread::spawn(move || {
                    let mut done = 0;
                    while done < adds {
                        if let Some(mut guard) = cell.try_take() {
                            guard.with(|v| {
                                let read = std::hint::black_box(*v);
                                *v = read + 1;
                            });
                            done += 1;
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(cell.try_take().unwrap().with(|v| *v), threads * adds);
    }
}
