//! The leader's schedule index: every scheduled job ordered by its next fire time.
//!
//! A binary heap keyed by `(next fire, generation)` with lazy deletion: upserting or removing a
//! job bumps its generation, and stale heap entries are discarded when they surface. Every
//! operation is O(log n); nothing scans all jobs per tick (DESIGN §3, §5).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::schedule::Schedule;

/// Bound on the missed fires counted one by one when a job is popped late.
const MAX_COUNTED_MISSES: u32 = 100_000;

/// A fire that is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Due<T> {
    /// Job name.
    pub name: Arc<str>,
    /// The scheduled instant being served: the most recent fire at or before `now`.
    pub scheduled_at: DateTime<Utc>,
    /// Older fires that were due but are not run (the scheduler was behind).
    pub missed: u32,
    /// The payload stored with the job.
    pub payload: Arc<T>,
}

#[derive(Debug)]
struct Entry<T> {
    schedule: Schedule,
    next: DateTime<Utc>,
    generation: u64,
    payload: Arc<T>,
}

/// Jobs ordered by next fire time, each with a payload (the runtime stores the job itself).
#[derive(Debug)]
pub struct ScheduleIndex<T> {
    heap: BinaryHeap<Reverse<(DateTime<Utc>, u64)>>,
    by_generation: HashMap<u64, Arc<str>>,
    entries: HashMap<Arc<str>, Entry<T>>,
    next_generation: u64,
}

impl<T> Default for ScheduleIndex<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            by_generation: HashMap::new(),
            entries: HashMap::new(),
            next_generation: 0,
        }
    }
}

impl<T> ScheduleIndex<T> {
    /// Creates an empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of scheduled jobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true when no job is scheduled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Inserts or replaces a job, scheduling its first fire strictly after `after`.
    /// A schedule that never fires again removes the job. Returns the next fire.
    pub fn upsert(
        &mut self,
        name: &str,
        schedule: Schedule,
        after: DateTime<Utc>,
        payload: T,
    ) -> Option<DateTime<Utc>> {
        self.remove(name);
        let next = schedule.next_after(after)?;
        let name: Arc<str> = Arc::from(name);
        let generation = self.bump();
        self.heap.push(Reverse((next, generation)));
        self.by_generation.insert(generation, name.clone());
        self.entries.insert(
            name,
            Entry {
                schedule,
                next,
                generation,
                payload: Arc::new(payload),
            },
        );
        Some(next)
    }

    /// Removes a job; returns whether it was scheduled.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.entries.remove(name) {
            Some(entry) => {
                self.by_generation.remove(&entry.generation);
                true
            }
            None => false,
        }
    }

    /// Returns the next fire of a job, if scheduled.
    pub fn next_of(&self, name: &str) -> Option<DateTime<Utc>> {
        self.entries.get(name).map(|e| e.next)
    }

    /// Moves a job's next fire past `handled`: a job whose next fire is at or before `handled`
    /// is rescheduled to its first fire strictly after it (a schedule that never fires again
    /// leaves the index); a later next fire is kept. Answers the job's next fire.
    ///
    /// For fires that were served some other way (the leader's catch-up at takeover), so the
    /// index never fires them a second time.
    pub fn skip_through(&mut self, name: &str, handled: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let entry = self.entries.get_mut(name)?;
        if entry.next > handled {
            return Some(entry.next);
        }
        self.by_generation.remove(&entry.generation);
        let Some(next) = entry.schedule.next_after(handled) else {
            self.entries.remove(name);
            return None;
        };
        self.next_generation += 1;
        let generation = self.next_generation;
        entry.next = next;
        entry.generation = generation;
        self.heap.push(Reverse((next, generation)));
        let key = self
            .entries
            .get_key_value(name)
            .map(|(key, _)| key.clone())?;
        self.by_generation.insert(generation, key);
        Some(next)
    }

    /// Returns the payload of a job, if scheduled.
    pub fn payload_of(&self, name: &str) -> Option<Arc<T>> {
        self.entries.get(name).map(|e| e.payload.clone())
    }

    /// Iterates over every scheduled job: name, schedule and payload (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Schedule, &Arc<T>)> {
        self.entries
            .iter()
            .map(|(name, e)| (&**name, &e.schedule, &e.payload))
    }

    /// Returns the earliest next fire of any job.
    pub fn peek_deadline(&mut self) -> Option<DateTime<Utc>> {
        while let Some(Reverse((at, generation))) = self.heap.peek().copied() {
            if self.by_generation.contains_key(&generation) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops every job due at `now`, reschedules each after the fire it serves, and returns them.
    ///
    /// A job popped late serves its most recent due fire once; the older due fires are counted
    /// in [`Due::missed`] and not run.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Vec<Due<T>> {
        let mut due = Vec::new();
        while let Some(Reverse((at, generation))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(name) = self.by_generation.remove(&generation) else {
                continue;
            };
            let Some(entry) = self.entries.get_mut(&name) else {
                continue;
            };
            let (scheduled_at, missed) = latest_due(&entry.schedule, at, now);
            let payload = entry.payload.clone();
            match entry.schedule.next_after(scheduled_at) {
                Some(next) => {
                    self.next_generation += 1;
                    let generation = self.next_generation;
                    entry.next = next;
                    entry.generation = generation;
                    self.heap.push(Reverse((next, generation)));
                    self.by_generation.insert(generation, name.clone());
                }
                None => {
                    self.entries.remove(&name);
                }
            }
            due.push(Due {
                name,
                scheduled_at,
                missed,
                payload,
            });
        }
        due
    }

    fn bump(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

/// Walks from a due fire `first` to the most recent fire at or before `now`.
fn latest_due(
    schedule: &Schedule,
    first: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, u32) {
    let mut current = first;
    let mut missed = 0u32;
    while let Some(next) = schedule.next_after(current) {
        if next > now {
            break;
        }
        current = next;
        missed += 1;
        if missed >= MAX_COUNTED_MISSES {
            break;
        }
    }
    (current, missed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn every(secs: u32, name: &str) -> Schedule {
        Schedule::parse(&format!("@every {secs}s"), name, "").unwrap()
    }

    #[test]
    fn pops_in_time_order_and_reschedules() {
        let mut idx = ScheduleIndex::new();
        let a = idx.upsert("a", every(10, "a"), t(0), ()).unwrap();
        let b = idx.upsert("b", every(3, "b"), t(0), ()).unwrap();
        assert!(a > t(0) && a <= t(10));
        assert!(b > t(0) && b <= t(3));
        assert_eq!(idx.peek_deadline(), Some(a.min(b)));
        let due = idx.pop_due(b);
        assert!(due.iter().any(|d| &*d.name == "b" && d.scheduled_at == b));
        assert_eq!(idx.next_of("b"), Some(b + TimeDelta::seconds(3)));
        assert_eq!(idx.len(), 2);
    }

    #[test]
    fn remove_and_replace_discard_stale_entries() {
        let mut idx = ScheduleIndex::new();
        idx.upsert("a", every(5, "a"), t(0), 1);
        idx.upsert("a", every(50, "a"), t(0), 2);
        assert!(idx.remove("a"));
        assert!(idx.peek_deadline().is_none());
        assert!(idx.pop_due(t(1000)).is_empty());
        assert!(idx.is_empty());
    }

    #[test]
    fn late_pop_serves_latest_fire_and_counts_missed() {
        let mut idx = ScheduleIndex::new();
        let first = idx.upsert("a", every(1, "a"), t(0), ()).unwrap();
        let due = idx.pop_due(first + TimeDelta::seconds(10));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].scheduled_at, first + TimeDelta::seconds(10));
        assert_eq!(due[0].missed, 10);
        assert_eq!(idx.next_of("a"), Some(first + TimeDelta::seconds(11)));
    }

    #[test]
    fn skip_through_moves_only_fires_already_served() {
        let mut idx = ScheduleIndex::new();
        let first = idx.upsert("a", every(1, "a"), t(0), ()).unwrap();
        // A later next fire is kept.
        assert_eq!(
            idx.skip_through("a", first - TimeDelta::milliseconds(1)),
            Some(first)
        );
        // A next fire at or before `handled` moves strictly past it, and only the new one pops.
        let handled = first + TimeDelta::milliseconds(1_400);
        let next = idx.skip_through("a", handled).unwrap();
        assert_eq!(next, first + TimeDelta::seconds(2));
        assert!(
            idx.pop_due(handled).is_empty(),
            "the served fires are not due again"
        );
        assert_eq!(idx.peek_deadline(), Some(next));
        let due = idx.pop_due(next);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].scheduled_at, due[0].missed), (next, 0));
        assert_eq!(idx.skip_through("missing", handled), None);
        // A schedule with no fire after `handled` leaves the index.
        let s = Schedule::parse("@at 2030-01-01T00:00:00Z", "o", "").unwrap();
        let at = idx.upsert("o", s, t(0), ()).unwrap();
        assert_eq!(idx.skip_through("o", at), None);
        assert_eq!(idx.next_of("o"), None);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn one_shot_leaves_the_index_after_firing() {
        let mut idx = ScheduleIndex::new();
        let s = Schedule::parse("@at 2030-01-01T00:00:00Z", "o", "").unwrap();
        let at = idx.upsert("o", s, t(0), ()).unwrap();
        assert_eq!(idx.pop_due(at).len(), 1);
        assert!(idx.is_empty());
        let never = Schedule::parse("@manually", "m", "").unwrap();
        assert_eq!(idx.upsert("m", never, t(0), ()), None);
        assert!(idx.is_empty());
    }
}
