//! The keydir: the in-memory index from key to the position of its latest
//! record. It sits behind the [`Index`] trait so that other index types can be
//! plugged in: [`OrderedIndex`] (a B-tree, the default) and [`HashIndex`] (a
//! compact hash table: less memory per key and faster point reads, ordered
//! walks sort a copy).

use std::io::{self, Read, Write};

use crate::log::{Change, RecordPos, RecordStart};
use crate::options::IndexType;

mod hash;
mod in_two;
mod ordered;
mod snapshot;
#[cfg(test)]
mod tests;

pub use hash::HashIndex;
/// The hash index's memory ahead of need: whether a warm-up is due, and
/// the warm-up, to run where it delays no writer (see `hash/pages.rs`).
pub(crate) use hash::{warm_up as warm_up_index_memory, warm_up_wanted as index_memory_wanted};
#[cfg(feature = "bench-internals")]
pub use hash::{KeyHasher, SHARDS};
pub use ordered::OrderedIndex;
pub use snapshot::{PendingSnapshot, SnapshotKeys};

/// An in-memory index. Implementations lock internally: every method may be
/// called from many threads at once. Changes (put, remove, replace_if,
/// apply) come from one thread at a time (the engine's writer lock), and
/// each is atomic for readers: a get, or a snapshot, sees all of it or none.
pub trait Index: Send + Sync {
    /// The position of `key`'s latest record.
    fn get(&self, key: &[u8]) -> Option<RecordPos>;
    /// Where the latest record of `key` starts, probably: the answer may be
    /// another key's record (the hash index looks at 24 bits of the key's
    /// hash, not at the key), and `None` means `key` has none. The caller
    /// compares the record's key with `key` and, if they differ, asks
    /// [`Index::get`]. What a get uses: the hash index answers from its
    /// table alone, one cache miss fewer than [`Index::get`]. The default
    /// is [`Index::get`]'s answer.
    fn locate(&self, key: &[u8]) -> Option<RecordStart> {
        self.get(key).map(RecordPos::start)
    }
    /// Starts loading into the cache what a lookup of `key` reads first
    /// (a hash table's home slot and its shard's header), and returns
    /// without waiting for it. The
    /// writer asks before it encodes a record, so that the cache miss of
    /// the index change that follows overlaps that work instead of coming
    /// after it. Changes nothing; the default does nothing.
    fn prefetch(&self, _key: &[u8]) {}
    /// Points `key` at `pos`; returns the position it replaced.
    fn put(&self, key: &[u8], pos: RecordPos) -> Option<RecordPos>;
    /// Forgets `key`; returns the position it had.
    fn remove(&self, key: &[u8]) -> Option<RecordPos>;
    /// Points `key` at `new` only if it points at `expected` now; returns
    /// whether it did. Merge moves entries with it. Writes are serialized
    /// by the engine's writer lock, so a lookup and a put make it atomic.
    fn replace_if(&self, key: &[u8], expected: RecordPos, new: RecordPos) -> bool {
        if self.get(key) == Some(expected) {
            self.put(key, new);
            true
        } else {
            false
        }
    }
    /// Makes room for `additional` more keys, so that the index grows once
    /// instead of step by step while they go in. Only a hint: an index type
    /// may ignore it, and more keys than reserved still go in.
    fn reserve(&self, additional: usize) {
        let _ = additional;
    }
    /// Whether [`Index::reserve`] does anything: if not, a caller need not
    /// work out how much to reserve.
    fn reserves(&self) -> bool {
        false
    }
    /// Gives back the room that [`Index::reserve`] made and no key took
    /// (open reserves for every put of a hint file, and puts that overwrite
    /// a key take none), so that the index is as large as if its keys had
    /// gone in without a reservation; and the memory that loading freed, to
    /// the kernel. Open calls it once, after loading.
    fn shrink_to_fit(&self) {}
    /// How many changes [`Index::apply`] is best given at a time: enough for
    /// what it does once per run to pay off, few enough that the run's
    /// memory (32 bytes a change) stays small next to the index. The
    /// default suits an index that applies change by change: a few thousand
    /// keep a pipeline of prefetches full, and the run in the cache.
    fn run_len(&self) -> usize {
        4096
    }
    /// Applies `changes` in order, as [`Index::put`] and [`Index::remove`]
    /// one by one would, and reports each change with the position it
    /// replaced: one key's changes in their order, different keys' in any.
    /// Atomically: no get and no snapshot sees some of the changes without
    /// the others (a write batch is applied with it). Open loads hint files
    /// with it too: an index type may lock once for the whole run and
    /// overlap the memory accesses of consecutive changes, which one call
    /// per key cannot. Readers of the keys changed wait until the run is
    /// done, and `replaced` must not use the index.
    fn apply(
        &self,
        changes: &[Change<'_>],
        replaced: &mut dyn FnMut(&Change<'_>, Option<RecordPos>),
    );
    /// Number of keys.
    fn len(&self) -> usize;
    /// Whether the index holds no key.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Takes a point-in-time snapshot of the keys that start with `prefix`
    /// (all keys for an empty prefix): a reference to the index's parts as
    /// they are now, in microseconds. The caller makes sure no change is
    /// half applied meanwhile (the engine holds its writer lock), and then
    /// copies the keys with [`PendingSnapshot::collect`] without it: writers
    /// go on, copying a part the snapshot still holds before they change it
    /// (see `snapshot/mod.rs`).
    fn snapshot(&self, prefix: &[u8]) -> Box<dyn PendingSnapshot + '_>;
    /// The index as it is now, to be written later in a form
    /// [`load_saved`] reads back (the keydir file that close and
    /// checkpoints write), while changes may go on. Taken in microseconds,
    /// as a snapshot is, while the caller makes sure no change is half
    /// applied (the engine holds its writer lock); writers then copy a part
    /// still held before they change it, and each part is let go once
    /// written. `None` if this index type has no saved form.
    fn checkpoint(&self) -> Option<SaveLater> {
        None
    }
}

/// An index's saved form, captured by [`Index::checkpoint`], written when
/// called.
pub type SaveLater = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// An index of `index_type` holding what [`Index::checkpoint`] wrote, read from
/// `input`; `None` if the bytes do not describe an index. The hash index
/// saves its tables and arenas as they lie in memory, and loads them back
/// as they are; the ordered index is built from them, in key order.
pub fn load_saved(
    index_type: IndexType,
    input: &mut dyn Read,
) -> io::Result<Option<Box<dyn Index>>> {
    let Some(hash) = HashIndex::load_layout(input)? else {
        return Ok(None);
    };
    Ok(Some(match index_type {
        IndexType::Hash => Box::new(hash),
        IndexType::Ordered => Box::new(OrderedIndex::from_sorted(&hash.snapshot(b"").collect())),
    }))
}

/// The first 16 bytes of `key`, big-endian, zero-padded: a sort key that
/// orders keys as their bytes do, in registers. Where two heads differ, so
/// do the keys, first at that byte (or one key ends there, and a padding 0
/// sorts below any byte it is a prefix of). Equal heads need the full
/// comparison ("a" and "a\0" share one).
fn key_head(key: &[u8]) -> (u64, u64) {
    let mut head = [0u8; 16];
    let n = key.len().min(16);
    head[..n].copy_from_slice(&key[..n]);
    let [a, b, c, d, e, f, g, h, rest @ ..] = head;
    (
        u64::from_be_bytes([a, b, c, d, e, f, g, h]),
        u64::from_be_bytes(rest),
    )
}

/// Asks the CPU to start loading the cache line of `value`, so that a later
/// access finds it there; a hint with no effect on what the program does.
#[inline(always)]
fn prefetch<T>(value: &T) {
    prefetch_address(value as *const T as usize);
}

/// [`prefetch`] of the line at `address`, which need not be mapped: a raw
/// address, never made a reference (a dangling one would be undefined
/// behaviour even unread), for addresses read without a lock that may be
/// stale (`hash/lookahead.rs`).
#[inline(always)]
fn prefetch_address(address: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only moves a cache line: it never faults, whatever
    // the address, reads nothing into the program and writes nothing. SSE,
    // which it needs, is part of every x86-64 CPU.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Gives the heap's free memory back to the kernel. Loading allocates and
/// frees buffers of tens of MiB (an ordered index's rebuilds, hash tables
/// reserved larger than their keys needed), and glibc keeps freed memory
/// resident where it lies below memory still in use: a process would carry
/// it as memory it does not use until it happens to allocate there. Takes
/// a few ms; only glibc has it (elsewhere, nothing).
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages of the heap back to the
    // kernel; no allocation in use changes.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Builds an empty index of the given type.
pub fn new_index(index_type: IndexType) -> Box<dyn Index> {
    match index_type {
        IndexType::Ordered => Box::<OrderedIndex>::default(),
        IndexType::Hash => Box::<HashIndex>::default(),
    }
}
