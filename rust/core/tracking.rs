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
}
