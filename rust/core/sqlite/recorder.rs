//! The aggregate, application and process recorders' work on SQLite.
//!
//! The tables are the reference library's, column for column, so a
//! database written by either library is read by the other: events in
//! `(originator_id TEXT, originator_version INTEGER, topic TEXT, state
//! BLOB)` keyed by the first two, the originator id as 32 lowercase hex
//! digits; an application's events numbered by the table's rowid (so an
//! aggregate recorder's table, which is never read as notifications, is
//! `WITHOUT ROWID`); and tracking records in `tracking (application_name,
//! notification_id)`.

use std::collections::HashSet;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{ffi, params, params_from_iter, Connection, Row};

use super::datastore::{Datastore, Lease, Role};
use super::error::{ErrorKind, StoreError, StoreResult};
use crate::core::memory_store::EventQuery;

/// The table of tracking records, shared by the process recorders of a
/// database (the reference library names it so).
pub const TRACKING_TABLE: &str = "tracking";

/// The events tables' columns, and each one's position in the primary key.
const EVENT_COLUMNS: [(&str, i64); 4] = [
    ("originator_id", 1),
    ("originator_version", 2),
    ("topic", 0),
    ("state", 0),
];
const TRACKING_COLUMNS: [(&str, i64); 2] = [("application_name", 1), ("notification_id", 2)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecorderKind {
    Aggregate,
    Application,
    Process,
}

impl RecorderKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "aggregate" => Some(RecorderKind::Aggregate),
            "application" => Some(RecorderKind::Application),
            "process" => Some(RecorderKind::Process),
            _ => None,
        }
    }

    fn numbers_events(self) -> bool {
        self != RecorderKind::Aggregate
    }
}

/// One stored event, as written and as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub originator_id: u128,
    pub originator_version: i64,
    pub topic: String,
    pub state: Vec<u8>,
}

/// A stored event with its notification id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: i64,
    pub event: EventRecord,
}

pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn uuid_hex(id: u128) -> String {
    format!("{id:032x}")
}

fn hyphenated(id: u128) -> String {
    let h = uuid_hex(id);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Reads an originator id as stored: 32 hex digits, hyphens allowed (as
/// `uuid.UUID()` allows them when the reference reads the column).
pub fn parse_uuid_text(text: &str) -> Option<u128> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&digits, 16).ok()
}

pub struct SqliteRecorder {
    store: Datastore,
    table: String,
    kind: RecorderKind,
    insert_sql: String,
    select_notifications_sql: String,
    max_notification_id_sql: String,
    max_tracking_id_sql: String,
    insert_tracking_sql: String,
}

impl SqliteRecorder {
    pub fn new(store: Datastore, table: &str, kind: RecorderKind) -> Self {
        let t = quote_identifier(table);
        let tracking = quote_identifier(TRACKING_TABLE);
        SqliteRecorder {
            insert_sql: format!(
                "INSERT INTO {t} (originator_id, originator_version, topic, state) \
                 VALUES (?1, ?2, ?3, ?4)"
            ),
            select_notifications_sql: format!(
                "SELECT rowid, originator_id, originator_version, topic, state FROM {t} \
                 WHERE rowid >= ?1 ORDER BY rowid LIMIT ?2"
            ),
            max_notification_id_sql: format!("SELECT MAX(rowid) FROM {t}"),
            max_tracking_id_sql: format!(
                "SELECT MAX(notification_id) FROM {tracking} WHERE application_name = ?1"
            ),
            insert_tracking_sql: format!(
                "INSERT INTO {tracking} (application_name, notification_id) VALUES (?1, ?2)"
            ),
            store,
            table: table.to_string(),
            kind,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn kind(&self) -> RecorderKind {
        self.kind
    }

    pub fn datastore(&self) -> &Datastore {
        &self.store
    }

    fn where_table(&self, table: &str) -> String {
        format!(
            "table '{table}' of SQLite database '{}'",
            self.store.db_name()
        )
    }

    fn fail(&self, doing: &str, table: &str, err: &rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&format!("cannot {doing} {}", self.where_table(table)), err)
    }

    /// The statements `create_table` runs by default.
    pub fn create_table_statements(&self) -> Vec<String> {
        let t = quote_identifier(&self.table);
        let rowid = if self.kind.numbers_events() {
            ""
        } else {
            " WITHOUT ROWID"
        };
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS {t} (originator_id TEXT, originator_version INTEGER, \
             topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version)){rowid}"
        )];
        if self.kind == RecorderKind::Process {
            statements.push(format!(
                "CREATE TABLE IF NOT EXISTS {} (application_name text, notification_id int, \
                 PRIMARY KEY (application_name, notification_id)) WITHOUT ROWID",
                quote_identifier(TRACKING_TABLE)
            ));
        }
        statements
    }

    /// Runs the create statements (the default ones when `None`) and checks
    /// that the tables have the shape this recorder reads and writes, all
    /// in one transaction: a table of the wrong shape is reported and
    /// nothing is created.
    pub fn create_table(&self, statements: Option<&[String]>) -> StoreResult<()> {
        let defaults;
        let statements = match statements {
            Some(s) => s,
            None => {
                defaults = self.create_table_statements();
                &defaults
            }
        };
        self.in_write_transaction(|conn| {
            for statement in statements {
                conn.execute_batch(statement)
                    .map_err(|e| self.fail("create", &self.table, &e))?;
            }
            self.check_table(
                conn,
                &self.table,
                &EVENT_COLUMNS,
                self.kind.numbers_events(),
            )?;
            if self.kind == RecorderKind::Process {
                self.check_table(conn, TRACKING_TABLE, &TRACKING_COLUMNS, false)?;
            }
            Ok(())
        })
    }

    fn check_table(
        &self,
        conn: &Connection,
        table: &str,
        expected: &[(&str, i64)],
        needs_rowid: bool,
    ) -> StoreResult<()> {
        let read_fail = |e: rusqlite::Error| self.fail("inspect", table, &e);
        let mut stmt = conn
            .prepare("SELECT name, type, pk FROM pragma_table_info(?1)")
            .map_err(read_fail)?;
        let found = stmt
            .query_map([table], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(read_fail)?;
        if found.is_empty() {
            return Err(StoreError::new(
                ErrorKind::Programming,
                format!(
                    "{} does not exist after creating it",
                    self.where_table(table)
                ),
            ));
        }
        let fits = found.len() == expected.len()
            && found
                .iter()
                .zip(expected)
                .all(|((name, _, pk), (want, want_pk))| {
                    name.eq_ignore_ascii_case(want) && pk == want_pk
                });
        if !fits {
            let has: Vec<String> = found
                .iter()
                .map(|(name, ty, pk)| {
                    let key = if *pk > 0 { " (key)" } else { "" };
                    format!("{name} {ty}{key}").trim_end().to_string()
                })
                .collect();
            let wants: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
            let keys: Vec<&str> = expected
                .iter()
                .filter(|(_, pk)| *pk > 0)
                .map(|(n, _)| *n)
                .collect();
            return Err(StoreError::new(
                ErrorKind::Programming,
                format!(
                    "{} has the wrong shape: it has columns ({}), a recorder needs \
                     ({}) keyed by ({})",
                    self.where_table(table),
                    has.join(", "),
                    wants.join(", "),
                    keys.join(", ")
                ),
            ));
        }
        if needs_rowid {
            let sql = format!("SELECT rowid FROM {} LIMIT 0", quote_identifier(table));
            if conn.prepare(&sql).is_err() {
                return Err(StoreError::new(
                    ErrorKind::Programming,
                    format!(
                        "{} is a WITHOUT ROWID table (an aggregate recorder's?), so it \
                         cannot number notifications",
                        self.where_table(table)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction on the writer
    /// connection, committing only if it succeeds.
    ///
    /// IMMEDIATE takes the database's write lock up front, so a writer
    /// waits (up to the lock timeout) before doing anything, instead of
    /// failing when a read transaction cannot be upgraded; and as the
    /// notification ids are then assigned while the lock is held, they are
    /// committed in increasing order and a reader never skips one.
    fn in_write_transaction<T>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let lease = self.store.lease(Role::Write)?;
        if let Err(err) = lease.execute_batch("BEGIN IMMEDIATE") {
            return Err(self.lock_error("begin a write transaction on", &lease, &err));
        }
        match work(&lease) {
            Ok(value) => match lease.execute_batch("COMMIT") {
                Ok(()) => Ok(value),
                Err(err) => {
                    let _ = lease.execute_batch("ROLLBACK");
                    Err(self.lock_error("commit to", &lease, &err))
                }
            },
            Err(err) => {
                let _ = lease.execute_batch("ROLLBACK");
                Err(err)
            }
        }
    }

    fn lock_error(&self, doing: &str, lease: &Lease, err: &rusqlite::Error) -> StoreError {
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

    /// Writes the events, and for a process recorder the tracking record,
    /// in one transaction; returns the events' notification ids (none for
    /// an aggregate recorder). A conflicting event, or a tracking record
    /// that does not advance its application's position, refuses the
    /// whole call. Other recorders ignore the tracking record, as the
    /// reference library's do.
    pub fn insert_events(
        &self,
        events: &[EventRecord],
        tracking: Option<(&str, i64)>,
    ) -> StoreResult<Vec<i64>> {
        let tracking = tracking.filter(|_| self.kind == RecorderKind::Process);
        if events.len() > 1 {
            let mut seen = HashSet::with_capacity(events.len());
            for e in events {
                if !seen.insert((e.originator_id, e.originator_version)) {
                    return Err(StoreError::new(
                        ErrorKind::Integrity,
                        format!(
                            "two events at version {} of aggregate {} in one insert into {}",
                            e.originator_version,
                            hyphenated(e.originator_id),
                            self.where_table(&self.table)
                        ),
                    ));
                }
            }
        }
        self.in_write_transaction(|conn| {
            if let Some((name, id)) = tracking {
                self.record_tracking(conn, name, id)?;
            }
            self.write_events(conn, events)
        })
    }

    fn record_tracking(&self, conn: &Connection, name: &str, id: i64) -> StoreResult<()> {
        let last = self.read_max_tracking_id(conn, name)?;
        if id <= last {
            return Err(StoreError::new(
                ErrorKind::Integrity,
                format!(
                    "notification {id} of application '{name}' is already processed \
                     (last tracked id is {last}) according to {}",
                    self.where_table(TRACKING_TABLE)
                ),
            ));
        }
        conn.prepare_cached(&self.insert_tracking_sql)
            .and_then(|mut s| s.execute(params![name, id]))
            .map_err(|e| self.fail("insert into", TRACKING_TABLE, &e))?;
        Ok(())
    }

    fn write_events(&self, conn: &Connection, events: &[EventRecord]) -> StoreResult<Vec<i64>> {
        // Prepared even for no events, so a missing table is reported.
        let mut stmt = conn
            .prepare_cached(&self.insert_sql)
            .map_err(|e| self.fail("insert into", &self.table, &e))?;
        let mut ids = Vec::with_capacity(if self.kind.numbers_events() {
            events.len()
        } else {
            0
        });
        for e in events {
            let hex = uuid_hex(e.originator_id);
            let written = stmt.execute(params![hex, e.originator_version, e.topic, e.state]);
            match written {
                Ok(_) => {
                    if self.kind.numbers_events() {
                        ids.push(conn.last_insert_rowid());
                    }
                }
                Err(err) if is_primary_key_conflict(&err) => {
                    return Err(StoreError::new(
                        ErrorKind::Integrity,
                        format!(
                            "event at version {} of aggregate {} is already recorded in {}",
                            e.originator_version,
                            hyphenated(e.originator_id),
                            self.where_table(&self.table)
                        ),
                    ));
                }
                Err(err) => return Err(self.fail("insert into", &self.table, &err)),
            }
        }
        Ok(ids)
    }

    /// One aggregate's events, filtered and ordered by version.
    pub fn select_events(
        &self,
        originator_id: u128,
        q: EventQuery,
    ) -> StoreResult<Vec<EventRecord>> {
        let mut sql = format!(
            "SELECT originator_version, topic, state FROM {} WHERE originator_id = ?",
            quote_identifier(&self.table)
        );
        let mut args = vec![Value::Text(uuid_hex(originator_id))];
        if let Some(gt) = q.gt {
            sql.push_str(" AND originator_version > ?");
            args.push(Value::Integer(gt));
        }
        if let Some(lte) = q.lte {
            sql.push_str(" AND originator_version <= ?");
            args.push(Value::Integer(lte));
        }
        sql.push_str(if q.desc {
            " ORDER BY originator_version DESC"
        } else {
            " ORDER BY originator_version ASC"
        });
        if let Some(limit) = q.limit {
            sql.push_str(" LIMIT ?");
            args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        let lease = self.store.lease(Role::Read)?;
        let fail = |e: rusqlite::Error| self.fail("select from", &self.table, &e);
        let mut stmt = lease.prepare_cached(&sql).map_err(fail)?;
        let mut rows = stmt.query(params_from_iter(args)).map_err(fail)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let originator_version = row.get::<_, i64>(0).map_err(fail)?;
            events.push(EventRecord {
                originator_id,
                originator_version,
                topic: self.read_topic(row, 1, originator_id, originator_version)?,
                state: self.read_state(row, 2, originator_id, originator_version)?,
            });
        }
        Ok(events)
    }

    /// Up to `limit` notifications with ids from `start` (ids below 1 read
    /// from the first).
    pub fn select_notifications(
        &self,
        start: i64,
        limit: usize,
    ) -> StoreResult<Vec<NotificationRecord>> {
        self.require_numbered("select notifications")?;
        let lease = self.store.lease(Role::Read)?;
        let fail = |e: rusqlite::Error| self.fail("select notifications from", &self.table, &e);
        let mut stmt = lease
            .prepare_cached(&self.select_notifications_sql)
            .map_err(fail)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![start, limit]).map_err(fail)?;
        let mut found = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let id = row.get::<_, i64>(0).map_err(fail)?;
            let originator_version = row.get::<_, i64>(2).map_err(fail)?;
            let originator_id = match row.get_ref(1).map_err(fail)? {
                ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(parse_uuid_text),
                _ => None,
            }
            .ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Data,
                    format!(
                        "notification {id} in {} has an originator_id that is not a UUID",
                        self.where_table(&self.table)
                    ),
                )
            })?;
            found.push(NotificationRecord {
                id,
                event: EventRecord {
                    originator_id,
                    originator_version,
                    topic: self.read_topic(row, 3, originator_id, originator_version)?,
                    state: self.read_state(row, 4, originator_id, originator_version)?,
                },
            });
        }
        Ok(found)
    }

    pub fn max_notification_id(&self) -> StoreResult<i64> {
        self.require_numbered("read notification ids")?;
        let lease = self.store.lease(Role::Read)?;
        lease
            .prepare_cached(&self.max_notification_id_sql)
            .and_then(|mut s| s.query_row([], |r| r.get::<_, Option<i64>>(0)))
            .map(|max| max.unwrap_or(0))
            .map_err(|e| self.fail("read notification ids from", &self.table, &e))
    }

    pub fn max_tracking_id(&self, application_name: &str) -> StoreResult<i64> {
        if self.kind != RecorderKind::Process {
            return Err(StoreError::new(
                ErrorKind::Programming,
                format!(
                    "only a process recorder keeps tracking records (not the one for {})",
                    self.where_table(&self.table)
                ),
            ));
        }
        let lease = self.store.lease(Role::Read)?;
        self.read_max_tracking_id(&lease, application_name)
    }

    fn read_max_tracking_id(&self, conn: &Connection, application_name: &str) -> StoreResult<i64> {
        conn.prepare_cached(&self.max_tracking_id_sql)
            .and_then(|mut s| s.query_row([application_name], |r| r.get::<_, Option<i64>>(0)))
            .map(|max| max.unwrap_or(0))
            .map_err(|e| self.fail("read", TRACKING_TABLE, &e))
    }

    fn require_numbered(&self, doing: &str) -> StoreResult<()> {
        if self.kind.numbers_events() {
            return Ok(());
        }
        Err(StoreError::new(
            ErrorKind::Programming,
            format!(
                "cannot {doing}: an aggregate recorder does not number its events ({})",
                self.where_table(&self.table)
            ),
        ))
    }

    fn bad_column(&self, column: &str, id: u128, version: i64) -> StoreError {
        StoreError::new(
            ErrorKind::Data,
            format!(
                "the {column} of event {version} of aggregate {} in {} is not {}",
                hyphenated(id),
                self.where_table(&self.table),
                if column == "topic" { "text" } else { "bytes" }
            ),
        )
    }

    fn read_topic(&self, row: &Row<'_>, i: usize, id: u128, version: i64) -> StoreResult<String> {
        match row.get_ref(i) {
            Ok(ValueRef::Text(t)) => {
                String::from_utf8(t.to_vec()).map_err(|_| self.bad_column("topic", id, version))
            }
            _ => Err(self.bad_column("topic", id, version)),
        }
    }

    fn read_state(&self, row: &Row<'_>, i: usize, id: u128, version: i64) -> StoreResult<Vec<u8>> {
        match row.get_ref(i) {
            Ok(ValueRef::Blob(b)) | Ok(ValueRef::Text(b)) => Ok(b.to_vec()),
            _ => Err(self.bad_column("state", id, version)),
        }
    }
}

fn is_primary_key_conflict(err: &rusqlite::Error) -> bool {
    err.sqlite_error()
        .is_some_and(|e| e.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}
