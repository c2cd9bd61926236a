//! Tracking bookkeeping: per leader, the last notification id a follower
//! has processed, kept beside the process recorder so a pull need not ask
//! the database where it stands, and so a record that would not advance
//! is refused before anything is written.

use std::collections::HashMap;

use foldhash::fast::RandomState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAhead {
    pub leader: String,
    pub notification_id: i64,
    pub last: i64,
}

impl std::fmt::Display for NotAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "notification {} of application '{}' is already processed (last tracked id is {})",
            self.notification_id, self.leader, self.last
        )
    }
}

/// A tracking record to write with a follower's new events: the leader,
/// the notification id processed, and the follower's position for that
/// leader when the batch was read (`previous_id`). A record with a
/// previous id is a compare-and-set: it commits only while the stored
/// position is still that one, so a second instance of the follower, or
/// a retry of a batch already recorded, can never record a notification
/// twice. Without one (a record made by hand), it must only advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackingRecord<'a> {
    pub application_name: &'a str,
    pub notification_id: i64,
    pub previous_id: Option<i64>,
}

impl<'a> From<(&'a str, i64)> for TrackingRecord<'a> {
    fn from((application_name, notification_id): (&'a str, i64)) -> Self {
        TrackingRecord {
            application_name,
            notification_id,
            previous_id: None,
        }
    }
}

impl<'a> From<(&'a str, i64, i64)> for TrackingRecord<'a> {
    fn from((application_name, notification_id, previous): (&'a str, i64, i64)) -> Self {
        TrackingRecord {
            application_name,
            notification_id,
            previous_id: Some(previous),
        }
    }
}

/// Why a tracking record was refused. Nothing of its insert was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackingRefused {
    /// The record does not advance past the stored position.
    NotAhead(NotAhead),
    /// The stored position is no longer the one the batch started from:
    /// another instance of the follower recorded from it meanwhile.
    Moved {
        leader: String,
        notification_id: i64,
        previous_id: i64,
        last: i64,
    },
}

impl std::fmt::Display for TrackingRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrackingRefused::NotAhead(e) => e.fmt(f),
            TrackingRefused::Moved {
                leader,
                notification_id,
                previous_id,
                last,
            } => write!(
                f,
                "notifications {}..={notification_id} of application '{leader}' were \
                 processed from position {previous_id}, but the last tracked id is now \
                 {last} (recorded meanwhile by another instance of the follower?)",
                previous_id + 1
            ),
        }
    }
}

impl TrackingRecord<'_> {
    /// The one position check every store makes, in the transaction that
    /// writes the record, against `last`, the stored position.
    pub fn check(&self, last: i64) -> Result<(), TrackingRefused> {
        if self.notification_id <= last || self.notification_id < 1 {
            return Err(TrackingRefused::NotAhead(NotAhead {
                leader: self.application_name.to_string(),
                notification_id: self.notification_id,
                last,
            }));
        }
        match self.previous_id {
            Some(previous) if previous != last => Err(TrackingRefused::Moved {
                leader: self.application_name.to_string(),
                notification_id: self.notification_id,
                previous_id: previous,
                last,
            }),
            _ => Ok(()),
        }
    }
}

/// Positions known to match what the recorder holds. A position is only
/// known after it was read from the recorder or advanced by a successful
/// insert; after a failed insert it is forgotten and read again.
#[derive(Debug, Default)]
pub struct TrackingBook {
    // A few leaders, looked up on every pull: a fast hash, and the name
    // allocated only when a leader is first seen.
    positions: HashMap<String, i64, RandomState>,
}

impl TrackingBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn position(&self, leader: &str) -> Option<i64> {
        self.positions.get(leader).copied()
    }

    /// Records a position read from the recorder.
    pub fn learn(&mut self, leader: &str, position: i64) {
        self.set(leader, position);
    }

    fn set(&mut self, leader: &str, position: i64) {
        match self.positions.get_mut(leader) {
            Some(known) => *known = position,
            None => {
                self.positions.insert(leader.to_string(), position);
            }
        }
    }

    /// Refuses a tracking id at or below the known position.
    pub fn check(&self, leader: &str, notification_id: i64) -> Result<(), NotAhead> {
        match self.positions.get(leader) {
            Some(&last) if notification_id <= last => Err(NotAhead {
                leader: leader.to_string(),
                notification_id,
                last,
            }),
            _ => Ok(()),
        }
    }

    /// Moves the position on after a successful insert.
    pub fn advance(&mut self, leader: &str, notification_id: i64) -> Result<(), NotAhead> {
        self.check(leader, notification_id)?;
        self.set(leader, notification_id);
        Ok(())
    }

    pub fn forget(&mut self, leader: &str) {
        self.positions.remove(leader);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_and_refuses_going_back() {
        let mut book = TrackingBook::new();
        assert_eq!(book.position("A"), None);
        assert!(book.check("A", 1).is_ok());
        book.learn("A", 3);
        assert_eq!(book.check("A", 3).unwrap_err().last, 3);
        assert!(book.check("A", 2).is_err());
        book.advance("A", 7).unwrap();
        assert_eq!(book.position("A"), Some(7));
        let err = book.advance("A", 7).unwrap_err();
        assert_eq!(
            err.to_string(),
            "notification 7 of application 'A' is already processed (last tracked id is 7)"
        );
        assert_eq!(
            book.position("A"),
            Some(7),
            "a refused advance changes nothing"
        );
        book.forget("A");
        assert_eq!(book.position("A"), None);
        assert_eq!(book.position("B"), None);
    }

    #[test]
    fn a_record_with_a_previous_id_is_a_compare_and_set() {
        let record = TrackingRecord::from(("L", 10, 0));
        assert!(record.check(0).is_ok());
        // Another instance recorded 1..=5: the batch 1..=10 overlaps it.
        let refused = record.check(5).unwrap_err();
        assert!(matches!(refused, TrackingRefused::Moved { last: 5, .. }));
        assert!(refused.to_string().contains("processed from position 0"));
        // Past the batch's end: not ahead, whatever it started from.
        assert!(matches!(
            record.check(12),
            Err(TrackingRefused::NotAhead(_))
        ));
    }

    #[test]
    fn a_record_without_a_previous_id_must_only_advance() {
        let record = TrackingRecord::from(("L", 10));
        assert!(record.check(0).is_ok());
        assert!(record.check(9).is_ok());
        assert!(record.check(10).is_err());
        assert!(TrackingRecord::from(("L", 0)).check(0).is_err());
    }
}
