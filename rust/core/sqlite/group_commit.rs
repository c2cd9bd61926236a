//! Group commit on SQLite (see `core::group_commit` for who writes a
//! group and when): a group is one `BEGIN IMMEDIATE` transaction, each
//! write in a savepoint of its own.
//!
//! Each write keeps its own outcome: one that fails (a conflicting event,
//! a refused tracking record) is rolled back to its savepoint alone and
//! the others commit. Notification ids are taken in the order the writes
//! run and committed together, so readers never see a gap that fills
//! later. If the commit itself fails, every write of the group fails.

use rusqlite::Connection;

use super::datastore::{Datastore, Lease, Role};
use super::error::{ErrorKind, StoreError, StoreResult};
use crate::core::group_commit::GroupQueue;

/// A write to run in a group: given the connection inside the group's
/// transaction (and a savepoint of its own), it returns the notification
/// ids it took, or an error, having written nothing that is kept.
pub type Work<'a> = dyn FnMut(&Connection) -> StoreResult<Vec<i64>> + Send + 'a;

/// One database's queue of writes.
pub type CommitQueue = GroupQueue<StoreResult<Vec<i64>>>;

impl Datastore {
    /// Runs `work` in a transaction, together with the writes of other
    /// threads queued meanwhile; returns its own outcome.
    pub fn write_grouped(&self, work: &mut Work<'_>) -> StoreResult<Vec<i64>> {
        let mut request = work;
        self.commit_queue().submit(
            &mut request,
            |_, _| true,
            |group| self.commit_group(group),
            || {
                Err(StoreError::new(
                    ErrorKind::Internal,
                    "a write of the same commit group failed unexpectedly; nothing of the \
                     group was committed",
                ))
            },
        )
    }

    /// One transaction for the group's writes, each in a savepoint (none
    /// for a write alone); their outcomes, in order.
    pub(crate) fn commit_group(
        &self,
        group: Vec<&mut &mut Work<'_>>,
    ) -> Vec<StoreResult<Vec<i64>>> {
        let n = group.len();
        let lease = match self.lease(Role::Write) {
            Ok(lease) => lease,
            Err(err) => return vec![Err(err); n],
        };
        if let Err(err) = lease.execute_batch("BEGIN IMMEDIATE") {
            return vec![Err(lock_error("begin a write transaction on", &lease, &err)); n];
        }
        let alone = n == 1;
        let mut outcomes = Vec::with_capacity(n);
        for work in group {
            if lease.is_autocommit() {
                // An earlier write's failure (a full disk, an I/O error)
                // ended the whole transaction: nothing of the group is
                // committed, and the writes left are not run (outside the
                // transaction, each would commit on its own).
                outcomes.push(Err(StoreError::new(
                    ErrorKind::Operational,
                    format!(
                        "SQLite database '{}' rolled back the transaction of this write's \
                         commit group (another write of it failed); nothing was written",
                        lease.db_name()
                    ),
                )));
                continue;
            }
            outcomes.push(if alone {
                work(&lease)
            } else {
                in_savepoint(&lease, *work)
            });
        }
        if lease.is_autocommit() {
            // Rolled back by SQLite: no write of the group stands.
            let failed = StoreError::new(
                ErrorKind::Operational,
                format!(
                    "SQLite database '{}' rolled back the transaction of this write's commit \
                     group (another write of it failed); nothing was written",
                    lease.db_name()
                ),
            );
            return outcomes
                .into_iter()
                .map(|outcome| outcome.and(Err(failed.clone())))
                .collect();
        }
        if alone && outcomes[0].is_err() {
            let _ = lease.execute_batch("ROLLBACK");
            return outcomes;
        }
        if let Err(err) = lease.execute_batch("COMMIT") {
            let _ = lease.execute_batch("ROLLBACK");
            let failed = lock_error("commit to", &lease, &err);
            return outcomes
                .into_iter()
                .map(|outcome| outcome.and(Err(failed.clone())))
                .collect();
        }
        outcomes
    }

    /// The transactions committed by groups and the writes they held.
    pub fn group_commit_counts(&self) -> (u64, u64) {
        self.commit_queue().counts()
    }
}

fn in_savepoint(conn: &Connection, work: &mut Work<'_>) -> StoreResult<Vec<i64>> {
    if let Err(err) = conn.execute_batch("SAVEPOINT grouped_write") {
        return Err(StoreError::from_sqlite("cannot start a savepoint", &err));
    }
    let outcome = work(conn);
    if outcome.is_err() {
        let _ = conn.execute_batch("ROLLBACK TO grouped_write");
    }
    match conn.execute_batch("RELEASE grouped_write") {
        Ok(()) => outcome,
        Err(err) => {
            // Not released: its writes must not be committed with the rest.
            let _ = conn.execute_batch("ROLLBACK TO grouped_write");
            let _ = conn.execute_batch("RELEASE grouped_write");
            outcome.and(Err(StoreError::from_sqlite(
                "cannot release a savepoint",
                &err,
            )))
        }
    }
}

pub(crate) fn lock_error(doing: &str, lease: &Lease, err: &rusqlite::Error) -> StoreError {
    let mut e = StoreError::from_sqlite(
        &format!("cannot {doing} SQLite database '{}'", lease.db_name()),
        err,
    );
    if StoreError::is_lock_timeout(err) {
        e.message = format!(
            "{} (waited {:.1} s for another connection's write transaction)",
            e.message,
            lease.lock_timeout().as_secs_f64()
        );
    }
    e
}
