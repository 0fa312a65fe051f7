//! Where the hash index's tables and key arenas get their memory: in 2 MiB
//! regions the kernel may back with huge pages (transparent huge pages,
//! `madvise`), shared by all shards.
//!
//! Why: a get touches two places of a table of tens of MiB (its slot, then
//! its key's entry), at random. With 4 KiB pages nearly every such access
//! also misses the TLB, and in a virtual machine a TLB miss walks two
//! levels of page tables. Measured with the 1M-key `make bench` on the
//! development machine, glibc's own huge-page heap
//! (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`) made readrandom 1.56x and
//! 1.56x as fast in two runs: this gives the index the same without the
//! process having to ask. A shard's table and arena chunks are far smaller
//! than 2 MiB (a million keys over 1024 shards), so they are carved out of
//! shared regions: each region serves blocks of one power-of-two size, from
//! 4 KiB to 1 MiB. Smaller blocks come from the heap (an index that small
//! gains nothing); 2 MiB and larger get regions of their own.
//!
//! A region whose blocks are all free is given back to the kernel, unless it
//! is the only one of its size with room. Blocks are handed out by one lock
//! for the whole process: the index asks for one when a shard's table
//! grows, its arena needs a chunk, or a shard is copied for a snapshot,
//! not per key; and no system call is made under it (regions are mapped
//! and unmapped after it is let go), so that a thread freeing a region
//! does not hold up the writer's next block.
//!
//! The first touch of a new region faults in a whole huge page, which the
//! kernel zeroes there and then: 15-55 ms on the development machine (a
//! virtual machine whose host hands memory back lazily), measured with
//! `perf` as the cause of most puts over 15 ms in a 10M-key fill once the
//! writeback and prefault hints had left the writer's path. So the pool
//! keeps [`WARM_REGIONS`] regions mapped and faulted in ahead of need,
//! refilled by [`warm_up`] on another thread (the database's I/O thread)
//! whenever [`warm_up_wanted`] says one was taken.

use std::alloc::Layout;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

/// A region: the size of a huge page, and its alignment.
const REGION: usize = 2 << 20;
/// Blocks below this size come from the heap.
const MIN_POOLED: usize = 4 << 10;
/// Block sizes served from shared regions: 4 KiB << 0 ..= 4 KiB << 8 (1 MiB).
const CLASSES: usize = 9;
/// Regions the pool keeps faulted in ahead of need (see the module doc).
const WARM_REGIONS: usize = 2;
/// Set when the pool took a warm region or found none: [`warm_up`] is due.
static WARM_UP_WANTED: AtomicBool = AtomicBool::new(false);

/// Whether a region was taken since the last call (or none was warm): the
/// caller is to have [`warm_up`] run on a thread where it delays nothing.
/// True for one caller only, until a region is taken again.
pub(crate) fn warm_up_wanted() -> bool {
    WARM_UP_WANTED.load(Ordering::Relaxed) && WARM_UP_WANTED.swap(false, Ordering::Relaxed)
}

/// Maps and faults in regions until the pool holds [`WARM_REGIONS`] of
/// them. Does nothing while no index holds a block (nothing would use
/// them), or if the kernel refuses the memory.
pub(crate) fn warm_up() {
    loop {
        {
            let pool = pool().lock();
            if pool.live == 0 || pool.warm.len() >= WARM_REGIONS {
                return;
            }
        }
        let Some(region) = map_regions(REGION) else {
            return;
        };
        fault_in(region, REGION);
        let mut pool = pool().lock();
        if pool.live == 0 || pool.warm.len() >= WARM_REGIONS {
            drop(pool);
            unmap(region.as_ptr() as usize, REGION);
            return;
        }
        pool.warm.push(region.as_ptr() as usize);
    }
}

/// Faults in `len` bytes of fresh memory at `at`, writable, by writing a
/// zero to each page (the first write of a region faults in its whole huge
/// page, where the kernel gives one; the others then fault nothing).
///
/// Not `MADV_POPULATE_WRITE`: that holds the process's memory map lock
/// while the kernel zeroes the huge page (4-8 ms on the development
/// machine), and a thread that maps or unmaps memory meanwhile queues for
/// the lock, with every page fault that needs the lock behind it: in a
/// 10M-key fill (`perf sched`), the writer's page faults waited up to
/// 11 ms behind the warm-up, a hint file's buffer growing (`mremap`) and its
/// own `munmap`. A plain write faults under the lock of this one mapping
/// only (per-VMA locks, Linux 6.4 and later).
fn fault_in(at: NonNull<u8>, len: usize) {
    for offset in (0..len).step_by(4096) {
        // SAFETY: inside the fresh private mapping of `len` bytes at `at`,
        // which nothing else uses yet; it reads as zeros, so a zero written
        // changes nothing.
        unsafe { at.as_ptr().add(offset).write_volatile(0) };
    }
}

/// Values that a block of zero bytes holds validly, that need no drop, and
/// that may be copied byte for byte.
///
/// # Safety
/// Implement it only for types for which all of that holds.
pub(crate) unsafe trait Plain: Copy {}

// SAFETY: every bit pattern is a u8; no drop.
unsafe impl Plain for u8 {}

/// A buffer of `T` of fixed room, the first `len` of them in use: what a
/// `Vec` with a capacity it never outgrows would be, in memory from the
/// regions above.
pub(crate) struct Buf<T: Plain> {
    block: Block,
    len: usize,
    _of: PhantomData<T>,
}

// SAFETY: a Buf owns its block and its values (plain data) outright, like
// a Vec<T>; the shared regions' bookkeeping is behind a lock.
unsafe impl<T: Plain + Send> Send for Buf<T> {}
// SAFETY: shared access only reads; as for Vec<T>.
unsafe impl<T: Plain + Sync> Sync for Buf<T> {}

impl<T: Plain> Buf<T> {
    /// An empty buffer with room for at least `room` values.
    pub(crate) fn with_capacity(room: usize) -> Buf<T> {
        Buf {
            block: Block::new(room.max(1) * std::mem::size_of::<T>()),
            len: 0,
            _of: PhantomData,
        }
    }

    /// `len` values of all-zero bytes.
    pub(crate) fn zeroed(len: usize) -> Buf<T> {
        let mut buf = Buf::with_capacity(len);
        let bytes = len * std::mem::size_of::<T>();
        // SAFETY: the block holds at least `bytes` bytes, owned by `buf`.
        unsafe { std::ptr::write_bytes(buf.block.ptr.as_ptr(), 0, bytes) };
        buf.len = len;
        buf
    }

    /// How many values it has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.block.size / std::mem::size_of::<T>()
    }

    /// Appends `values`, which must fit in the room left.
    ///
    /// # Panics
    /// If they do not fit (the callers check the room first).
    pub(crate) fn extend_from_slice(&mut self, values: &[T]) {
        assert!(
            values.len() <= self.capacity() - self.len,
            "a buffer of the keydir overflowed"
        );
        // SAFETY: the destination lies inside the block (checked just
        // above) and does not overlap `values`, which the caller owns.
        unsafe {
            let dst = self.block.ptr.as_ptr().cast::<T>().add(self.len);
            std::ptr::copy_nonoverlapping(values.as_ptr(), dst, values.len());
        }
        self.len += values.len();
    }

    /// Appends `n` values of all-zero bytes, which must fit.
    pub(crate) fn extend_zeroed(&mut self, n: usize) -> &mut [T] {
        assert!(
            n <= self.capacity() - self.len,
            "a buffer of the keydir overflowed"
        );
        let start = self.len;
        // SAFETY: inside the block, as checked; zero bytes are a valid T.
        unsafe {
            let dst = self.block.ptr.as_ptr().cast::<T>().add(start);
            std::ptr::write_bytes(dst, 0, n);
        }
        self.len += n;
        &mut self[start..]
    }
}

impl<T: Plain> std::ops::Deref for Buf<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` values were written (zeroed or copied in)
        // and lie inside the block, which is aligned for T (at least 64).
        unsafe { std::slice::from_raw_parts(self.block.ptr.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Plain> std::ops::DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for deref; `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.block.ptr.as_ptr().cast::<T>(), self.len) }
    }
}

/// A copy with the same room, so that what fits in the original fits in it.
impl<T: Plain> Clone for Buf<T> {
    fn clone(&self) -> Self {
        let mut copy = Buf::with_capacity(self.capacity());
        copy.extend_from_slice(self);
        copy
    }
}

impl<T: Plain> Default for Buf<T> {
    fn default() -> Self {
        Buf::with_capacity(1)
    }
}

/// A block of memory of a power-of-two size, aligned to at least 64 bytes
/// (a cache line: a table's groups of slots lie on whole lines, `table.rs`):
/// from the heap, a shared region, or regions of its own (see the module
/// documentation).
struct Block {
    ptr: NonNull<u8>,
    size: usize,
    from: Source,
}

/// Where a block's memory came from, and so where it goes back.
#[derive(Clone, Copy)]
enum Source {
    Heap,
    Shared,
    Own,
}

impl Block {
    fn new(bytes: usize) -> Block {
        let size = bytes.next_power_of_two().max(16);
        let (ptr, from) = if size < MIN_POOLED {
            (heap_alloc(size), Source::Heap)
        } else if size >= REGION {
            match map_regions(size) {
                Some(ptr) => (ptr, Source::Own),
                None => (heap_alloc(size), Source::Heap),
            }
        } else {
            // A region is mapped outside the pool's lock, which every
            // thread's allocations and frees take (the writer's copies of
            // shards among them): a system call under it makes them wait.
            let class = class_of(size);
            let pooled = pool().lock().alloc(class);
            match pooled.or_else(|| {
                let region = map_regions(REGION)?;
                Some(pool().lock().alloc_in(class, region))
            }) {
                Some(ptr) => (ptr, Source::Shared),
                None => (heap_alloc(size), Source::Heap),
            }
        };
        Block { ptr, size, from }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        match self.from {
            Source::Heap => heap_free(self.ptr, self.size),
            Source::Own => unmap(self.ptr.as_ptr() as usize, self.size),
            Source::Shared => {
                let gone = pool()
                    .lock()
                    .free(self.ptr.as_ptr() as usize, class_of(self.size));
                // After the lock is let go (see Block::new).
                for base in gone {
                    unmap(base, REGION);
                }
            }
        }
    }
}

fn class_of(size: usize) -> usize {
    (size / MIN_POOLED).trailing_zeros() as usize
}

fn heap_layout(size: usize) -> Layout {
    // Sizes are powers of two below 2^63: a valid layout.
    Layout::from_size_align(size, 64).unwrap_or(Layout::new::<[u64; 8]>())
}

fn heap_alloc(size: usize) -> NonNull<u8> {
    let layout = heap_layout(size);
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { std::alloc::alloc(layout) };
    NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

fn heap_free(ptr: NonNull<u8>, size: usize) {
    // SAFETY: `ptr` came from heap_alloc with the same size, hence layout.
    unsafe { std::alloc::dealloc(ptr.as_ptr(), heap_layout(size)) }
}

/// Maps `size` bytes (a multiple of REGION) aligned to REGION, asking for
/// huge pages; `None` if the kernel refuses.
fn map_regions(size: usize) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing; the parts outside the aligned range are unmapped again, and
    // the rest belongs to the caller alone.
    unsafe {
        let len = size + REGION;
        let raw = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if raw == libc::MAP_FAILED {
            return None;
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(REGION);
        if aligned > start {
            libc::munmap(raw, aligned - start);
        }
        let end = aligned + size;
        if start + len > end {
            libc::munmap(end as *mut libc::c_void, start + len - end);
        }
        // Only a hint: without huge pages the memory works all the same.
        libc::madvise(aligned as *mut libc::c_void, size, libc::MADV_HUGEPAGE);
        NonNull::new(aligned as *mut u8)
    }
}

fn unmap(addr: usize, size: usize) {
    // SAFETY: the range was mapped by map_regions and nothing uses it any
    // more (its owner is being dropped).
    unsafe {
        libc::munmap(addr as *mut libc::c_void, size);
    }
}

/// The shared regions of the process.
fn pool() -> &'static Mutex<Pool> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(Pool::default()))
}

#[derive(Default)]
struct Pool {
    /// Each shared region by its address.
    regions: HashMap<usize, Region>,
    /// Per block size, the regions that had a free block when last seen.
    with_room: [Vec<usize>; CLASSES],
    /// Blocks handed out and not yet taken back. At 0 (the last index of
    /// the process dropped: every database closed) the pool gives back
    /// everything, regions and bookkeeping, so that a program that closes
    /// its databases holds nothing of the library's (and valgrind finds no
    /// block reachable only from inside a table).
    live: usize,
    /// Regions mapped and faulted in, not yet given to a block size (see
    /// [`warm_up`]).
    warm: Vec<usize>,
}

struct Region {
    /// Indices of the free blocks.
    free: Vec<u32>,
    /// Whether it is in `with_room` of its class.
    listed: bool,
}

impl Pool {
    fn alloc(&mut self, class: usize) -> Option<NonNull<u8>> {
        let size = MIN_POOLED << class;
        while let Some(&base) = self.with_room[class].last() {
            let Some(region) = self.regions.get_mut(&base) else {
                self.with_room[class].pop();
                continue;
            };
            let Some(i) = region.free.pop() else {
                region.listed = false;
                self.with_room[class].pop();
                continue;
            };
            if region.free.is_empty() {
                region.listed = false;
                self.with_room[class].pop();
            }
            self.live += 1;
            return NonNull::new((base + i as usize * size) as *mut u8);
        }
        WARM_UP_WANTED.store(true, Ordering::Relaxed);
        let region = NonNull::new(self.warm.pop()? as *mut u8)?;
        Some(self.alloc_in(class, region))
    }

    /// The first block of `class` in `region` (a warm one, or one just
    /// mapped), which becomes a region of that class.
    fn alloc_in(&mut self, class: usize, region: NonNull<u8>) -> NonNull<u8> {
        let base = region.as_ptr() as usize;
        let size = MIN_POOLED << class;
        self.live += 1;
        let blocks = (REGION / size) as u32;
        self.regions.insert(
            base,
            Region {
                free: (1..blocks).rev().collect(),
                listed: blocks > 1,
            },
        );
        if blocks > 1 {
            self.with_room[class].push(base);
        }
        region
    }

    /// Takes back the block at `addr`, which `alloc(class)` gave. Returns
    /// the regions that no longer serve anything, for the caller to unmap
    /// once it has let go of the pool's lock.
    #[must_use]
    fn free(&mut self, addr: usize, class: usize) -> Vec<usize> {
        let base = addr - addr % REGION;
        let size = MIN_POOLED << class;
        let Some(region) = self.regions.get_mut(&base) else {
            return Vec::new();
        };
        region.free.push(((addr - base) / size) as u32);
        self.live -= 1;
        if self.live == 0 {
            let gone = self.regions.keys().chain(&self.warm).copied().collect();
            *self = Pool::default();
            return gone;
        }
        let all_free = region.free.len() == REGION / size;
        // Another region of this size with room: this one can go.
        let others = self.with_room[class].iter().any(|&b| b != base);
        if all_free && others {
            self.regions.remove(&base);
            self.with_room[class].retain(|&b| b != base);
            return vec![base];
        }
        if !region.listed {
            region.listed = true;
            self.with_room[class].push(base);
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_of_every_size_keep_what_is_written_and_copies_are_apart() {
        let mut bufs: Vec<Buf<u8>> = Vec::new();
        for shift in 0..23 {
            let room = 1usize << shift;
            let mut b = Buf::<u8>::with_capacity(room);
            assert!(b.capacity() >= room);
            let data: Vec<u8> = (0..room).map(|i| (i * 7 + shift) as u8).collect();
            b.extend_from_slice(&data);
            assert_eq!(&b[..], &data[..]);
            let mut c = b.clone();
            assert_eq!(c.capacity(), b.capacity());
            c[0] ^= 0xFF;
            assert_ne!(b[0], c[0], "a copy is its own memory");
            bufs.push(b);
            bufs.push(c);
        }
        // Many blocks of one size: several regions, freed in any order.
        let many: Vec<Buf<u8>> = (0..2000)
            .map(|i| {
                let mut b = Buf::with_capacity(8 << 10);
                b.extend_from_slice(&[i as u8; 100]);
                b
            })
            .collect();
        for (i, b) in many.iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8));
        }
        drop(many);
        let z = Buf::<u8>::zeroed(64 << 10);
        assert!(z.iter().all(|&x| x == 0));
    }

    /// A pool of its own, not the process's: other tests use that one at
    /// the same time.
    #[test]
    fn a_new_region_is_a_warm_one_if_any_and_the_last_free_gives_back_the_rest() {
        let mut pool = Pool::default();
        for _ in 0..2 {
            let region = map_regions(REGION).unwrap();
            fault_in(region, REGION);
            pool.warm.push(region.as_ptr() as usize);
        }
        let warm_at_start = pool.warm.clone();
        let last_warm = *pool.warm.last().unwrap();
        let block = pool.alloc(8).unwrap();
        assert_eq!(block.as_ptr() as usize, last_warm);
        assert_eq!(pool.warm.len(), 1);
        // SAFETY: the block is 1 MiB of the region, handed to this test.
        unsafe { block.as_ptr().write_bytes(0xAB, 1 << 20) };
        let mut gone = pool.free(block.as_ptr() as usize, 8);
        assert!(pool.regions.is_empty() && pool.warm.is_empty() && pool.live == 0);
        gone.sort_unstable();
        let mut mapped = warm_at_start;
        mapped.sort_unstable();
        assert_eq!(gone, mapped, "both regions are given back to be unmapped");
        for base in gone {
            unmap(base, REGION);
        }
    }

    #[test]
    #[should_panic(expected = "overflowed")]
    fn a_buffer_never_grows_past_its_room() {
        let mut b = Buf::<u8>::with_capacity(4096);
        b.extend_from_slice(&[1; 4096]);
        b.extend_from_slice(&[1]);
    }
}
