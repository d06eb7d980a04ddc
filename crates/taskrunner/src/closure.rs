//! `SmallFn`: a `FnOnce() + Send` stored inline when it captures at most 48 bytes, with the
//! place it was posted from.
//!
//! A boxed closure costs one allocation on the posting thread and one free on the worker;
//! measured on the benchmark workload, malloc and free were about half of a post's cost (glibc
//! frees across threads contend on arena locks). Small closures, the common case, are written
//! into the task itself instead, so they travel through the queues without touching the heap;
//! larger (or over-aligned) ones are boxed as before.
//!
//! What a `SmallFn` holds is a [`Job`]: a closure (through [`Closure`]), or one of the
//! library's own task types that needs its posted-from location when it runs or is dropped
//! unrun (a `post_and_reply` task posts its reply from there, `reply.rs`). The location is
//! handed to the job's `run` and `discard` rather than captured, so such a job is 8 bytes
//! smaller and fits inline more often.
//!
//! The `unsafe` here is confined to three facts, each checked where it is used: the storage is
//! big and aligned enough for `J` (`fits::<J>()`), the storage holds a live `J` (or `Box<J>`)
//! from `new` until exactly one of `call` or `drop` consumes it, and the vtable matches what
//! `new` wrote.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::panic::Location;
use std::ptr;

/// Where a task was posted from.
pub(crate) type PostedFrom = &'static Location<'static>;

/// What a task runs, once: either [`run`](Job::run) or, if the task is dropped unrun,
/// [`discard`](Job::discard). Both are given the task's posted-from location.
pub(crate) trait Job: Send + 'static {
    /// Runs the job.
    fn run(self, posted_from: PostedFrom);

    /// Disposes of the job unrun. The default drops it.
    fn discard(self, posted_from: PostedFrom)
    where
        Self: Sized,
    {
        let _ = posted_from;
        drop(self);
    }
}

/// A closure as a [`Job`]: runs it, and drops it when discarded.
pub(crate) struct Closure<F>(pub(crate) F);

impl<F: FnOnce() + Send + 'static> Job for Closure<F> {
    #[inline]
    fn run(self, _posted_from: PostedFrom) {
        (self.0)()
    }
}

/// Bytes a closure may capture and still be stored inline.
pub(crate) const INLINE_BYTES: usize = 48;

#[repr(C, align(8))]
struct Storage([MaybeUninit<u8>; INLINE_BYTES]);

struct VTable {
    /// Moves the job out of the storage and runs it.
    call: unsafe fn(*mut Storage, PostedFrom),
    /// Moves the job out of the storage and discards it.
    drop: unsafe fn(*mut Storage, PostedFrom),
}

/// A type-erased [`Job`], inline when small, and where it was posted from. `repr(C)`: the
/// vtable pointer, the storage, the location (see [`VTABLE_STORAGE_LOCATION`]).
#[repr(C)]
pub(crate) struct SmallFn {
    vtable: &'static VTable,
    storage: Storage,
    location: PostedFrom,
    /// Not inferred from the storage: `Send` and `Sync` are stated by the impls below.
    _marker: PhantomData<*mut ()>,
}

// SAFETY: `new` only accepts `F: Send`, and `SmallFn` owns its closure, so sending it sends
// the closure.
unsafe impl Send for SmallFn {}

// SAFETY: no method takes `&self` and touches the closure (only `call(self)` and `Drop`, which
// have ownership), so sharing a `&SmallFn` between threads shares nothing of `F`. This lets a
// `Task`, and so a `PostError`, be `Sync`, as errors passed through `?` into
// `Box<dyn Error + Send + Sync>` must be.
unsafe impl Sync for SmallFn {}

/// `SmallFn` is its vtable pointer, `INLINE_BYTES` of storage and the location, nothing else,
/// in that order: a queue slot stores the pointer apart from the rest (`Task::move_into`) and
/// reads the task back whole (see `task.rs`).
pub(crate) const VTABLE_STORAGE_LOCATION: bool = std::mem::offset_of!(SmallFn, vtable) == 0
    && std::mem::offset_of!(SmallFn, storage) == size_of::<*mut ()>()
    && std::mem::offset_of!(SmallFn, location) == size_of::<*mut ()>() + INLINE_BYTES
    && size_of::<SmallFn>() == 2 * size_of::<*mut ()>() + INLINE_BYTES;

/// Whether a `J` is stored inline (no heap allocation).
pub(crate) const fn fits<J>() -> bool {
    size_of::<J>() <= INLINE_BYTES && align_of::<J>() <= align_of::<Storage>()
}

impl SmallFn {
    #[inline]
    pub(crate) fn new<J: Job>(job: J, location: PostedFrom) -> SmallFn {
        let mut storage = Storage([MaybeUninit::uninit(); INLINE_BYTES]);
        let vtable: &'static VTable = if fits::<J>() {
            // SAFETY: `fits::<J>()`: the storage is large and aligned enough for a `J`.
            unsafe { ptr::write(storage.0.as_mut_ptr().cast::<J>(), job) };
            const { &VTable { call: call_inline::<J>, drop: drop_inline::<J> } }
        } else {
            // SAFETY: a `Box<J>` is one pointer, which always fits the 8-aligned storage.
            unsafe { ptr::write(storage.0.as_mut_ptr().cast::<Box<J>>(), Box::new(job)) };
            const { &VTable { call: call_boxed::<J>, drop: drop_boxed::<J> } }
        };
        SmallFn { vtable, storage, location, _marker: PhantomData }
    }

    /// Where the job was posted from.
    #[inline]
    pub(crate) fn location(&self) -> PostedFrom {
        self.location
    }

    /// Reassembles a closure from its vtable pointer, inline bytes and location, as a queue
    /// slot holds them (`Task::move_into`).
    ///
    /// # Safety
    /// `vtable`, `bytes` and `location` must be the parts of one `SmallFn` that was moved out
    /// bytewise, and be reassembled once.
    // Only the loom build reassembles tasks from their halves; the queue otherwise reads a
    // written slot back as a whole `Task` (pool/queue.rs).
    #[cfg_attr(not(loom), allow(dead_code))]
    #[inline]
    pub(crate) unsafe fn from_raw(
        vtable: *mut (),
        bytes: [MaybeUninit<u8>; INLINE_BYTES],
        location: PostedFrom,
    ) -> Self {
        // SAFETY: per the contract, `vtable` is the `&'static VTable` the `SmallFn` held,
        // and `bytes` holds the job it describes (moved bytewise, which any Rust value allows;
        // the storage keeps its 8-byte alignment).
        let vtable = unsafe { &*(vtable as *const VTable) };
        SmallFn { vtable, storage: Storage(bytes), location, _marker: PhantomData }
    }

    /// Runs the job where it lies (in a queue slot, say), consuming it: only the job itself is
    /// moved, into the call, not the 64-byte task around it.
    ///
    /// # Safety
    /// `this` points to a live `SmallFn` that is neither used nor dropped afterwards (its bytes
    /// may be reused or forgotten).
    #[inline]
    pub(crate) unsafe fn call_in_place(this: *mut SmallFn) {
        // SAFETY: per the contract the `SmallFn` is live, so its storage holds the job `new`
        // wrote, matching the vtable, and the job is consumed exactly once, here.
        unsafe { ((*this).vtable.call)(ptr::addr_of_mut!((*this).storage), (*this).location) }
    }

    /// Runs the job, consuming it.
    #[inline]
    pub(crate) fn call(self) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is live and never dropped, so the job is consumed exactly once, here.
        unsafe { SmallFn::call_in_place(&mut *this) }
    }

    /// Moves the job out, unrun, as the `J` it was built from.
    ///
    /// # Safety
    /// `self` was built by `SmallFn::new::<J>` (with this very `J`).
    pub(crate) unsafe fn into_job<J: Job>(self) -> J {
        let mut this = ManuallyDrop::new(self);
        let storage = this.storage.0.as_mut_ptr();
        // SAFETY: per the contract the storage holds what `new::<J>` wrote: a `J` if it fits,
        // else a `Box<J>`. `this` is never dropped, so the job is moved out exactly once.
        unsafe {
            if fits::<J>() {
                ptr::read(storage.cast::<J>())
            } else {
                *ptr::read(storage.cast::<Box<J>>())
            }
        }
    }
}

impl Drop for SmallFn {
    fn drop(&mut self) {
        // SAFETY: not called yet (`call` forgets `self`), so the storage still holds the job
        // `new` wrote, matching the vtable.
        unsafe { (self.vtable.drop)(&mut self.storage, self.location) }
    }
}

unsafe fn call_inline<J: Job>(storage: *mut Storage, location: PostedFrom) {
    // SAFETY: the caller guarantees the storage holds a live, suitably aligned `J`; reading it
    // out moves ownership here, and the storage is not used again.
    let job = unsafe { ptr::read(storage.cast::<J>()) };
    job.run(location)
}

unsafe fn drop_inline<J: Job>(storage: *mut Storage, location: PostedFrom) {
    // SAFETY: as in `call_inline`.
    let job = unsafe { ptr::read(storage.cast::<J>()) };
    job.discard(location)
}

unsafe fn call_boxed<J: Job>(storage: *mut Storage, location: PostedFrom) {
    // SAFETY: the caller guarantees the storage holds a live `Box<J>`; reading it out moves
    // ownership here, and the storage is not used again.
    let job = unsafe { ptr::read(storage.cast::<Box<J>>()) };
    (*job).run(location)
}

unsafe fn drop_boxed<J: Job>(storage: *mut Storage, location: PostedFrom) {
    // SAFETY: as in `call_boxed`.
    let job = unsafe { ptr::read(storage.cast::<Box<J>>()) };
    (*job).discard(location)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct CountDrops(Arc<AtomicUsize>);

    fn small_fn<F: FnOnce() + Send + 'static>(f: F) -> SmallFn {
        SmallFn::new(Closure(f), Location::caller())
    }

    impl Drop for CountDrops {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn small_closures_are_inline_and_large_or_over_aligned_ones_boxed() {
        let small = [0u8; 40];
        let large = [0u8; 49];
        let aligned = 0u128;
        let _ = (small, large, aligned);
        fn inline<F: FnOnce()>(_: &F) -> bool {
            fits::<Closure<F>>()
        }
        assert!(inline(&move || {
            std::hint::black_box(small);
        }));
        assert!(!inline(&move || {
            std::hint::black_box(large);
        }));
        assert!(!inline(&move || {
            std::hint::black_box(aligned);
        }));
        assert!(inline(&|| {}));
    }

    #[test]
    fn call_runs_once_and_drops_captures_once() {
        for size in [8usize, 200] {
            let drops = Arc::new(AtomicUsize::new(0));
            let calls = Arc::new(AtomicUsize::new(0));
            let guard = CountDrops(drops.clone());
            let padding = vec![0u8; size].into_boxed_slice();
            let c = calls.clone();
            let big = [7u8; 64];
            let f = small_fn(move || {
                let _guard = &guard;
                let _ = (&padding, if size > 100 { big[0] } else { 0 });
                c.fetch_add(1, Ordering::SeqCst);
            });
            f.call();
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn dropping_uncalled_drops_captures_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let small = CountDrops(drops.clone());
        drop(small_fn(move || drop(small)));
        let big = (CountDrops(drops.clone()), [0u8; 100]);
        drop(small_fn(move || drop(big)));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn panicking_call_drops_captures_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = CountDrops(drops.clone());
        let f = small_fn(move || {
            let _guard = guard;
            panic!("inside");
        });
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.call())).is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn over_aligned_values_survive_the_trip() {
        #[repr(align(64))]
        struct Aligned(u64);
        let value = Aligned(99);
        let (tx, rx) = std::sync::mpsc::channel();
        let f = small_fn(move || {
            assert_eq!(&value as *const Aligned as usize % 64, 0);
            tx.send(value.0).unwrap();
        });
        std::thread::spawn(move || f.call()).join().unwrap();
        assert_eq!(rx.recv().unwrap(), 99);
    }

    /// A job that reports which of its two ends ran, and with which location.
    struct Reports(std::sync::mpsc::Sender<(&'static str, PostedFrom)>);

    impl Job for Reports {
        fn run(self, posted_from: PostedFrom) {
            self.0.send(("run", posted_from)).unwrap();
        }

        fn discard(self, posted_from: PostedFrom) {
            self.0.send(("discard", posted_from)).unwrap();
        }
    }

    /// Too large for the inline storage.
    struct Boxed(Reports, #[allow(dead_code)] [u8; 64]);

    impl Job for Boxed {
        fn run(self, posted_from: PostedFrom) {
            self.0.run(posted_from)
        }

        fn discard(self, posted_from: PostedFrom) {
            self.0.discard(posted_from)
        }
    }

    #[test]
    fn a_job_gets_its_location_when_run_and_when_discarded() {
        let (tx, rx) = std::sync::mpsc::channel();
        let here = Location::caller();
        let run = SmallFn::new(Reports(tx.clone()), here);
        let dropped = SmallFn::new(Reports(tx.clone()), here);
        let big = SmallFn::new(Boxed(Reports(tx), [0; 64]), here);
        run.call();
        drop(dropped);
        assert!(!fits::<Boxed>());
        drop(big);
        let seen: Vec<_> = rx.try_iter().collect();
        assert_eq!(seen, vec![("run", here), ("discard", here), ("discard", here)]);
    }
}
