//! The in-memory event store behind the POPO recorders.
//!
//! Generic over the stored record so it holds no Python types; the binding
//! layer stores its own record type (with Python objects) behind an `Arc`.
//! Each insert is all or nothing: every check runs before anything changes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::segment::SegmentFilter;
use super::tracking::{TrackingRecord, TrackingRefused};

/// Batches up to this size are checked for duplicate positions pairwise,
/// without building a set: most inserts carry one or a few events.
const PAIRWISE_CHECK_MAX: usize = 16;

/// Why an insert was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertError {
    /// An event at this position is already recorded.
    Conflict { originator_id: u128, version: i64 },
    /// The batch holds two events at one position.
    DuplicateInBatch { originator_id: u128, version: i64 },
    /// The tracking record was refused by the position check.
    Tracking(TrackingRefused),
}

/// One event to insert: its position and the record to keep.
pub struct NewEvent<T> {
    pub originator_id: u128,
    pub version: i64,
    pub record: Arc<T>,
}

#[derive(Debug)]
pub struct MemoryStore<T> {
    /// Notification order: the notification id of `records[i]` is `i + 1`.
    records: Vec<(u128, i64, Arc<T>)>,
    /// Per aggregate: (version, index into `records`), sorted by version.
    /// Versions nearly always arrive in order, so this is an append; most
    /// aggregates hold a handful of events, for which a vector is smaller
    /// and quicker than a tree. Keys are UUIDs, hashed with foldhash
    /// (seeded per store) rather than SipHash.
    index: HashMap<u128, Vec<(i64, usize)>, RandomState>,
    tracking: HashMap<String, i64, RandomState>,
}

impl<T> Default for MemoryStore<T> {
    fn default() -> Self {
        MemoryStore {
            records: Vec::new(),
            index: HashMap::default(),
            tracking: HashMap::default(),
        }
    }
}

/// Filters for selecting one aggregate's events.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventQuery {
    pub gt: Option<i64>,
    pub lte: Option<i64>,
    pub desc: bool,
    pub limit: Option<usize>,
}

impl<T> MemoryStore<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a batch (and tracking record) against the store without
    /// changing anything.
    pub fn check(
        &self,
        events: &[NewEvent<T>],
        tracking: Option<TrackingRecord<'_>>,
    ) -> Result<(), InsertError> {
        // The position first, as the other stores check it: a batch that
        // another instance of the follower overtook is refused as such.
        if let Some(record) = tracking {
            record
                .check(self.max_tracking_id(record.application_name))
                .map_err(InsertError::Tracking)?;
        }
        for (i, e) in events.iter().enumerate() {
            if self
                .index
                .get(&e.originator_id)
                .is_some_and(|versions| find_version(versions, e.version).is_ok())
            {
                return Err(InsertError::Conflict {
                    originator_id: e.originator_id,
                    version: e.version,
                });
            }
            if events.len() <= PAIRWISE_CHECK_MAX
                && events[..i]
                    .iter()
                    .any(|o| o.originator_id == e.originator_id && o.version == e.version)
            {
                return Err(InsertError::DuplicateInBatch {
                    originator_id: e.originator_id,
                    version: e.version,
                });
            }
        }
        if events.len() > PAIRWISE_CHECK_MAX {
            let mut seen = HashSet::with_capacity(events.len());
            for e in events {
                if !seen.insert((e.originator_id, e.version)) {
                    return Err(InsertError::DuplicateInBatch {
                        originator_id: e.originator_id,
                        version: e.version,
                    });
                }
            }
        }
        Ok(())
    }

    /// Inserts a batch atomically; returns the notification ids given.
    pub fn insert(
        &mut self,
        events: Vec<NewEvent<T>>,
        tracking: Option<TrackingRecord<'_>>,
    ) -> Result<Vec<i64>, InsertError> {
        self.check(&events, tracking)?;
        let mut ids = Vec::with_capacity(events.len());
        for e in events {
            let position = self.records.len();
            let versions = self.index.entry(e.originator_id).or_default();
            match versions.last() {
                Some(&(last, _)) if last >= e.version => {
                    // Checked above: the version is not recorded yet.
                    let at = find_version(versions, e.version).unwrap_err();
                    versions.insert(at, (e.version, position));
                }
                _ => versions.push((e.version, position)),
            }
            self.records.push((e.originator_id, e.version, e.record));
            ids.push(position as i64 + 1);
        }
        if let Some(TrackingRecord {
            application_name: name,
            notification_id: id,
            ..
        }) = tracking
        {
            match self.tracking.get_mut(name) {
                Some(last) => *last = id,
                None => {
                    self.tracking.insert(name.to_string(), id);
                }
            }
        }
        Ok(ids)
    }

    pub fn select_events(&self, originator_id: u128, q: EventQuery) -> Vec<Arc<T>> {
        let Some(versions) = self.index.get(&originator_id) else {
            return Vec::new();
        };
        if let (Some(gt), Some(lte)) = (q.gt, q.lte) {
            if lte <= gt {
                return Vec::new();
            }
        }
        let from =
            q.gt.map_or(0, |gt| versions.partition_point(|&(v, _)| v <= gt));
        let to = q.lte.map_or(versions.len(), |lte| {
            versions.partition_point(|&(v, _)| v <= lte)
        });
        let range = &versions[from..to.max(from)];
        let limit = q.limit.unwrap_or(usize::MAX);
        let pick = |&(_, i): &(i64, usize)| self.records[i].2.clone();
        if q.desc {
            range.iter().rev().take(limit).map(pick).collect()
        } else {
            range.iter().take(limit).map(pick).collect()
        }
    }

    /// Notifications from `start` (ids below 1 read from the beginning).
    pub fn select_notifications(&self, start: i64, limit: usize) -> Vec<(i64, Arc<T>)> {
        let first = start.max(1) as usize - 1;
        self.records
            .iter()
            .enumerate()
            .skip(first)
            .take(limit)
            .map(|(i, r)| (i as i64 + 1, r.2.clone()))
            .collect()
    }

    /// The notifications of `segment` among the `scan` from `start`, and
    /// the id of the last one scanned (`start - 1` when none was).
    pub fn select_segment(
        &self,
        start: i64,
        scan: usize,
        segment: SegmentFilter,
    ) -> (Vec<(i64, Arc<T>)>, i64) {
        let first = start.max(1) as usize - 1;
        let mut upto = first as i64;
        let mut found = Vec::new();
        for (i, r) in self.records.iter().enumerate().skip(first).take(scan) {
            upto = i as i64 + 1;
            if segment.holds(r.0) {
                found.push((upto, r.2.clone()));
            }
        }
        (found, upto)
    }

    pub fn max_notification_id(&self) -> i64 {
        self.records.len() as i64
    }

    pub fn max_tracking_id(&self, application_name: &str) -> i64 {
        self.tracking.get(application_name).copied().unwrap_or(0)
    }
}

/// Where `version` is in `versions` (sorted by version), or where it would go.
fn find_version(versions: &[(i64, usize)], version: i64) -> Result<usize, usize> {
    versions.binary_search_by_key(&version, |&(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u128, version: i64) -> NewEvent<&'static str> {
        NewEvent {
            originator_id: id,
            version,
            record: Arc::new("x"),
        }
    }

    #[test]
    fn insert_select_and_conflicts() {
        let mut s = MemoryStore::new();
        assert_eq!(
            s.insert(vec![ev(1, 1), ev(1, 2)], None).unwrap(),
            vec![1, 2]
        );
        assert_eq!(
            s.insert(vec![ev(2, 1)], Some(("L", 5).into())).unwrap(),
            vec![3]
        );
        assert_eq!(
            s.insert(vec![ev(3, 1), ev(1, 2)], None),
            Err(InsertError::Conflict {
                originator_id: 1,
                version: 2
            })
        );
        assert_eq!(
            s.max_notification_id(),
            3,
            "nothing of a refused batch is written"
        );
        assert!(s.select_events(3, EventQuery::default()).is_empty());
        assert!(matches!(
            s.insert(vec![ev(4, 1), ev(4, 1)], None),
            Err(InsertError::DuplicateInBatch { .. })
        ));
        assert!(matches!(
            s.insert(vec![ev(5, 1)], Some(("L", 5).into())),
            Err(InsertError::Tracking(TrackingRefused::NotAhead(_)))
        ));
        // A batch 1..=10 read from position 0, after 1..=5 were recorded
        // from it: refused whole.
        assert!(matches!(
            s.insert(vec![ev(5, 1)], Some(("L", 10, 0).into())),
            Err(InsertError::Tracking(TrackingRefused::Moved {
                last: 5,
                ..
            }))
        ));
        assert_eq!(s.max_notification_id(), 3);
        assert_eq!(
            s.insert(vec![ev(5, 1)], Some(("L", 10, 5).into())).unwrap(),
            vec![4]
        );
        assert_eq!(s.max_tracking_id("L"), 10);
        assert_eq!(s.max_tracking_id("M"), 0);
        let q = EventQuery {
            gt: Some(1),
            ..Default::default()
        };
        assert_eq!(s.select_events(1, q).len(), 1);
        let q = EventQuery {
            desc: true,
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(s.select_events(1, q).len(), 1);
        assert_eq!(s.select_notifications(0, 10).len(), 4);
        assert_eq!(s.select_notifications(3, 10)[0].0, 3);
        assert!(s.select_notifications(5, 10).is_empty());
    }

    #[test]
    fn versions_out_of_order_are_kept_in_order() {
        let mut s = MemoryStore::new();
        s.insert(vec![ev(1, 5), ev(1, 2)], None).unwrap();
        s.insert(vec![ev(1, 3)], None).unwrap();
        let all = |s: &MemoryStore<&str>, q| s.select_events(1, q).len();
        assert_eq!(all(&s, EventQuery::default()), 3);
        let q = EventQuery {
            gt: Some(2),
            lte: Some(4),
            ..Default::default()
        };
        assert_eq!(all(&s, q), 1);
        assert!(matches!(
            s.insert(vec![ev(1, 3)], None),
            Err(InsertError::Conflict { version: 3, .. })
        ));
        let mut ordered = Vec::new();
        for version in 1..=40 {
            ordered.push(ev(9, version));
        }
        ordered.push(ev(9, 7));
        assert!(matches!(
            s.insert(ordered, None),
            Err(InsertError::DuplicateInBatch { version: 7, .. })
        ));
    }
}
