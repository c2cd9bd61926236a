use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::*;
use crate::core::memory_store::EventQuery;

/// A fresh directory under the system's temporary directory, removed
/// when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "esrs-sqlite-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn db(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ev(id: u128, version: i64) -> EventRecord {
    EventRecord {
        originator_id: id,
        originator_version: version,
        topic: format!("topic{version}"),
        state: vec![version as u8, 0, 255],
    }
}

fn recorder(db: &str, kind: RecorderKind) -> SqliteRecorder {
    let r = SqliteRecorder::new(Datastore::new(Some(db.into()), None), "stored_events", kind);
    r.create_table(None).unwrap();
    r
}

fn all(r: &SqliteRecorder, id: u128) -> Vec<i64> {
    r.select_events(id, EventQuery::default())
        .unwrap()
        .iter()
        .map(|e| e.originator_version)
        .collect()
}

#[test]
fn insert_select_filters_and_notifications() {
    let r = recorder(":memory:", RecorderKind::Application);
    assert_eq!(r.max_notification_id().unwrap(), 0);
    assert_eq!(
        r.insert_events(&[ev(1, 1), ev(1, 2), ev(1, 3)], None)
            .unwrap(),
        vec![1, 2, 3]
    );
    assert_eq!(r.insert_events(&[ev(2, 1)], None).unwrap(), vec![4]);
    assert_eq!(r.insert_events(&[], None).unwrap(), Vec::<i64>::new());
    assert_eq!(all(&r, 1), vec![1, 2, 3]);
    let q = |gt, lte, desc, limit| EventQuery {
        gt,
        lte,
        desc,
        limit,
    };
    let versions = |q| -> Vec<i64> {
        r.select_events(1, q)
            .unwrap()
            .iter()
            .map(|e| e.originator_version)
            .collect()
    };
    assert_eq!(versions(q(Some(1), None, false, None)), vec![2, 3]);
    assert_eq!(versions(q(None, Some(2), true, None)), vec![2, 1]);
    assert_eq!(versions(q(None, None, true, Some(1))), vec![3]);
    assert_eq!(
        versions(q(Some(2), Some(2), false, None)),
        Vec::<i64>::new()
    );
    assert_eq!(
        r.select_events(1, EventQuery::default()).unwrap()[0],
        ev(1, 1)
    );

    let ids = |start, limit| -> Vec<i64> {
        r.select_notifications(start, limit)
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect()
    };
    assert_eq!(ids(1, 10), vec![1, 2, 3, 4]);
    assert_eq!(
        ids(-5, 2),
        vec![1, 2],
        "a start below 1 reads from the first"
    );
    assert_eq!(ids(3, 10), vec![3, 4]);
    assert_eq!(ids(5, 10), Vec::<i64>::new());
    assert_eq!(r.select_notifications(4, 1).unwrap()[0].event, ev(2, 1));
    assert_eq!(r.max_notification_id().unwrap(), 4);
}

#[test]
fn conflicts_write_nothing_and_name_the_event() {
    let r = recorder(":memory:", RecorderKind::Application);
    r.insert_events(&[ev(7, 1)], None).unwrap();
    let err = r.insert_events(&[ev(8, 1), ev(7, 1)], None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Integrity);
    assert!(
        err.message
            .contains("version 1 of aggregate 00000000-0000-0000-0000-000000000007"),
        "{}",
        err.message
    );
    assert!(err.message.contains("'stored_events'"), "{}", err.message);
    let err = r.insert_events(&[ev(9, 1), ev(9, 1)], None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Integrity);
    assert!(all(&r, 8).is_empty() && all(&r, 9).is_empty());
    assert_eq!(r.max_notification_id().unwrap(), 1);
    assert_eq!(r.insert_events(&[ev(8, 1)], None).unwrap(), vec![2]);
}

#[test]
fn tracking_advances_with_the_events_or_not_at_all() {
    let r = recorder(":memory:", RecorderKind::Process);
    assert_eq!(r.max_tracking_id("up").unwrap(), 0);
    r.insert_events(&[ev(1, 1)], Some(("up", 3).into()))
        .unwrap();
    assert_eq!(r.max_tracking_id("up").unwrap(), 3);
    for stale in [3, 2] {
        let err = r
            .insert_events(&[ev(1, 2)], Some(("up", stale).into()))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TrackingRefused);
        assert!(err.message.contains("already processed"), "{}", err.message);
    }
    assert_eq!(all(&r, 1), vec![1]);
    // A conflicting event refuses the tracking record too.
    assert!(r
        .insert_events(&[ev(1, 1)], Some(("up", 4).into()))
        .is_err());
    assert_eq!(r.max_tracking_id("up").unwrap(), 3);
    r.insert_events(&[], Some(("up", 4).into())).unwrap();
    r.insert_events(&[ev(1, 2)], Some(("other", 1).into()))
        .unwrap();
    assert_eq!(r.max_tracking_id("up").unwrap(), 4);
    assert_eq!(r.max_tracking_id("other").unwrap(), 1);
}

#[test]
fn a_batch_overlapping_a_recorded_one_is_refused_whole() {
    let r = recorder(":memory:", RecorderKind::Process);
    // One instance records 1..=5 from position 0.
    r.insert_events(&[ev(1, 1)], Some(("up", 5, 0).into()))
        .unwrap();
    // The other read 1..=10 from position 0 too.
    let err = r
        .insert_events(&[ev(2, 1), ev(3, 1)], Some(("up", 10, 0).into()))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::TrackingRefused);
    assert!(
        err.message.contains("processed from position 0"),
        "{}",
        err.message
    );
    assert_eq!(
        all(&r, 1),
        vec![1],
        "nothing of the refused batch is written"
    );
    assert_eq!(r.max_tracking_id("up").unwrap(), 5);
    r.insert_events(&[ev(2, 1)], Some(("up", 10, 5).into()))
        .unwrap();
    assert_eq!(r.max_tracking_id("up").unwrap(), 10);
}

#[test]
fn aggregate_recorder_does_not_number_events() {
    let r = recorder(":memory:", RecorderKind::Aggregate);
    assert!(r
        .insert_events(&[ev(1, 1), ev(1, 2)], Some(("x", 1).into()))
        .unwrap()
        .is_empty());
    assert_eq!(all(&r, 1), vec![1, 2]);
    assert_eq!(
        r.select_notifications(1, 1).unwrap_err().kind,
        ErrorKind::Programming
    );
    assert_eq!(
        r.max_tracking_id("x").unwrap_err().kind,
        ErrorKind::Programming
    );
}

#[test]
fn missing_table_is_an_operational_error() {
    let store = Datastore::new(Some(":memory:".into()), None);
    let r = SqliteRecorder::new(store, "stored_events", RecorderKind::Process);
    for err in [
        r.insert_events(&[], None).unwrap_err(),
        r.select_events(1, EventQuery::default()).unwrap_err(),
        r.select_notifications(1, 1).unwrap_err(),
        r.max_notification_id().unwrap_err(),
        r.max_tracking_id("x").unwrap_err(),
    ] {
        assert_eq!(err.kind, ErrorKind::Operational, "{}", err.message);
        assert!(err.message.contains("no such table"), "{}", err.message);
    }
}

#[test]
fn file_database_uses_wal_and_is_shared_between_datastores() {
    let scratch = Scratch::new();
    let path = scratch.db("events.db");
    let store = Datastore::new(Some(format!("file:{path}")), None);
    let r = SqliteRecorder::new(store.clone(), "stored_events", RecorderKind::Application);
    r.create_table(None).unwrap();
    assert!(store.is_journal_mode_wal() && store.journal_mode_was_changed_to_wal());
    r.insert_events(&[ev(1, 1)], None).unwrap();

    let other = Datastore::new(Some(path.clone()), Some(1.0));
    let r2 = SqliteRecorder::new(other.clone(), "stored_events", RecorderKind::Application);
    assert_eq!(r2.max_notification_id().unwrap(), 1);
    assert!(other.is_journal_mode_wal() && !other.journal_mode_was_changed_to_wal());
    r2.insert_events(&[ev(1, 2)], None).unwrap();
    assert_eq!(all(&r, 1), vec![1, 2]);

    for role in [Role::Read, Role::Write] {
        let lease = store.lease(role).unwrap();
        let sync: i64 = lease
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
    }
}

/// The reference library's tables, created with its statements, and
/// rows as it writes them.
#[test]
fn reads_and_writes_tables_made_by_the_reference_library() {
    let scratch = Scratch::new();
    let path = scratch.db("reference.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, \
             originator_version INTEGER, topic TEXT, state BLOB, PRIMARY KEY \
             (originator_id, originator_version));
             CREATE TABLE IF NOT EXISTS tracking (application_name text, \
             notification_id int, PRIMARY KEY (application_name, notification_id)) \
             WITHOUT ROWID;
             INSERT INTO stored_events VALUES ('000000000000000000000000000000ab', 0, 't', x'0102');
             INSERT INTO tracking VALUES ('up', 5);",
        )
        .unwrap();
    }
    let r = recorder(&path, RecorderKind::Process);
    let n = r.select_notifications(0, 10).unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].event.originator_id, 0xab);
    assert_eq!(n[0].event.state, vec![1, 2]);
    assert_eq!(r.max_tracking_id("up").unwrap(), 5);
    assert_eq!(
        r.insert_events(&[ev(0xab, 1)], Some(("up", 6).into()))
            .unwrap(),
        vec![2]
    );
    drop(r);

    let conn = Connection::open(&path).unwrap();
    let (id, topic): (String, String) = conn
        .query_row(
            "SELECT originator_id, topic FROM stored_events WHERE originator_version = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(id, "000000000000000000000000000000ab");
    assert_eq!(topic, "topic1");
    // Positional inserts, as the reference writes, fit our tables.
    let fresh = scratch.db("ours.db");
    let ours = recorder(&fresh, RecorderKind::Process);
    ours.insert_events(&[ev(1, 1)], None).unwrap();
    let conn = Connection::open(&fresh).unwrap();
    conn.execute(
        "INSERT INTO stored_events VALUES ('00000000000000000000000000000001', 2, 't', x'00')",
        [],
    )
    .unwrap();
    conn.execute("INSERT INTO tracking VALUES ('up', 1)", [])
        .unwrap();
    assert_eq!(all(&ours, 1), vec![1, 2]);
    assert_eq!(ours.max_tracking_id("up").unwrap(), 1);
}

#[test]
fn wrong_table_shape_is_refused_and_nothing_is_written() {
    let scratch = Scratch::new();
    let path = scratch.db("shape.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE stored_events (id INTEGER PRIMARY KEY, body BLOB)")
        .unwrap();
    let store = Datastore::new(Some(path.clone()), None);
    let r = SqliteRecorder::new(store, "stored_events", RecorderKind::Process);
    let err = r.create_table(None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Programming);
    assert!(
        err.message.contains("'stored_events'") && err.message.contains(&path),
        "{}",
        err.message
    );
    let tables: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'tracking'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the tracking table was not created either");

    // An application recorder cannot number an aggregate recorder's table.
    let store = Datastore::new(Some(":memory:".into()), None);
    SqliteRecorder::new(store.clone(), "t", RecorderKind::Aggregate)
        .create_table(None)
        .unwrap();
    let err = SqliteRecorder::new(store, "t", RecorderKind::Application)
        .create_table(None)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Programming);
    assert!(err.message.contains("WITHOUT ROWID"), "{}", err.message);
}

#[test]
fn bad_database_paths_are_interface_errors_naming_the_path() {
    let scratch = Scratch::new();
    let missing = scratch.db("no/such/dir/x.db");
    let r = SqliteRecorder::new(
        Datastore::new(Some(missing.clone()), None),
        "t",
        RecorderKind::Application,
    );
    let err = r.create_table(None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Interface);
    assert!(err.message.contains(&missing), "{}", err.message);

    let junk = scratch.db("junk.db");
    let content = vec![b'x'; 4096];
    std::fs::write(&junk, &content).unwrap();
    let r = SqliteRecorder::new(
        Datastore::new(Some(junk.clone()), None),
        "t",
        RecorderKind::Application,
    );
    let err = r.create_table(None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Interface);
    assert!(
        err.message.contains("not a database") && err.message.contains(&junk),
        "{}",
        err.message
    );
    assert_eq!(std::fs::read(&junk).unwrap(), content);

    let err = Datastore::new(None, None).lease(Role::Read).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Interface);
}

#[test]
fn a_held_connection_times_out_other_threads_of_an_in_memory_database() {
    let store = Datastore::new(Some(":memory:".into()), Some(0.2));
    let held = store.lease(Role::Write).unwrap();
    let started = Instant::now();
    let s2 = store.clone();
    let err = std::thread::spawn(move || s2.lease(Role::Read).err())
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Operational);
    assert!(started.elapsed() >= Duration::from_millis(150));
    drop(held);
    assert!(store.lease(Role::Read).is_ok());
}

#[test]
fn close_all_forgets_an_in_memory_database() {
    let r = recorder(":memory:", RecorderKind::Application);
    r.insert_events(&[ev(1, 1)], None).unwrap();
    r.datastore().close_all();
    assert_eq!(
        r.max_notification_id().unwrap_err().kind,
        ErrorKind::Operational
    );
}

#[test]
fn concurrent_writers_get_unique_contiguous_ids() {
    let scratch = Scratch::new();
    let path = scratch.db("concurrent.db");
    recorder(&path, RecorderKind::Application);
    // Two datastores stand in for two processes; each has two threads.
    let recorders: Vec<Arc<SqliteRecorder>> = (0..2)
        .map(|_| {
            Arc::new(SqliteRecorder::new(
                Datastore::new(Some(path.clone()), None),
                "stored_events",
                RecorderKind::Application,
            ))
        })
        .collect();
    let handles: Vec<_> = (0..4u128)
        .map(|t| {
            let r = recorders[t as usize % 2].clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..20u128 {
                    let id = (t << 64) | i;
                    let got = r
                        .insert_events(&[ev(id, 1), ev(id, 2), ev(id, 3)], None)
                        .unwrap();
                    assert!(
                        got.windows(2).all(|w| w[1] == w[0] + 1),
                        "one insert, one run of ids"
                    );
                    ids.extend(got);
                }
                ids
            })
        })
        .collect();
    let mut ids: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=240).collect::<Vec<i64>>());
}

#[test]
fn originator_ids_are_read_as_the_reference_writes_them_and_as_uuid_accepts() {
    let id = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
    assert_eq!(
        recorder::parse_uuid_text(recorder::uuid_hex(id).as_bytes()),
        Some(id)
    );
    for text in [
        "0123456789ABCDEFFEDCBA9876543210",
        "01234567-89ab-cdef-fedc-ba9876543210",
        "0123456789abcdef-fedcba9876543210-",
    ] {
        assert_eq!(
            recorder::parse_uuid_text(text.as_bytes()),
            Some(id),
            "{text}"
        );
    }
    for bad in [
        "",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789abcdef0123456789abcdeg",
        "0123456789abcdef 0123456789abcde",
    ] {
        assert_eq!(recorder::parse_uuid_text(bad.as_bytes()), None, "{bad:?}");
    }
}

#[test]
fn rows_keep_each_topic_once_and_every_state_apart() {
    let r = recorder(":memory:", RecorderKind::Application);
    let events: Vec<EventRecord> = (1..=6)
        .map(|v| EventRecord {
            originator_id: 7,
            originator_version: v,
            topic: ["a", "b", "a", "c", "b", "a"][v as usize - 1].into(),
            state: vec![v as u8; v as usize % 3],
        })
        .collect();
    r.insert_events(&events, None).unwrap();
    let rows = r.select_notification_rows(2, 4).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows.topics, vec!["b", "a", "c"]);
    for (row, want) in rows.rows.iter().zip(&events[1..5]) {
        assert_eq!(row.id, want.originator_version);
        assert_eq!(row.originator_id, 7);
        assert_eq!(rows.topic(row), want.topic);
        assert_eq!(rows.state(row), &want.state[..]);
    }
    let q = EventQuery {
        desc: true,
        limit: Some(2),
        ..EventQuery::default()
    };
    assert_eq!(
        r.select_events(7, q).unwrap(),
        vec![events[5].clone(), events[4].clone()]
    );
    assert!(r.select_notification_rows(1, 0).unwrap().is_empty());
}

#[test]
fn a_fenced_tracking_write_commits_only_at_the_lease_epoch() {
    let r = recorder(":memory:", RecorderKind::Process);
    let lease = r.datastore().lease(Role::Write).unwrap();
    lease
        .execute_batch(
            "CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT, epoch INTEGER, \
             expires_at REAL); INSERT INTO leases VALUES ('down', 'a', 1, 0)",
        )
        .unwrap();
    drop(lease);
    r.set_fence(Some(LeaseFence {
        table: "leases".into(),
        name: "down".into(),
        epoch: 1,
    }));
    r.insert_events(&[ev(1, 1)], Some(("up", 1, 0).into()))
        .unwrap();
    // Another worker takes the lease over: this one's epoch is stale.
    let lease = r.datastore().lease(Role::Write).unwrap();
    lease
        .execute_batch("UPDATE leases SET owner = 'b', epoch = 2")
        .unwrap();
    drop(lease);
    let err = r
        .insert_events(&[ev(2, 1)], Some(("up", 2, 1).into()))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::LeaseLost);
    assert!(err.message.contains("epoch 2"), "{}", err.message);
    assert_eq!(r.max_tracking_id("up").unwrap(), 1);
    assert!(all(&r, 2).is_empty());
    // Events without tracking are not a follower's: no lease applies.
    r.insert_events(&[ev(3, 1)], None).unwrap();
    r.set_fence(None);
    r.insert_events(&[ev(2, 1)], Some(("up", 2, 1).into()))
        .unwrap();
}

#[test]
fn concurrent_writes_commit_in_groups_each_with_its_own_outcome() {
    let scratch = Scratch::new();
    let r = Arc::new(recorder(&scratch.db("group.db"), RecorderKind::Application));
    r.insert_events(&[ev(1, 1)], None).unwrap();
    let threads: Vec<_> = (0..16u128)
        .map(|t| {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                let mut failed = 0;
                for i in 0..50u128 {
                    // Every tenth write of thread 0 conflicts with the
                    // first event: it alone must fail.
                    let id = if t == 0 && i % 10 == 0 {
                        1
                    } else {
                        1000 + t * 100 + i
                    };
                    if r.insert_events(&[ev(id, 1)], None).is_err() {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let failed: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(failed, 5);
    assert_eq!(r.max_notification_id().unwrap(), 1 + 16 * 50 - 5);
    let ids: Vec<i64> = r
        .select_notifications(1, 10_000)
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(ids, (1..=(16 * 50 - 4) as i64).collect::<Vec<_>>());
    let (commits, writes) = r.datastore().group_commit_counts();
    assert_eq!(writes, 1 + 16 * 50);
    assert!(commits <= writes);
}

#[test]
fn a_group_whose_transaction_ended_commits_none_of_its_writes() {
    let scratch = Scratch::new();
    let r = recorder(&scratch.db("ended.db"), RecorderKind::Application);
    r.insert_events(&[ev(1, 1)], None).unwrap();
    let store = r.datastore();
    // The first write fails in a way that ends the whole transaction (as
    // a full disk or an I/O error does); the second would succeed.
    let mut ending = |conn: &Connection| -> StoreResult<Vec<i64>> {
        conn.execute_batch("ROLLBACK").unwrap();
        Err(StoreError::new(ErrorKind::Operational, "disk full"))
    };
    let mut fine = |conn: &Connection| -> StoreResult<Vec<i64>> {
        conn.execute_batch(
            "INSERT INTO stored_events VALUES ('00000000000000000000000000000009', 1, 't', x'')",
        )
        .map_err(|e| StoreError::from_sqlite("insert", &e))?;
        Ok(vec![conn.last_insert_rowid()])
    };
    let mut first: &mut group_commit::Work<'_> = &mut ending;
    let mut second: &mut group_commit::Work<'_> = &mut fine;
    let outcomes = store.commit_group(vec![&mut first, &mut second]);
    assert!(outcomes.iter().all(|o| o.is_err()), "{outcomes:?}");
    assert!(
        all(&r, 9).is_empty(),
        "a write outside the group's transaction committed"
    );
    assert_eq!(r.max_notification_id().unwrap(), 1);
    // The datastore goes on working.
    assert_eq!(r.insert_events(&[ev(2, 1)], None).unwrap(), vec![2]);
}
