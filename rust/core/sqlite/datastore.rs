//! Connections to one SQLite database, shared by the recorders of a
//! datastore.
//!
//! A file database gets one writer connection and a pool of reader
//! connections. Threads of this process that want to write queue for the
//! writer here, on a condition variable, rather than in SQLite's busy
//! handler, which polls with growing sleeps; other processes writing the
//! same file are waited for by that busy handler, up to the lock timeout.
//! Readers never wait for writers: in WAL mode each read sees the last
//! commit made before it started.
//!
//! An in-memory database lives and dies with its connection, so every
//! operation of such a datastore goes through its single connection. A
//! named shared-cache one (`file:NAME?mode=memory&cache=shared`) is shared
//! by every datastore of the process that names it; as shared-cache
//! connections lock tables, not the file, and SQLite's busy handler does
//! not wait for table locks, they wait through unlock notifications.
//!
//! Connections are leased, not locked: a [`Lease`] owns its connection
//! until it is dropped, so no mutex is held while the connection is used
//! (nor while a caller's code runs inside an open transaction).
//!
//! After `fork()` a child must not touch its parent's connections (SQLite's
//! locks belong to the process that took them). The datastore notices that
//! it is in a new process, forgets the inherited connections without
//! closing them, and opens its own.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags};

use super::error::{ErrorKind, StoreError, StoreResult};
use super::group_commit::CommitQueue;
use crate::core::process_epoch::process_epoch;

/// Seconds to wait for a lock when no timeout is configured (as the
/// reference library does).
pub const DEFAULT_LOCK_TIMEOUT_SECS: f64 = 5.0;

/// Reader connections kept open between reads; more are opened when more
/// threads read at once, and closed when they come back to a full pool.
const IDLE_READERS: usize = 16;

/// Prepared statements cached per connection: the recorders' own (eight
/// shapes of `select_events`, plus a few) must all fit.
const STATEMENT_CACHE: usize = 32;

/// Durability of commits: `PRAGMA synchronous = FULL`.
///
/// In WAL mode, `NORMAL` skips the fsync of the log at each commit and
/// only syncs at checkpoints. That survives a crash of the process, but a
/// power cut or OS crash can take back the last transactions *after*
/// `insert_events` returned. For an event store this is worse than slow:
/// the notification ids of the lost events are handed out again to new,
/// different events, and a follower (in another database, or on another
/// machine) that recorded "processed up to n" will silently skip them, so
/// exactly-once processing breaks across a power cut. `FULL` makes each
/// commit durable when it returns, at the cost of one fsync of the log per
/// commit (not per event: batch events into one insert to amortise it).
/// It is also SQLite's compiled-in default, so the reference library ran
/// with it too.
pub const SYNCHRONOUS: &str = "FULL";

/// Pages of WAL between the writer's automatic checkpoints: SQLite's
/// default, about 4 MiB.
///
/// After a checkpoint the log is written again from its start, and a
/// commit that overwrites log already on disk is synced about twice as
/// fast as one that grows the file (growing it makes the filesystem commit
/// its journal too). A database is opened with no log, and SQLite deletes
/// the log when the last connection closes, so every process begins in the
/// growing regime and stays there for as many pages as this allows. At
/// 10000 pages, durable saves of one aggregate ran about 40% slower over
/// their first 40 MiB of log than at 1000, while a follower recording
/// batches of 1000 events ran about 5% faster (a page changed by many
/// batches is copied to the database once per checkpoint, not once per
/// 1000 pages). Small durable commits are the common case, so the default
/// stands.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 1_000;

/// What a lease is for; decides which connection it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Write,
    Read,
}

enum Writer {
    Absent,
    Idle(Connection),
    Leased,
}

struct Pool {
    /// The [`process_epoch`] the connections belong to.
    epoch: u64,
    /// Bumped by `close_all`; a lease from an older generation closes its
    /// connection instead of returning it.
    generation: u64,
    writer: Writer,
    readers: Vec<Connection>,
    /// In a forked child: the parent had a transaction open at the fork.
    inherited_transaction: bool,
}

struct Inner {
    db_name: Option<String>,
    memory: bool,
    lock_timeout: Duration,
    pool: Mutex<Pool>,
    /// The raw handles of the connections leased out, so that a forked
    /// child can tell whether it inherited an open transaction (see
    /// `Inner::adopt_after_fork`).
    leased: Mutex<Vec<usize>>,
    writer_returned: Condvar,
    journal_mode_wal: AtomicBool,
    changed_to_wal: AtomicBool,
    /// Writes waiting to be committed together (see `group_commit`).
    commit_queue: CommitQueue,
}

/// A handle on one database's connections; clones share them.
#[derive(Clone)]
pub struct Datastore {
    inner: Arc<Inner>,
}

/// Whether `db_name` names an in-memory database (`:memory:`, or a URI
/// with `mode=memory`), by the reference library's rule.
pub fn is_memory_name(db_name: &str) -> bool {
    db_name.contains(":memory:") || db_name.contains("mode=memory")
}

/// The wait for locks: the configured seconds, with zero or no value
/// meaning the default (the reference treats zero the same way).
pub fn lock_timeout(seconds: Option<f64>) -> Duration {
    match seconds {
        // Capped so a deadline computed from it cannot overflow.
        Some(s) if s > 0.0 => Duration::from_secs_f64(s.min(1e9)),
        Some(s) if s < 0.0 => Duration::ZERO,
        _ => Duration::from_secs_f64(DEFAULT_LOCK_TIMEOUT_SECS),
    }
}

impl Datastore {
    /// Connects lazily: nothing is opened until the first lease.
    pub fn new(db_name: Option<String>, lock_timeout_secs: Option<f64>) -> Self {
        let memory = db_name.as_deref().is_some_and(is_memory_name);
        Datastore {
            inner: Arc::new(Inner {
                db_name,
                memory,
                lock_timeout: lock_timeout(lock_timeout_secs),
                pool: Mutex::new(Pool {
                    epoch: process_epoch(),
                    generation: 0,
                    writer: Writer::Absent,
                    readers: Vec::new(),
                    inherited_transaction: false,
                }),
                leased: Mutex::new(Vec::new()),
                writer_returned: Condvar::new(),
                journal_mode_wal: AtomicBool::new(false),
                changed_to_wal: AtomicBool::new(false),
                commit_queue: CommitQueue::default(),
            }),
        }
    }

    pub(crate) fn commit_queue(&self) -> &CommitQueue {
        &self.inner.commit_queue
    }

    pub fn db_name(&self) -> &str {
        self.inner.db_name.as_deref().unwrap_or("")
    }

    pub fn is_memory(&self) -> bool {
        self.inner.memory
    }

    pub fn lock_timeout(&self) -> Duration {
        self.inner.lock_timeout
    }

    /// Whether a connection found (or put) the file in WAL mode.
    pub fn is_journal_mode_wal(&self) -> bool {
        self.inner.journal_mode_wal.load(Ordering::Relaxed)
    }

    /// Whether this datastore switched the file to WAL mode.
    pub fn journal_mode_was_changed_to_wal(&self) -> bool {
        self.inner.changed_to_wal.load(Ordering::Relaxed)
    }

    /// A connection for `role`, waiting up to the lock timeout for the
    /// writer (or, in memory, the only) connection to be returned.
    pub fn lease(&self, role: Role) -> StoreResult<Lease> {
        let inner = &self.inner;
        let epoch = process_epoch();
        let mut pool = inner.pool.lock();
        inner.adopt_after_fork(&mut pool, epoch);
        let generation = pool.generation;
        if role == Role::Read && !inner.memory {
            let idle = pool.readers.pop();
            drop(pool);
            let conn = match idle {
                Some(conn) => conn,
                None => inner.open(Role::Read)?,
            };
            return Ok(self.wrap(conn, false, generation, epoch));
        }
        if pool.inherited_transaction {
            return Err(StoreError::new(
                ErrorKind::Operational,
                format!(
                    "SQLite database '{}' cannot be written in this process: it was forked \
                     while a transaction on the database was open in the parent, and SQLite's \
                     locks of that transaction are copied into this process, where nothing can \
                     release them; fork outside transactions, or start the process with \
                     'spawn' (reading is not affected)",
                    self.db_name()
                ),
            ));
        }
        let deadline = Instant::now().checked_add(inner.lock_timeout);
        loop {
            match std::mem::replace(&mut pool.writer, Writer::Leased) {
                Writer::Idle(conn) => {
                    return Ok(self.wrap(conn, true, pool.generation, epoch));
                }
                Writer::Absent => {
                    let generation = pool.generation;
                    drop(pool);
                    return match inner.open(Role::Write) {
                        Ok(conn) => Ok(self.wrap(conn, true, generation, epoch)),
                        Err(err) => {
                            let mut pool = inner.pool.lock();
                            if pool.generation == generation && pool.epoch == process_epoch() {
                                pool.writer = Writer::Absent;
                            }
                            drop(pool);
                            inner.writer_returned.notify_one();
                            Err(err)
                        }
                    };
                }
                Writer::Leased => {
                    let timed_out = match deadline {
                        Some(deadline) => inner
                            .writer_returned
                            .wait_until(&mut pool, deadline)
                            .timed_out(),
                        None => {
                            inner.writer_returned.wait(&mut pool);
                            false
                        }
                    };
                    inner.adopt_after_fork(&mut pool, process_epoch());
                    if timed_out && matches!(pool.writer, Writer::Leased) {
                        return Err(StoreError::new(
                            ErrorKind::Operational,
                            format!(
                                "SQLite database '{}' is locked: waited {:.1} s for \
                                 another thread of this process to finish its transaction",
                                self.db_name(),
                                inner.lock_timeout.as_secs_f64()
                            ),
                        ));
                    }
                }
            }
        }
    }

    /// Takes the pool over in a forked child, if this is one; done anyway
    /// by the next lease.
    pub fn adopt_after_fork(&self) {
        let mut pool = self.inner.pool.lock();
        self.inner.adopt_after_fork(&mut pool, process_epoch());
    }

    /// Closes every idle connection; leased ones close when returned. An
    /// in-memory database is gone once its connection is closed.
    pub fn close_all(&self) {
        let (writer, readers) = {
            let mut pool = self.inner.pool.lock();
            self.inner.adopt_after_fork(&mut pool, process_epoch());
            pool.generation += 1;
            let writer = std::mem::replace(&mut pool.writer, Writer::Absent);
            (writer, std::mem::take(&mut pool.readers))
        };
        self.inner.writer_returned.notify_all();
        // Closing touches the file system: done with the pool unlocked.
        drop(writer);
        drop(readers);
    }

    fn wrap(&self, conn: Connection, writer: bool, generation: u64, epoch: u64) -> Lease {
        self.inner.leased.lock().push(raw_handle(&conn));
        Lease {
            store: self.inner.clone(),
            conn: Some(conn),
            writer,
            generation,
            epoch,
        }
    }
}

/// A connection's raw handle, as a number (kept to identify it, and to end
/// its transaction in a forked child).
fn raw_handle(conn: &Connection) -> usize {
    // SAFETY: only the pointer's value is taken.
    unsafe { conn.handle() as usize }
}

impl Inner {
    fn adopt_after_fork(&self, pool: &mut Pool, epoch: u64) {
        if pool.epoch != epoch {
            pool.epoch = epoch;
            pool.generation += 1;
            let inherited = std::mem::take(&mut *self.leased.lock());
            // The parent had a transaction open when it forked. SQLite
            // keeps, per process, which of its connections hold which
            // locks: the child's copy says the parent's connection still
            // holds them, so no connection of the child could write. The
            // child cannot safely end that transaction (rolling its copy
            // back would write to the WAL index the parent shares), so it
            // says so when it would write, instead of waiting out the lock
            // timeout.
            // SAFETY: the handles are of connections still open (their
            // leases forget them, never close them, in another process
            // epoch); in the child no other thread can be using them, and
            // only the transaction flag of the child's copy is read.
            pool.inherited_transaction = inherited.into_iter().any(|handle| unsafe {
                rusqlite::ffi::sqlite3_get_autocommit(handle as *mut rusqlite::ffi::sqlite3) == 0
            });
            if let Writer::Idle(conn) = std::mem::replace(&mut pool.writer, Writer::Absent) {
                std::mem::forget(conn);
            }
            for conn in pool.readers.drain(..) {
                std::mem::forget(conn);
            }
        }
    }

    fn name_for_messages(&self) -> &str {
        self.db_name.as_deref().unwrap_or("")
    }

    fn open(&self, role: Role) -> StoreResult<Connection> {
        let Some(name) = self.db_name.as_deref() else {
            return Err(StoreError::new(
                ErrorKind::Interface,
                "cannot connect to SQLite: no database name was given",
            ));
        };
        let context = format!("cannot open SQLite database '{name}'");
        let fail = |err: rusqlite::Error| {
            let mut e = StoreError::from_sqlite(&context, &err);
            // As in PEP 249 drivers, failing to get a usable connection is
            // an interface error, unless it was only a lock held too long.
            if !StoreError::is_lock_timeout(&err) {
                e.kind = ErrorKind::Interface;
            }
            e
        };
        // NO_MUTEX: a connection is only ever used by its lease holder.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(name, flags).map_err(fail)?;
        conn.busy_timeout(self.lock_timeout).map_err(fail)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if !self.memory {
            self.use_wal(&conn).map_err(fail)?;
            conn.execute_batch(&format!("PRAGMA synchronous={SYNCHRONOUS}"))
                .map_err(fail)?;
            if role == Role::Write {
                conn.execute_batch(&format!(
                    "PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}"
                ))
                .map_err(fail)?;
            }
        }
        Ok(conn)
    }

    fn use_wal(&self, conn: &Connection) -> rusqlite::Result<()> {
        // Reading the mode also reads the file header, so a file that is
        // not a database is refused here, before anything is written.
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            self.journal_mode_wal.store(true, Ordering::Relaxed);
            return Ok(());
        }
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            // A read-only file cannot be switched; it stays readable.
            return Ok(());
        }
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            self.journal_mode_wal.store(true, Ordering::Relaxed);
            self.changed_to_wal.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A connection on loan from a [`Datastore`]; returned when dropped.
pub struct Lease {
    store: Arc<Inner>,
    conn: Option<Connection>,
    writer: bool,
    generation: u64,
    epoch: u64,
}

impl Lease {
    pub fn db_name(&self) -> &str {
        self.store.name_for_messages()
    }

    /// Whether the lease was taken in this process (not inherited
    /// through a fork, when its connection is the parent's).
    pub fn is_of_this_process(&self) -> bool {
        self.epoch == process_epoch()
    }

    pub fn lock_timeout(&self) -> Duration {
        self.store.lock_timeout
    }
}

impl Deref for Lease {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let epoch = process_epoch();
        if self.epoch != epoch {
            // Leased before a fork: the connection is the parent's.
            std::mem::forget(conn);
            return;
        }
        let handle = raw_handle(&conn);
        {
            let mut leased = self.store.leased.lock();
            if let Some(at) = leased.iter().position(|&h| h == handle) {
                leased.swap_remove(at);
            }
        }
        // A transaction left open (a caller's, abandoned) must not leak
        // into the next lease.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let mut pool = self.store.pool.lock();
        self.store.adopt_after_fork(&mut pool, epoch);
        let current = pool.generation == self.generation;
        let spare = if !current {
            Some(conn)
        } else if self.writer {
            pool.writer = Writer::Idle(conn);
            None
        } else if pool.readers.len() < IDLE_READERS {
            pool.readers.push(conn);
            None
        } else {
            Some(conn)
        };
        drop(pool);
        if self.writer {
            self.store.writer_returned.notify_one();
        }
        drop(spare);
    }
}
