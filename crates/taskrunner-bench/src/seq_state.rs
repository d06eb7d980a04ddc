//! State owned by a sequence, reached only from that sequence's tasks.
//!
//! The value lives on the heap, and every task of one sequence gets a copyable pointer to it. The sequence guarantees that its tasks
//! never overlap and that each one sees the effects of the ones before it, which is exactly
//! what `&mut T` needs. A mutex would add a lock to every task and so would measure something
//! else; an `Arc` per task would add two contended reference-count updates per post.
//!
//! The plain sequence variant uses this cell so it measures the floor of what a sequence costs;
//! the `SequenceBound` variant measures the library's own cell beside it.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::NonNull;

/// Owner of a value that the tasks of one sequence reach through [`SeqRef`].
///
/// Dropping the owner leaks the value on purpose: the owner cannot know whether tasks that
/// hold a [`SeqRef`] are still queued, so only [`SeqOwned::into_inner`], whose caller promises
/// that they are all done, gives the value back.
#[derive(Debug)]
pub(crate) struct SeqOwned<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

/// A copyable pointer to a [`SeqOwned`] value, to move into the tasks of its sequence.
#[derive(Debug)]
pub(crate) struct SeqRef<T> {
    ptr: NonNull<T>,
}

impl<T> Clone for SeqRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SeqRef<T> {}

// SAFETY: a `SeqRef` only lets a task of the owning sequence reach the `T` (see `with`), so the
// value moves between threads exactly as a `T: Send` moved into each task would.
unsafe impl<T: Send> Send for SeqRef<T> {}

// SAFETY: a shared `&SeqRef` only allows copying the pointer (reaching the value needs the
// `unsafe` `with`, under its contract), so sharing it is no more than sending copies.
unsafe impl<T: Send> Sync for SeqRef<T> {}

impl<T> SeqOwned<T> {
    /// Moves `value` to the heap.
    pub(crate) fn new(value: T) -> Self {
        let ptr = NonNull::from(Box::leak(Box::new(value)));
        SeqOwned { ptr, _owns: PhantomData }
    }

    /// A pointer to move into the tasks of the one sequence that owns the value.
    pub(crate) fn handle(&self) -> SeqRef<T> {
        SeqRef { ptr: self.ptr }
    }

    /// Takes the value back.
    ///
    /// # Safety
    ///
    /// Every task that holds a [`SeqRef`] of this owner has finished running (the caller
    /// waited for the sequence to go idle after the last post), and none will run again.
    pub(crate) unsafe fn into_inner(self) -> T {
        // SAFETY: `ptr` came from `Box::leak` in `new` and is given back once (self is
        // consumed); the caller promises no task still uses it.
        *unsafe { Box::from_raw(self.ptr.as_ptr()) }
    }
}

impl<T> SeqRef<T> {
    /// Runs `f` on the value.
    ///
    /// # Safety
    ///
    /// Called only from a task of the one sequence that owns the value, while its
    /// [`SeqOwned`] has not been turned back into the value. The sequence runs its tasks one at
    /// a time with happens-before between them, so no other `&mut T` exists meanwhile.
    #[inline]
    pub(crate) unsafe fn with<R>(self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: exclusivity and liveness as promised by the caller (see above).
        f(unsafe { &mut *self.ptr.as_ptr() })
    }
}
