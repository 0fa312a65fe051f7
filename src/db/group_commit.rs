//! Group commit for puts under `sync_writes`: one fdatasync covers every
//! put waiting for the writer, and none returns before its record is durable.
//!
//! Each caller encodes its record on its own thread and joins a queue. The
//! caller at the front of the queue is the leader: it takes every queued
//! record, appends them with one write (one per data file, if the group
//! crosses a rollover) under the writer lock, syncs, and only then points the
//! keydir at them, in queue order. Then it removes them from the queue,
//! wakes the others, and the next caller at the front leads the next group.
//! So a put is visible to readers only once it is durable, and the keydir
//! follows the log's order exactly as with one put at a time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::writer::{EncodedPut, Writer};
use crate::error::{Error, Result};
use crate::log::format::{self, RecordKind};

/// One put waiting to be committed.
pub struct QueuedPut {
    key: Box<[u8]>,
    record: Vec<u8>,
    /// Set by the leader that committed (or failed) it.
    outcome: Mutex<Option<Result<()>>>,
}

/// How long a leader waits at most for the callers of the group before
/// its own to queue up again: a fraction of one fdatasync (about 185 us on
/// the machines this was measured on).
const GATHER_WAIT: Duration = Duration::from_micros(50);

/// The puts waiting to be committed, oldest first; the first one's caller leads.
#[derive(Default)]
pub struct CommitQueue {
    queue: Mutex<VecDeque<Arc<QueuedPut>>>,
    /// Signalled when a group is done.
    done: Condvar,
    /// Signalled when a put joins the queue behind a leader.
    arrived: Condvar,
    /// The size of the last group committed.
    last_group: AtomicUsize,
}

/// Ends a leader's turn, also if it unwinds: its group leaves the queue
/// (with an error for any put left without an outcome, so that no caller
/// waits forever) and the next caller in line is woken to lead.
struct HandOver<'a> {
    commits: &'a CommitQueue,
    group: &'a [Arc<QueuedPut>],
}

impl Drop for HandOver<'_> {
    fn drop(&mut self) {
        for p in self.group {
            let mut outcome = p.outcome.lock();
            if outcome.is_none() {
                *outcome = Some(Err(Error::Internal(
                    "the thread committing this put panicked".to_string(),
                )));
            }
        }
        let mut queue = self.commits.queue.lock();
        queue.drain(..self.group.len());
        self.commits.done.notify_all();
    }
}

impl CommitQueue {
    /// A put under `sync_writes`, committed through `writer` with whatever
    /// other puts are waiting (see the module comment). The caller has
    /// checked key and value.
    pub fn put(&self, writer: &Mutex<Writer>, key: &[u8], value: &[u8]) -> Result<()> {
        let mut record = Vec::with_capacity(format::record_len(key.len(), value.len()));
        format::encode_record(RecordKind::Put, key, value, &mut record);
        let mine = Arc::new(QueuedPut {
            key: key.into(),
            record,
            outcome: Mutex::new(None),
        });
        let commits = self;
        let mut queue = commits.queue.lock();
        queue.push_back(Arc::clone(&mine));
        crate::failpoint::hit("group:queued");
        if queue.len() > 1 {
            commits.arrived.notify_one();
        }
        loop {
            if let Some(outcome) = mine.outcome.lock().take() {
                return outcome;
            }
            if queue.front().is_some_and(|first| Arc::ptr_eq(first, &mine)) {
                break;
            }
            commits.done.wait(&mut queue);
        }
        // The leader. Without a wait, groups alternate: while one syncs,
        // the callers not in it queue up and form the next group, and the
        // callers of the group just done come back too late for it; each
        // fdatasync then covers about half of the writers. So when the last
        // group was larger than the queue is now, the leader waits briefly
        // for that many callers. A lone writer (a last group of one) never
        // waits.
        let expected = commits.last_group.load(Ordering::Relaxed);
        if queue.len() < expected {
            commits
                .arrived
                .wait_while_for(&mut queue, |q| q.len() < expected, GATHER_WAIT);
        }
        let group: Vec<Arc<QueuedPut>> = queue.iter().cloned().collect();
        commits.last_group.store(group.len(), Ordering::Relaxed);
        drop(queue);
        let handed_over = HandOver {
            commits,
            group: &group,
        };
        commit_group(&mut writer.lock(), &group);
        drop(handed_over);
        let outcome = mine.outcome.lock().take();
        outcome.unwrap_or_else(|| {
            Err(Error::Internal(
                "a group commit left a put without an outcome".to_string(),
            ))
        })
    }
}

/// Appends, syncs and applies `group`, setting every member's outcome.
fn commit_group(writer: &mut Writer, group: &[Arc<QueuedPut>]) {
    let mut at = 0;
    while at < group.len() {
        // The longest run that fits the active file (or one record, in
        // an empty file: what does not fit gets a file of its own).
        let room = writer.data_file_size();
        let start = writer.next_append_at(group[at].record.len() as u64);
        let mut len = 0u64;
        let mut end = at;
        while end < group.len() {
            let next = group[end].record.len() as u64;
            if end > at && start + len + next > room {
                break;
            }
            len += next;
            end += 1;
        }
        let run = &group[at..end];
        let puts: Vec<EncodedPut<'_>> = run
            .iter()
            .map(|p| EncodedPut {
                key: &p.key,
                record: &p.record,
            })
            .collect();
        match writer.append_puts(&puts, len) {
            Ok(()) => {
                for p in run {
                    *p.outcome.lock() = Some(Ok(()));
                }
                at = end;
            }
            Err(e) => {
                for p in &group[at..] {
                    *p.outcome.lock() = Some(Err(e.duplicate()));
                }
                return;
            }
        }
    }
}
