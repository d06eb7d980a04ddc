//! `SmallFn`: a `FnOnce() + Send` stored inline when it captures at most 48 bytes.
//!
//! A boxed closure costs one allocation on the posting thread and one free on the worker;
//! measured on the benchmark workload, malloc and free were about half of a post's cost (glibc
//! frees across threads contend on arena locks). Small closures, the common case, are written
//! into the task itself instead, so they travel through the queues without touching the heap;
//! larger (or over-aligned) ones are boxed as before.
//!
//! The `unsafe` here is confined to three facts, each checked where it is used: the storage is
//! big and aligned enough for `F` (`fits::<F>()`), the storage holds a live `F` (or `Box<F>`)
//! from `new` until exactly one of `call` or `drop` consumes it, and the vtable matches what
//! `new` wrote.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::ptr;

/// Bytes a closure may capture and still be stored inline.
pub(crate) const INLINE_BYTES: usize = 48;

#[repr(C, align(8))]
struct Storage([MaybeUninit<u8>; INLINE_BYTES]);

struct VTable {
    /// Moves the closure out of the storage and calls it.
    call: unsafe fn(*mut Storage),
    /// Drops the closure in place.
    drop: unsafe fn(*mut Storage),
}

/// A type-erased `FnOnce() + Send + 'static`, inline when small. `repr(C)`: the vtable
/// pointer, then the storage (see [`VTABLE_THEN_STORAGE`]).
#[repr(C)]
pub(crate) struct SmallFn {
    vtable: &'static VTable,
    storage: Storage,
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

/// `SmallFn` is its vtable pointer followed by `INLINE_BYTES` of storage, nothing else: what
/// `into_raw` splits it into, in that order (the task queue reads tasks back whole, see
/// `task.rs`).
pub(crate) const VTABLE_THEN_STORAGE: bool = std::mem::offset_of!(SmallFn, vtable) == 0
    && std::mem::offset_of!(SmallFn, storage) == size_of::<*mut ()>()
    && size_of::<SmallFn>() == size_of::<*mut ()>() + INLINE_BYTES;

const fn fits<F>() -> bool {
    size_of::<F>() <= INLINE_BYTES && align_of::<F>() <= align_of::<Storage>()
}

impl SmallFn {
    #[inline]
    pub(crate) fn new<F>(f: F) -> SmallFn
    where
        F: FnOnce() + Send + 'static,
    {
        let mut storage = Storage([MaybeUninit::uninit(); INLINE_BYTES]);
        let vtable: &'static VTable = if fits::<F>() {
            // SAFETY: `fits::<F>()`: the storage is large and aligned enough for an `F`.
            unsafe { ptr::write(storage.0.as_mut_ptr().cast::<F>(), f) };
            const { &VTable { call: call_inline::<F>, drop: drop_inline::<F> } }
        } else {
            // SAFETY: a `Box<F>` is one pointer, which always fits the 8-aligned storage.
            unsafe { ptr::write(storage.0.as_mut_ptr().cast::<Box<F>>(), Box::new(f)) };
            const { &VTable { call: call_boxed::<F>, drop: drop_boxed::<F> } }
        };
        SmallFn { vtable, storage, _marker: PhantomData }
    }

    /// Whether a closure of type `F` is stored inline (no heap allocation).
    #[cfg(all(test, not(loom)))]
    pub(crate) const fn stores_inline<F>() -> bool {
        fits::<F>()
    }

    /// Splits the closure into its vtable pointer (never null) and its inline bytes, so a
    /// queue can store the pointer in an atomic word of its own and use it as the slot's
    /// "written" flag. The closure is not dropped: `from_raw` must put it back together.
    #[inline]
    pub(crate) fn into_raw(self) -> (*mut (), [MaybeUninit<u8>; INLINE_BYTES]) {
        let this = ManuallyDrop::new(self);
        (this.vtable as *const VTable as *mut (), this.storage.0)
    }

    /// Reassembles a closure split by `into_raw`.
    ///
    /// # Safety
    /// `vtable` and `bytes` must come from one `into_raw` call, and be reassembled once.
    // Only the loom build reassembles tasks from their halves; the queue otherwise reads a
    // written slot back as a whole `Task` (pool/queue.rs).
    #[cfg_attr(not(loom), allow(dead_code))]
    #[inline]
    pub(crate) unsafe fn from_raw(vtable: *mut (), bytes: [MaybeUninit<u8>; INLINE_BYTES]) -> Self {
        // SAFETY: per the contract, `vtable` is the `&'static VTable` that `into_raw` gave out,
        // and `bytes` holds the closure it describes (moved bytewise, which any Rust value
        // allows; the storage keeps its 8-byte alignment).
        let vtable = unsafe { &*(vtable as *const VTable) };
        SmallFn { vtable, storage: Storage(bytes), _marker: PhantomData }
    }

    /// Calls the closure, consuming it.
    #[inline]
    pub(crate) fn call(self) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: the storage holds the live closure `new` wrote, matching the vtable; `this`
        // is never dropped, so the closure is consumed exactly once, here.
        unsafe { (this.vtable.call)(&mut this.storage) }
    }
}

impl Drop for SmallFn {
    fn drop(&mut self) {
        // SAFETY: not called yet (`call` forgets `self`), so the storage still holds the closure
        // `new` wrote, matching the vtable.
        unsafe { (self.vtable.drop)(&mut self.storage) }
    }
}

unsafe fn call_inline<F: FnOnce()>(storage: *mut Storage) {
    // SAFETY: the caller guarantees the storage holds a live, suitably aligned `F`; reading it
    // out moves ownership here, and the storage is not used again.
    let f = unsafe { ptr::read(storage.cast::<F>()) };
    f()
}

unsafe fn drop_inline<F>(storage: *mut Storage) {
    // SAFETY: as in `call_inline`; the `F` is dropped in place, once.
    unsafe { ptr::drop_in_place(storage.cast::<F>()) }
}

unsafe fn call_boxed<F: FnOnce()>(storage: *mut Storage) {
    // SAFETY: the caller guarantees the storage holds a live `Box<F>`; reading it out moves
    // ownership here, and the storage is not used again.
    let f = unsafe { ptr::read(storage.cast::<Box<F>>()) };
    f()
}

unsafe fn drop_boxed<F>(storage: *mut Storage) {
    // SAFETY: as in `call_boxed`; the box is dropped in place, once.
    unsafe { ptr::drop_in_place(storage.cast::<Box<F>>()) }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct CountDrops(Arc<AtomicUsize>);

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
            SmallFn::stores_inline::<F>()
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
            let f = SmallFn::new(move || {
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
        drop(SmallFn::new(move || drop(small)));
        let big = (CountDrops(drops.clone()), [0u8; 100]);
        drop(SmallFn::new(move || drop(big)));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn panicking_call_drops_captures_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = CountDrops(drops.clone());
        let f = SmallFn::new(move || {
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
        let f = SmallFn::new(move || {
            assert_eq!(&value as *const Aligned as usize % 64, 0);
            tx.send(value.0).unwrap();
        });
        std::thread::spawn(move || f.call()).join().unwrap();
        assert_eq!(rx.recv().unwrap(), 99);
    }
}
