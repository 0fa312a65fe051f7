//! The hash index's own properties: growth, shrinking, compaction,
//! reservations, tag collisions and its memory per key.

use super::shard::{capacity_for, MIN_GARBAGE};
use super::table::tag;
use super::*;

/// A position whose size fits an entry's 2 bytes (below 2^15).
fn pos(n: u32) -> RecordPos {
    RecordPos {
        file_id: n,
        offset: !n,
        size: (n.wrapping_mul(2_654_435_761) >> 17) | 1,
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:013}").into_bytes()
}

#[test]
fn growth_across_many_resizes_keeps_every_key() {
    let index = HashIndex::with_shards(1);
    let n = 200_000u32;
    let mut capacities = vec![];
    for i in 0..n {
        assert_eq!(index.put(&key(i), pos(i)), None);
        let slots = index.stats().slots;
        if capacities.last() != Some(&slots) {
            capacities.push(slots);
            // Right after each resize, every key so far is still there.
            for j in (0..=i).step_by(97).chain([i]) {
                assert_eq!(index.get(&key(j)), Some(pos(j)), "key {j} at {slots} slots");
            }
        }
    }
    // 16, 32, ..., 2^19 (200,000 keys fill 2^18 slots past 3/4):
    // sixteen tables, each double the last.
    assert_eq!(capacities.len(), 16, "{capacities:?}");
    assert!(
        capacities.windows(2).all(|w| w[1] == 2 * w[0]),
        "{capacities:?}"
    );
    assert_eq!(index.len(), n as usize);
    for i in 0..n {
        assert_eq!(index.get(&key(i)), Some(pos(i)));
    }
    assert_eq!(index.get(&key(n)), None);
}

#[test]
fn removal_shrinks_the_table_and_reinsertion_grows_it_back() {
    let index = HashIndex::with_shards(1);
    let n = 50_000u32;
    for i in 0..n {
        index.put(&key(i), pos(i));
    }
    let full = index.stats().slots;
    // Remove all but every 20th key, in an order unrelated to the table's.
    for i in (0..n).rev().filter(|i| i % 20 != 0) {
        assert_eq!(index.remove(&key(i)), Some(pos(i)));
    }
    let shrunk = index.stats();
    assert_eq!(shrunk.keys, (n / 20) as usize);
    assert!(shrunk.slots * 8 <= full, "{} slots of {full}", shrunk.slots);
    for i in 0..n {
        let expected = (i % 20 == 0).then(|| pos(i));
        assert_eq!(index.get(&key(i)), expected, "key {i}");
    }
    for i in (0..n).filter(|i| i % 20 != 0) {
        assert_eq!(index.put(&key(i), pos(i + n)), None);
    }
    assert_eq!(index.stats().slots, full);
    for i in 0..n {
        let expected = if i % 20 == 0 { pos(i) } else { pos(i + n) };
        assert_eq!(index.get(&key(i)), Some(expected), "key {i}");
    }
}

#[test]
fn compaction_frees_garbage_and_keeps_every_key() {
    let index = HashIndex::with_shards(1);
    let long = |i: u32| [key(i), vec![0xFF; 40]].concat(); // 56 bytes, 59 per entry
    let n = 20_000u32;
    for i in 0..n {
        index.put(&long(i), pos(i));
    }
    let before = index.stats();
    assert_eq!(before.arena_live, n as usize * 59);
    // Overwrites rewrite sizes in place: no garbage.
    for i in 0..n {
        assert_eq!(index.put(&long(i), pos(i + 1)), Some(pos(i)));
    }
    assert_eq!(index.stats().arena_garbage, 0);
    assert_eq!(index.stats().arena_allocated, before.arena_allocated);
    let mut max_garbage = 0;
    for i in (0..n).filter(|i| i % 4 != 0) {
        index.remove(&long(i));
        let stats = index.stats();
        max_garbage = max_garbage.max(stats.arena_garbage);
        // Compaction keeps garbage at most the live bytes (or the minimum).
        assert!(
            stats.arena_garbage <= stats.arena_live.max(MIN_GARBAGE),
            "{stats:?}"
        );
    }
    let after = index.stats();
    assert!(
        max_garbage > 0 && after.arena_live == (n / 4) as usize * 59,
        "{after:?}"
    );
    // A quarter of the keys are live; garbage may reach as much again
    // before the next compaction: about half of the room before, and the
    // newest chunk's unused tail.
    assert!(
        after.arena_allocated * 5 < before.arena_allocated * 3,
        "{before:?} {after:?}"
    );
    for i in 0..n {
        let expected = (i % 4 == 0).then(|| pos(i + 1));
        assert_eq!(index.get(&long(i)), expected, "key {i}");
    }
    let snapshot = index.snapshot(b"").collect();
    for i in 0..snapshot.len() {
        let (k, p) = snapshot.get(i).unwrap();
        assert_eq!(k.len(), 56);
        assert_eq!(index_of(k) % 4, 0);
        assert_eq!(p, pos(index_of(k) + 1));
    }
    assert_eq!(snapshot.len() as u32, n / 4);
}

fn index_of(long_key: &[u8]) -> u32 {
    std::str::from_utf8(&long_key[3..16])
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn removing_every_key_in_any_order_empties_each_cluster() {
    // Small full tables with clusters that wrap around the end; removal
    // in several orders must leave every other key reachable.
    for round in 0..200u32 {
        let index = HashIndex::with_shards(1);
        let count = 12; // 3/4 of 16 slots: long clusters, some wrapping
        let keys: Vec<_> = (0..count).map(|i| key(round * 100 + i)).collect();
        for (i, k) in keys.iter().enumerate() {
            index.put(k, pos(i as u32));
        }
        assert_eq!(index.stats().slots, 16);
        let mut order: Vec<usize> = (0..count as usize).collect();
        order.rotate_left(round as usize % count as usize);
        if round % 2 == 1 {
            order.reverse();
        }
        for (done, &r) in order.iter().enumerate() {
            assert_eq!(index.remove(&keys[r]), Some(pos(r as u32)), "round {round}");
            for &left in &order[done + 1..] {
                assert_eq!(
                    index.get(&keys[left]),
                    Some(pos(left as u32)),
                    "round {round}"
                );
            }
        }
        assert_eq!(index.len(), 0);
    }
}

#[test]
fn one_probe_insert_finds_keys_anywhere_in_their_cluster() {
    // A table at exactly 3/4 (12 keys in 16 slots: long clusters, some
    // wrapping): the one walk that looks for the key must find each one
    // wherever it lies, so that overwrites neither add a second copy nor
    // grow the table; the next new key then lands in a free slot.
    for round in 0..100u32 {
        let index = HashIndex::with_shards(1);
        let keys: Vec<_> = (0..12).map(|i| key(round * 100 + i)).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(index.put(k, pos(i as u32)), None, "round {round}");
        }
        for (i, k) in keys.iter().enumerate().rev() {
            let again = pos(i as u32 + 50);
            assert_eq!(index.put(k, again), Some(pos(i as u32)), "round {round}");
        }
        let stats = index.stats();
        assert_eq!((stats.keys, stats.slots), (12, 16), "round {round}");
        assert_eq!(stats.arena_live, 12 * 19, "round {round}: no new entries");
        let extra = key(round * 100 + 99);
        assert_eq!(index.put(&extra, pos(99)), None, "round {round}");
        assert_eq!(index.stats().slots, 32, "round {round}");
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(index.get(k), Some(pos(i as u32 + 50)), "round {round}");
        }
        assert_eq!(index.get(&extra), Some(pos(99)), "round {round}");
    }
}

#[test]
fn a_reservation_grows_each_table_once_and_keeps_every_key() {
    let index = HashIndex::default();
    let n = 50_000u32;
    for i in 0..1000 {
        index.put(&key(i), pos(i));
    }
    index.reserve(n as usize - 1000);
    let reserved = index.stats().slots;
    for i in 1000..n {
        assert_eq!(index.put(&key(i), pos(i)), None);
    }
    // No shard outgrew its share (1/64 of the keys, plus 1/8), so no
    // table grew again.
    assert_eq!(index.stats().slots, reserved);
    for i in 0..n {
        assert_eq!(index.get(&key(i)), Some(pos(i)), "key {i}");
    }
    // The slack may have doubled a table that did not need it; then
    // shrinking gives it back, to the size growth would have given.
    index.shrink_to_fit();
    for shard in index.shards.iter() {
        let shard = shard.read();
        assert_eq!(shard.slots.len(), capacity_for(shard.len));
    }
    for i in 0..n {
        assert_eq!(index.get(&key(i)), Some(pos(i)), "key {i}");
    }
}

#[test]
fn shrink_to_fit_gives_back_what_a_reservation_left_unused() {
    let index = HashIndex::with_shards(4);
    // Reserved for 100,000 keys, as for a hint of 100,000 puts that
    // turn out to be 10,000 keys, each put ten times.
    index.reserve(100_000);
    let reserved = index.stats().slots;
    for round in 0..10 {
        for i in 0..10_000 {
            index.put(&key(i), pos(i + round));
        }
    }
    assert_eq!(index.stats().slots, reserved);
    index.shrink_to_fit();
    let shrunk = index.stats();
    // Each table now holds its keys between 3/8 and 3/4 full, as if
    // they had gone in one by one.
    assert!(
        shrunk.slots * 4 < reserved,
        "{shrunk:?}, {reserved} reserved"
    );
    for shard in index.shards.iter() {
        let shard = shard.read();
        assert_eq!(shard.slots.len(), capacity_for(shard.len));
    }
    for i in 0..10_000 {
        assert_eq!(index.get(&key(i)), Some(pos(i + 9)), "key {i}");
    }
    assert_eq!(index.get(&key(10_000)), None);
    // An empty index, reserved or not, stays valid.
    let empty = HashIndex::with_shards(2);
    empty.shrink_to_fit();
    empty.reserve(1000);
    empty.shrink_to_fit();
    assert_eq!((empty.len(), empty.get(b"k")), (0, None));
    assert_eq!(empty.put(b"k", pos(1)), None);
}

#[test]
fn keys_whose_tags_collide_are_told_apart_by_their_bytes() {
    let index = HashIndex::with_shards(1);
    // Two keys with the same tag, hence the same home (the tag's top
    // bits), so that one lies on the other's probe path: by the birthday
    // bound some pair among ~2^12 keys shares those 24 bits.
    let probe_key = |i: u32| tag(index.hasher.hash(&key(i)));
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0..1 << 20)
        .find_map(|i| seen.insert(probe_key(i), i).map(|first| (first, i)))
        .expect("a collision among 2^20 keys");
    index.put(&key(a), pos(0));
    index.put(&key(b), pos(1));
    assert_eq!(index.stats().slots, 16);
    assert_eq!(index.get(&key(a)), Some(pos(0)));
    assert_eq!(index.get(&key(b)), Some(pos(1)));
    // `locate` reads tags only: for `b`, behind `a` on the same probe
    // path, it names `a`'s record (the engine then compares the record's
    // key and asks `get`); for `a`, its own.
    assert_eq!(index.locate(&key(a)), Some(pos(0).start()));
    assert_eq!(index.locate(&key(b)), Some(pos(0).start()));
    assert_eq!(index.remove(&key(a)), Some(pos(0)));
    assert_eq!(index.get(&key(a)), None);
    assert_eq!(index.remove(&key(a)), None);
    assert_eq!(index.get(&key(b)), Some(pos(1)));
    assert_eq!(index.locate(&key(b)), Some(pos(1).start()));
    // `a` is gone, but its tag is `b`'s: `locate` names `b`'s record.
    assert_eq!(index.locate(&key(a)), Some(pos(1).start()));
}

#[test]
fn locate_names_the_start_that_get_names_and_none_for_absent_keys() {
    let index = HashIndex::with_shards(4);
    for i in 0..20_000 {
        index.put(&key(i), pos(i));
    }
    for i in (0..20_000).step_by(3) {
        index.remove(&key(i));
    }
    for i in 0..20_000 {
        index.put(&key(i + 40_000), pos(i + 40_000));
    }
    // Where `locate` does not name the start `get` names, it names the
    // record of another key with the same tag (a key then found after it
    // on the same probe path, or an absent key's tag alike): among 40,000
    // keys some dozen pairs share a tag and a shard by the birthday bound.
    let starts: std::collections::HashMap<RecordStart, u32> = (0..60_000)
        .filter_map(|i| index.get(&key(i)).map(|p| (p.start(), i)))
        .collect();
    let tag_of = |i: u32| tag(index.hasher.hash(&key(i)));
    let mut alike = 0;
    for i in 0..80_000 {
        let expected = index.get(&key(i)).map(RecordPos::start);
        let present = (i < 20_000 && i % 3 != 0) || (40_000..60_000).contains(&i);
        assert_eq!(expected.is_some(), present, "key {i}");
        let located = index.locate(&key(i));
        if located != expected {
            let other = starts[&located.expect("a tag alike, if anything")];
            assert_eq!(tag_of(other), tag_of(i), "key {i} located as key {other}");
            alike += 1;
        }
    }
    assert!(alike < 200, "{alike} keys located as another");
}

#[test]
fn a_size_over_64_kib_takes_a_new_entry_and_later_sizes_go_in_place() {
    let index = HashIndex::with_shards(1);
    let wide = |n: u32| RecordPos {
        size: 70_000 + n,
        ..pos(n)
    };
    for i in 0..100 {
        index.put(&key(i), pos(i));
    }
    let before = index.stats();
    assert_eq!((before.arena_live, before.arena_garbage), (100 * 19, 0));
    for i in 0..100 {
        assert_eq!(index.put(&key(i), wide(i)), Some(pos(i)));
    }
    // Each key's 2-byte entry is garbage now, and a 4-byte one live.
    let after = index.stats();
    assert_eq!(
        (after.arena_live, after.arena_garbage),
        (100 * 21, 100 * 19)
    );
    for i in 0..100 {
        assert_eq!(index.get(&key(i)), Some(wide(i)));
        assert_eq!(index.locate(&key(i)), Some(wide(i).start()));
        // The 4-byte entry takes small sizes too, in place.
        assert_eq!(index.put(&key(i), pos(i + 1)), Some(wide(i)));
        assert!(index.replace_if(&key(i), pos(i + 1), wide(i + 2)));
        assert_eq!(index.get(&key(i)), Some(wide(i + 2)));
    }
    assert_eq!(index.stats().arena_garbage, 100 * 19);
}

#[test]
fn a_key_costs_its_entry_and_a_share_of_16_byte_slots() {
    let index = HashIndex::default();
    let n = 100_000u32;
    for i in 0..n {
        index.put(&key(i), pos(i));
    }
    let stats = index.stats();
    // 1 byte of length, 2 of record size, 16 of key.
    assert_eq!(stats.arena_live, n as usize * 19);
    // Each shard is at most 3/4 full and at least 3/8 (it doubled
    // past 3/4), give or take the spread of keys over shards.
    assert!(stats.slots * 3 >= n as usize * 4, "{stats:?}");
    assert!(stats.slots * 3 <= n as usize * 8 * 11 / 10, "{stats:?}");
    assert_eq!(super::table::Table::BYTES_PER_SLOT, 16);
    // Chunk tails: at most one chunk (256 KiB at most) per shard.
    assert!(
        stats.arena_allocated - stats.arena_live <= SHARDS * (256 << 10),
        "{stats:?}"
    );
}

#[test]
fn a_prefetch_changes_nothing_even_in_an_empty_table() {
    // Shards with no table yet (no slot to ask for), then with keys: a
    // prefetch of a present or an absent key leaves every lookup as it was.
    let index = HashIndex::with_shards(4);
    index.prefetch(&key(0));
    assert_eq!(index.get(&key(0)), None);
    for i in 0..1000 {
        index.put(&key(i), pos(i));
    }
    for i in 0..2000 {
        index.prefetch(&key(i));
    }
    assert_eq!(index.len(), 1000);
    for i in 0..2000 {
        assert_eq!(index.get(&key(i)), (i < 1000).then(|| pos(i)), "key {i}");
    }
}

#[test]
fn removing_an_absent_key_copies_no_shared_shard_and_a_present_one_copies_its_own() {
    let index = HashIndex::with_shards(4);
    for i in 0..100 {
        index.put(&key(i), pos(i));
    }
    // What a snapshot or a checkpoint holds: every shard.
    let held: Vec<Arc<Shard>> = index.shards.iter().map(|s| Arc::clone(&s.read())).collect();
    let unchanged = |index: &HashIndex| -> Vec<bool> {
        (index.shards.iter().zip(&held))
            .map(|(now, then)| Arc::ptr_eq(&now.read(), then))
            .collect()
    };
    assert_eq!(index.remove(&key(1000)), None);
    assert!(
        unchanged(&index).iter().all(|&same| same),
        "an absent key copied a shard"
    );
    assert_eq!(index.remove(&key(7)), Some(pos(7)));
    let copied = unchanged(&index).iter().filter(|&&same| !same).count();
    assert_eq!(copied, 1, "only the removed key's shard is copied");
    let hash = index.hasher.hash(&key(7));
    assert_eq!(
        held[index.shard_no(hash)].get(&key(7), hash),
        Some(pos(7)),
        "the held copy keeps it"
    );
    assert_eq!(index.get(&key(7)), None);
    // Unshared now (the copy): removing an absent key there changes nothing.
    drop(held);
    assert_eq!(index.remove(&key(7)), None);
    assert_eq!(index.len(), 99);
}

#[test]
fn the_lock_free_copy_of_each_table_address_follows_every_change() {
    let index = HashIndex::with_shards(4);
    let all_current = |index: &HashIndex| index.shards.iter().all(|shard| shard.copy_is_current());
    // Growth through many resizes.
    for i in 0..5000 {
        index.put(&key(i), pos(i));
    }
    assert!(all_current(&index), "after growth");
    // A copy on write: every shard held, then each changed.
    let held: Vec<Arc<Shard>> = index.shards.iter().map(|s| Arc::clone(&s.read())).collect();
    for i in 0..5000 {
        index.put(&key(i), pos(i + 1));
    }
    assert!(
        (index.shards.iter().zip(&held)).all(|(now, then)| !Arc::ptr_eq(&now.read(), then)),
        "every shard was copied"
    );
    assert!(all_current(&index), "after copies on write");
    drop(held);
    // Shrinking, a reservation, a batch run, and loading a saved layout.
    for i in 0..4900 {
        index.remove(&key(i));
    }
    assert!(all_current(&index), "after shrinking");
    index.reserve(20_000);
    assert!(all_current(&index), "after a reservation");
    // Runs short and long enough to be split between two threads.
    for count in [3000u32, 40_000] {
        let keys: Vec<Vec<u8>> = (0..count).map(|i| key(10_000 + i)).collect();
        let changes: Vec<Change> = (keys.iter().zip(0..))
            .map(|(key, i)| Change {
                key,
                pos: pos(i),
                delete: false,
            })
            .collect();
        index.apply(&changes, &mut |_, _| {});
        assert!(all_current(&index), "after a run of {count}");
    }
    let mut saved = Vec::new();
    index.layout_later().write(&mut saved).unwrap();
    let loaded = HashIndex::load_layout(&mut &saved[..]).unwrap().unwrap();
    assert!(all_current(&loaded), "after loading");
}
