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

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;
use rusqlite::types::ValueRef;
use rusqlite::{ffi, params, Connection, Row};

use super::datastore::{Datastore, Role};
use super::error::{ErrorKind, StoreError, StoreResult};
use super::group_commit::lock_error;
use crate::core::memory_store::EventQuery;
use crate::core::segment::SegmentFilter;
use crate::core::tracking::TrackingRecord;

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

/// The stored form of an originator id: 32 lowercase hex digits.
pub fn uuid_hex(id: u128) -> String {
    uuid_hex_digits(id).iter().map(|&d| char::from(d)).collect()
}

/// [`uuid_hex`] on the stack: it keys every read of an aggregate.
fn uuid_hex_digits(id: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = DIGITS[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    out
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
pub fn parse_uuid_text(text: &[u8]) -> Option<u128> {
    // The form both libraries write, read without allocating: every
    // notification read goes through here.
    if let Ok(digits) = <&[u8; 32]>::try_from(text) {
        let (high, low) = digits.split_at(16);
        return Some((u128::from(hex_u64(high)?) << 64) | u128::from(hex_u64(low)?));
    }
    let mut value = 0u128;
    let mut count = 0;
    for &b in text.iter().filter(|b| **b != b'-') {
        count += 1;
        if count > 32 {
            return None;
        }
        value = (value << 4) | u128::from(hex_digit(b)?);
    }
    (count == 32).then_some(value)
}

fn hex_u64(digits: &[u8]) -> Option<u64> {
    // Branch-free: a table lookup per digit, one check at the end.
    let mut value = 0u64;
    let mut bad = 0u8;
    for &b in digits {
        let d = HEX_VALUES[usize::from(b)];
        bad |= d;
        value = (value << 4) | u64::from(d & 0xf);
    }
    (bad & 0x80 == 0).then_some(value)
}

fn hex_digit(b: u8) -> Option<u8> {
    let d = HEX_VALUES[usize::from(b)];
    (d & 0x80 == 0).then_some(d)
}

/// Each byte's value as a hex digit, or 0xff for bytes that are not one.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Events read by one call, laid out to be turned into Python objects in
/// bulk: each distinct topic once (topics are few and repeat), and every
/// state in one buffer, rather than two allocations per event.
#[derive(Debug, Default)]
pub struct EventRows {
    pub rows: Vec<EventRow>,
    pub topics: Vec<String>,
    pub states: Vec<u8>,
    /// Each topic's index in `topics`, while rows are added.
    seen: HashMap<String, usize>,
    /// Notifications only: the error of the row the read stopped at, when
    /// the rows before it were good (they are given; the bad row is next).
    pub stopped_by: Option<StoreError>,
}

/// One event of an [`EventRows`]; its topic and state are found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRow {
    /// The notification id (0 for an aggregate's events read by version).
    pub id: i64,
    pub originator_id: u128,
    pub originator_version: i64,
    topic: usize,
    state_start: usize,
    state_end: usize,
}

impl EventRows {
    pub fn topic(&self, row: &EventRow) -> &str {
        &self.topics[row.topic]
    }

    /// The index of the row's topic in `topics`.
    pub fn topic_index(&self, row: &EventRow) -> usize {
        row.topic
    }

    pub fn state(&self, row: &EventRow) -> &[u8] {
        &self.states[row.state_start..row.state_end]
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn into_records(self) -> Vec<EventRecord> {
        self.rows
            .iter()
            .map(|row| EventRecord {
                originator_id: row.originator_id,
                originator_version: row.originator_version,
                topic: self.topic(row).to_string(),
                state: self.state(row).to_vec(),
            })
            .collect()
    }

    fn add_topic(&mut self, topic: &str) -> usize {
        // Runs of one topic are the common case: checked before hashing.
        if let Some(last) = self.rows.last() {
            if self.topics[last.topic] == topic {
                return last.topic;
            }
        }
        if let Some(&i) = self.seen.get(topic) {
            return i;
        }
        self.topics.push(topic.to_string());
        self.seen.insert(topic.to_string(), self.topics.len() - 1);
        self.topics.len() - 1
    }
}

pub struct SqliteRecorder {
    store: Datastore,
    table: String,
    kind: RecorderKind,
    insert_sql: String,
    /// `select_events`' eight shapes, indexed by [`events_query_shape`].
    select_events_sql: Vec<String>,
    select_notifications_sql: String,
    max_notification_id_sql: String,
    max_tracking_id_sql: String,
    insert_tracking_sql: String,
    /// The lease a worker holds on this follower, checked with the
    /// position in every tracking write (see [`LeaseFence`]).
    fence: Mutex<Option<LeaseFence>>,
}

/// A worker's claim to be the one active instance of a follower: the
/// lease row it holds (`name` in `table`) at `epoch`. A tracking write
/// commits only while the row still has that epoch, so a worker that was
/// paused past its lease, and replaced, cannot commit when it resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFence {
    pub table: String,
    pub name: String,
    pub epoch: i64,
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
            select_events_sql: (0..8).map(|shape| select_events_sql(&t, shape)).collect(),
            // No LIMIT clause: the reader stops stepping after `limit` rows.
            // SQLite plans with the value bound to a LIMIT parameter, so
            // binding one marks the statement to be compiled again at its
            // next step, which cost more than reading a hundred rows.
            select_notifications_sql: format!(
                "SELECT rowid, originator_id, originator_version, topic, state FROM {t} \
                 WHERE rowid >= ?1 ORDER BY rowid"
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
            fence: Mutex::new(None),
        }
    }

    /// From now on, every tracking write also checks `fence` (or, with
    /// None, no lease at all).
    pub fn set_fence(&self, fence: Option<LeaseFence>) {
        *self.fence.lock() = fence;
    }

    pub fn fence(&self) -> Option<LeaseFence> {
        self.fence.lock().clone()
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
            return Err(lock_error("begin a write transaction on", &lease, &err));
        }
        match work(&lease) {
            Ok(value) => match lease.execute_batch("COMMIT") {
                Ok(()) => Ok(value),
                Err(err) => {
                    let _ = lease.execute_batch("ROLLBACK");
                    Err(lock_error("commit to", &lease, &err))
                }
            },
            Err(err) => {
                let _ = lease.execute_batch("ROLLBACK");
                Err(err)
            }
        }
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
        tracking: Option<TrackingRecord<'_>>,
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
        self.store.write_grouped(&mut |conn| {
            if let Some(record) = tracking {
                self.record_tracking(conn, record)?;
            }
            self.write_events(conn, events)
        })
    }

    /// The position check, inside the write transaction (`BEGIN
    /// IMMEDIATE`: no other writer between the read and the insert).
    fn record_tracking(&self, conn: &Connection, record: TrackingRecord<'_>) -> StoreResult<()> {
        let (name, id) = (record.application_name, record.notification_id);
        if let Some(fence) = self.fence() {
            self.check_fence(conn, &fence)?;
        }
        let last = self.read_max_tracking_id(conn, name)?;
        if let Err(refused) = record.check(last) {
            return Err(StoreError::new(
                ErrorKind::TrackingRefused,
                format!(
                    "{refused} according to {}",
                    self.where_table(TRACKING_TABLE)
                ),
            ));
        }
        conn.prepare_cached(&self.insert_tracking_sql)
            .and_then(|mut s| s.execute(params![name, id]))
            .map_err(|e| self.fail("insert into", TRACKING_TABLE, &e))?;
        Ok(())
    }

    fn check_fence(&self, conn: &Connection, fence: &LeaseFence) -> StoreResult<()> {
        let sql = format!(
            "SELECT epoch FROM {} WHERE name = ?1",
            quote_identifier(&fence.table)
        );
        let found: Option<i64> = conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                let mut rows = s.query(params![fence.name])?;
                match rows.next()? {
                    Some(row) => row.get(0).map(Some),
                    None => Ok(None),
                }
            })
            .map_err(|e| self.fail("read the lease in", &fence.table, &e))?;
        if found == Some(fence.epoch) {
            return Ok(());
        }
        let now = match found {
            Some(epoch) => format!("is at epoch {epoch}"),
            None => "is not held".to_string(),
        };
        Err(StoreError::new(
            ErrorKind::LeaseLost,
            format!(
                "the lease of '{}' {now}, not at this worker's epoch {}: another worker took it \
                 over, so nothing was recorded ({})",
                fence.name,
                fence.epoch,
                self.where_table(&fence.table)
            ),
        ))
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
            let hex = uuid_hex_digits(e.originator_id);
            let hex = std::str::from_utf8(&hex).expect("hex digits are ASCII");
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
        self.select_event_rows(originator_id, q)
            .map(EventRows::into_records)
    }

    /// [`Self::select_events`], in the layout made for bulk conversion.
    pub fn select_event_rows(&self, originator_id: u128, q: EventQuery) -> StoreResult<EventRows> {
        let sql = &self.select_events_sql[events_query_shape(&q)];
        let mut args: [i64; 2] = [0; 2];
        let mut n = 0;
        for bound in [q.gt, q.lte].into_iter().flatten() {
            args[n] = bound;
            n += 1;
        }
        let lease = self.store.lease(Role::Read)?;
        let fail = |e: rusqlite::Error| self.fail("select from", &self.table, &e);
        let mut stmt = lease.prepare_cached(sql).map_err(fail)?;
        let hex = uuid_hex_digits(originator_id);
        let hex = std::str::from_utf8(&hex).expect("hex digits are ASCII");
        stmt.raw_bind_parameter(1, hex).map_err(fail)?;
        for (i, arg) in args[..n].iter().enumerate() {
            stmt.raw_bind_parameter(i + 2, arg).map_err(fail)?;
        }
        let mut rows = stmt.raw_query();
        let mut found = EventRows::default();
        let limit = q.limit.unwrap_or(usize::MAX);
        while found.len() < limit {
            let Some(row) = rows.next().map_err(fail)? else {
                break;
            };
            let originator_version = row.get::<_, i64>(0).map_err(fail)?;
            self.push_row(&mut found, row, 1, 0, originator_id, originator_version)?;
        }
        Ok(found)
    }

    /// Up to `limit` notifications with ids from `start` (ids below 1 read
    /// from the first).
    pub fn select_notifications(
        &self,
        start: i64,
        limit: usize,
    ) -> StoreResult<Vec<NotificationRecord>> {
        let found = self.select_notification_rows(start, limit)?;
        let ids: Vec<i64> = found.rows.iter().map(|r| r.id).collect();
        Ok(ids
            .into_iter()
            .zip(found.into_records())
            .map(|(id, event)| NotificationRecord { id, event })
            .collect())
    }

    /// [`Self::select_notifications`], in the layout made for bulk
    /// conversion.
    pub fn select_notification_rows(&self, start: i64, limit: usize) -> StoreResult<EventRows> {
        self.require_numbered("select notifications")?;
        let lease = self.store.lease(Role::Read)?;
        let fail = |e: rusqlite::Error| self.fail("select notifications from", &self.table, &e);
        let mut stmt = lease
            .prepare_cached(&self.select_notifications_sql)
            .map_err(fail)?;
        stmt.raw_bind_parameter(1, start).map_err(fail)?;
        let mut rows = stmt.raw_query();
        let mut found = EventRows::default();
        while found.len() < limit {
            let Some(row) = rows.next().map_err(fail)? else {
                break;
            };
            let id = row.get::<_, i64>(0).map_err(fail)?;
            let read = self.notification_row(&mut found, row, id);
            match read {
                Ok(()) => {}
                // The rows before a bad one are good: they are given, with
                // the bad row's error to raise once they are processed.
                Err(error) if !found.is_empty() => {
                    found.stopped_by = Some(error.at_notification(id));
                    break;
                }
                Err(error) => return Err(error.at_notification(id)),
            }
        }
        Ok(found)
    }

    /// The notifications of `segment` among the `scan` rows from `start`,
    /// and the id of the last row scanned (`start - 1` when none was).
    pub fn select_segment_rows(
        &self,
        start: i64,
        scan: usize,
        segment: SegmentFilter,
    ) -> StoreResult<(EventRows, i64)> {
        self.require_numbered("select notifications")?;
        let lease = self.store.lease(Role::Read)?;
        let fail = |e: rusqlite::Error| self.fail("select notifications from", &self.table, &e);
        let mut stmt = lease
            .prepare_cached(&self.select_notifications_sql)
            .map_err(fail)?;
        stmt.raw_bind_parameter(1, start.max(1)).map_err(fail)?;
        let mut rows = stmt.raw_query();
        let mut found = EventRows::default();
        let mut upto = start.max(1) - 1;
        for _ in 0..scan {
            let Some(row) = rows.next().map_err(fail)? else {
                break;
            };
            let id = row.get::<_, i64>(0).map_err(fail)?;
            // A row whose originator id cannot be read is read in full
            // below, which says what is wrong with it.
            let mine = match row.get_ref(1) {
                Ok(ValueRef::Text(text)) => parse_uuid_text(text).is_none_or(|u| segment.holds(u)),
                _ => true,
            };
            if mine {
                match self.notification_row(&mut found, row, id) {
                    Ok(()) => {}
                    Err(error) if !found.is_empty() => {
                        found.stopped_by = Some(error.at_notification(id));
                        break;
                    }
                    Err(error) => return Err(error.at_notification(id)),
                }
            }
            upto = id;
        }
        Ok((found, upto))
    }

    /// Appends notification `id`'s row, or says which of its columns is
    /// not what the table's shape promises.
    fn notification_row(&self, found: &mut EventRows, row: &Row<'_>, id: i64) -> StoreResult<()> {
        let bad = |column: &str, expected: &str, got: Option<ValueRef<'_>>| {
            let got = match got {
                Some(ValueRef::Null) => "NULL",
                Some(ValueRef::Integer(_)) => "an integer",
                Some(ValueRef::Real(_)) => "a real",
                Some(ValueRef::Text(_)) => "text",
                Some(ValueRef::Blob(_)) => "a blob",
                None => "unreadable",
            };
            StoreError::new(
                ErrorKind::Data,
                format!(
                    "notification {id} in {}: its {column} is {got}, not {expected}",
                    self.where_table(&self.table)
                ),
            )
        };
        let originator_id = match row.get_ref(1).ok() {
            Some(ValueRef::Text(t)) => parse_uuid_text(t)
                .ok_or_else(|| bad("originator_id", "a UUID", Some(ValueRef::Text(t))))?,
            other => return Err(bad("originator_id", "a UUID", other)),
        };
        let originator_version = match row.get_ref(2).ok() {
            Some(ValueRef::Integer(v)) => v,
            other => return Err(bad("originator_version", "an integer", other)),
        };
        match row.get_ref(3).ok() {
            Some(ValueRef::Text(t)) if std::str::from_utf8(t).is_ok() => {}
            other => return Err(bad("topic", "text", other)),
        }
        match row.get_ref(4).ok() {
            Some(ValueRef::Blob(_)) | Some(ValueRef::Text(_)) => {}
            other => return Err(bad("state", "bytes", other)),
        }
        self.push_row(found, row, 3, id, originator_id, originator_version)
    }

    /// Appends the row whose topic and state are at columns `first` and
    /// `first + 1`.
    fn push_row(
        &self,
        found: &mut EventRows,
        row: &Row<'_>,
        first: usize,
        id: i64,
        originator_id: u128,
        originator_version: i64,
    ) -> StoreResult<()> {
        let topic = match row.get_ref(first) {
            Ok(ValueRef::Text(t)) => std::str::from_utf8(t).ok(),
            _ => None,
        }
        .ok_or_else(|| self.bad_column("topic", originator_id, originator_version))?;
        let topic = found.add_topic(topic);
        let state = match row.get_ref(first + 1) {
            Ok(ValueRef::Blob(b)) | Ok(ValueRef::Text(b)) => b,
            _ => return Err(self.bad_column("state", originator_id, originator_version)),
        };
        let state_start = found.states.len();
        found.states.extend_from_slice(state);
        found.rows.push(EventRow {
            id,
            originator_id,
            originator_version,
            topic,
            state_start,
            state_end: found.states.len(),
        });
        Ok(())
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
}

/// Which of `select_events`' statements serves `q`: one per combination of
/// the optional bounds and the order. The limit is not part of it (see
/// `select_notifications_sql`).
fn events_query_shape(q: &EventQuery) -> usize {
    usize::from(q.gt.is_some()) | usize::from(q.lte.is_some()) << 1 | usize::from(q.desc) << 2
}

fn select_events_sql(table: &str, shape: usize) -> String {
    let mut sql =
        format!("SELECT originator_version, topic, state FROM {table} WHERE originator_id = ?1");
    let mut next = 2;
    if shape & 1 != 0 {
        sql.push_str(&format!(" AND originator_version > ?{next}"));
        next += 1;
    }
    if shape & 2 != 0 {
        sql.push_str(&format!(" AND originator_version <= ?{next}"));
    }
    sql.push_str(if shape & 4 != 0 {
        " ORDER BY originator_version DESC"
    } else {
        " ORDER BY originator_version ASC"
    });
    sql
}

fn is_primary_key_conflict(err: &rusqlite::Error) -> bool {
    err.sqlite_error()
        .is_some_and(|e| e.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}
