//! A pool of connections to one PostgreSQL database, and the three things
//! recorders do with them: a write (a transaction of statements, sent in
//! one round trip once its statement is prepared), a query, and closing.
//!
//! Each connection has its own single-threaded tokio runtime, driven only
//! while a call runs on it (`block_on`): no thread outlives a call, so a
//! forked child has nothing running it does not know of. Connections made
//! before a fork are the parent's: the child sets them aside unused (never
//! closed, which would end the parent's sessions) and opens its own.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::runtime::{Builder, Runtime};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Row, Socket, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::PgFailure;
use super::group_write::WriteQueue;
use super::tls::Tls;
use super::value::PgValue;
use crate::core::process_epoch::process_epoch;
use crate::core::sqlite::ErrorKind;

/// Idle connections kept for reuse; more are closed when returned.
const IDLE_MAX: usize = 32;
/// Statements kept prepared per connection; past this the cache starts over.
const PREPARED_MAX: usize = 256;

/// Where the database is and how to use connections to it.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: String,
    pub connect_timeout: Duration,
    /// Replace a connection this old when it is next used.
    pub conn_max_age: Option<Duration>,
    /// Check a connection with an empty query before reusing it.
    pub pre_ping: bool,
    /// The server's `idle_in_transaction_session_timeout`, 0 for none.
    pub idle_in_transaction_ms: u64,
    /// Whether and how connections use TLS (`sslmode`).
    pub tls: Tls,
}

impl PgSettings {
    /// Names the database in messages.
    pub fn describe(&self) -> String {
        format!(
            "PostgreSQL database '{}' at {}:{} as '{}'",
            self.dbname, self.host, self.port, self.user
        )
    }
}

pub(super) struct PgConn {
    pub(super) runtime: Runtime,
    pub(super) client: Client,
    created: Instant,
    statements: HashMap<String, Statement>,
    pub(super) uses: u64,
    /// The thread that last used it (see `checkout`).
    last_thread: ThreadId,
}

impl PgConn {
    fn is_usable(&mut self, settings: &PgSettings) -> bool {
        if let Some(age) = settings.conn_max_age {
            if self.created.elapsed() >= age {
                return false;
            }
        }
        // Lets the connection's task read what arrived while it was idle:
        // a server that ended the session (an administrator, a shutdown)
        // sent a last error and closed the socket. A few turns: one for the
        // runtime to see the socket readable, one for the task to read.
        for _ in 0..3 {
            self.runtime.block_on(tokio::task::yield_now());
            if self.client.is_closed() {
                return false;
            }
        }
        if settings.pre_ping {
            let client = &self.client;
            return self.runtime.block_on(client.simple_query("")).is_ok();
        }
        true
    }

    pub(super) fn statement(&mut self, sql: &str) -> Option<Statement> {
        self.statements.get(sql).cloned()
    }

    pub(super) fn keep_statement(&mut self, sql: &str, statement: Statement) {
        if self.statements.len() >= PREPARED_MAX {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement);
    }
}

struct Pool {
    epoch: u64,
    idle: Vec<PgConn>,
}

/// The pools of this process, by the settings that make a session what it
/// is: every `Connections` with the same ones (the applications of a
/// system on one database) takes its sessions from one pool. A runner
/// that has each application write in turn then talks to one server
/// process, kept busy, rather than waking one per application: about a
/// third less time per write on a small machine.
static POOLS: LazyLock<Mutex<HashMap<String, Weak<Mutex<Pool>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn shared_pool(settings: &PgSettings) -> Arc<Mutex<Pool>> {
    let key = format!(
        "{}\0{}\0{}\0{}\0{}\0{:?}\0{}\0{}",
        settings.host,
        settings.port,
        settings.dbname,
        settings.user,
        settings.password,
        settings.connect_timeout,
        settings.idle_in_transaction_ms,
        settings.tls.key(),
    );
    let mut pools = POOLS.lock();
    if let Some(pool) = pools.get(&key).and_then(Weak::upgrade) {
        return pool;
    }
    pools.retain(|_, pool| pool.strong_count() > 0);
    let pool = Arc::new(Mutex::new(Pool {
        epoch: process_epoch(),
        idle: Vec::new(),
    }));
    pools.insert(key, Arc::downgrade(&pool));
    pool
}

/// One database's connections.
pub struct Connections {
    settings: PgSettings,
    /// Shared with every `Connections` of the same settings (see `POOLS`).
    pool: Arc<Mutex<Pool>>,
    /// Writes waiting to be committed together (see `group_write`).
    writes: WriteQueue,
}

/// What a write's statement returned: its row count, and the integers in
/// the first column of its rows (the notification ids it took).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    pub count: u64,
    pub ids: Vec<i64>,
}

impl Connections {
    pub fn new(settings: PgSettings) -> Self {
        Connections {
            pool: shared_pool(&settings),
            settings,
            writes: WriteQueue::default(),
        }
    }

    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    pub(super) fn write_queue(&self) -> &WriteQueue {
        &self.writes
    }

    /// The transactions committed by groups of writes, and the writes
    /// they held.
    pub fn group_commit_counts(&self) -> (u64, u64) {
        self.writes.counts()
    }

    /// An idle connection that is still good, or a new one.
    pub(super) fn checkout(&self) -> Result<PgConn, PgFailure> {
        loop {
            // The session this thread used last, if idle: a thread keeps
            // to one server process (all of a single-threaded runner's
            // applications to one; each thread of a multi-threaded runner
            // to its own), which stays warm, instead of waking whichever
            // was returned last.
            let here = std::thread::current().id();
            let candidate = {
                let mut pool = self.pool.lock();
                adopt_after_fork(&mut pool);
                match pool.idle.iter().rposition(|c| c.last_thread == here) {
                    Some(at) => Some(pool.idle.remove(at)),
                    None => pool.idle.pop(),
                }
            };
            match candidate {
                Some(mut conn) => {
                    if conn.is_usable(&self.settings) {
                        conn.last_thread = here;
                        return Ok(conn);
                    }
                    // Closed here, in this process: it is ours.
                    drop(conn);
                }
                None => return self.connect(),
            }
        }
    }

    pub(super) fn checkin(&self, conn: PgConn) {
        if conn.client.is_closed() {
            return;
        }
        let mut pool = self.pool.lock();
        adopt_after_fork(&mut pool);
        if pool.idle.len() < IDLE_MAX {
            pool.idle.push(conn);
        }
    }

    fn connect(&self) -> Result<PgConn, PgFailure> {
        let (runtime, client, connection) = open(&self.settings)?;
        runtime.spawn(async move {
            // Ends when the connection does; its error is seen by the
            // client's next call.
            let _ = connection.await;
        });
        Ok(PgConn {
            runtime,
            client,
            created: Instant::now(),
            statements: HashMap::new(),
            uses: 0,
            last_thread: std::thread::current().id(),
        })
    }

    /// Runs `before` (simple statements: BEGIN, settings, locks), then
    /// `statement` with `params`, then COMMIT, in one round trip once the
    /// statement is prepared on the connection. The statement must be all
    /// or nothing (recorders' guarded inserts are: refused, they write
    /// nothing); `expected_rows`, when given, is the row count that says
    /// it was not refused (no ids are given otherwise). A failure before
    /// COMMIT on a reused connection whose session the server ended is
    /// sent once more on a new one; lost at COMMIT, the outcome is
    /// unknown, and said so.
    pub fn write(
        &self,
        before: &str,
        statement: &str,
        params: &[PgValue],
        expected_rows: Option<u64>,
        context: &str,
    ) -> Result<Written, PgFailure> {
        for attempt in 0..2 {
            let mut conn = self.checkout()?;
            let reused = conn.uses > 0;
            conn.uses += 1;
            match write_on(&mut conn, before, statement, params, expected_rows, context) {
                Ok(written) => {
                    self.checkin(conn);
                    return Ok(written);
                }
                Err(WriteError::BeforeCommit(failure))
                    if attempt == 0 && reused && (failure.lost || conn.client.is_closed()) =>
                {
                    // Nothing was committed: the server ended the session
                    // while the connection sat idle (and, most likely, the
                    // other idle ones too). Once more, on a new connection.
                    drop(failure);
                    self.close_all();
                    continue;
                }
                Err(WriteError::BeforeCommit(failure))
                    if attempt == 0 && failure.is_stale_statement() =>
                {
                    // The table changed under a prepared statement: prepare
                    // again (nothing was committed).
                    conn.statements.clear();
                    self.checkin(conn);
                    continue;
                }
                Err(WriteError::BeforeCommit(failure)) | Err(WriteError::Failed(failure)) => {
                    self.checkin(conn);
                    return Err(failure);
                }
            }
        }
        unreachable_write(context)
    }

    /// Runs a query (prepared once per connection) and reads its rows
    /// with `read`; a reused connection found lost is replaced once.
    pub fn query<T>(
        &self,
        statement: &str,
        params: &[PgValue],
        context: &str,
        read: impl Fn(&[Row]) -> Result<T, PgFailure>,
    ) -> Result<T, PgFailure> {
        let mut last = None;
        for attempt in 0..2 {
            let mut conn = self.checkout()?;
            let reused = conn.uses > 0;
            conn.uses += 1;
            let rows = query_on(&mut conn, statement, params, context);
            let lost = conn.client.is_closed();
            let stale = rows.as_ref().is_err_and(PgFailure::is_stale_statement);
            if stale {
                conn.statements.clear();
            }
            self.checkin(conn);
            match rows {
                Ok(rows) => return read(&rows),
                Err(failure) if attempt == 0 && stale => last = Some(failure),
                Err(failure) if attempt == 0 && reused && (lost || failure.lost) => {
                    // As for a write: the idle connections are stale too.
                    self.close_all();
                    last = Some(failure)
                }
                Err(failure) => return Err(failure),
            }
        }
        Err(last.unwrap_or_else(|| PgFailure::new(ErrorKind::Interface, context.to_string())))
    }

    /// Runs statements outside a transaction (DDL, a NOTIFY), as one
    /// simple query.
    pub fn execute_batch(&self, sql: &str, context: &str) -> Result<(), PgFailure> {
        let mut conn = self.checkout()?;
        conn.uses += 1;
        let client = &conn.client;
        let outcome = conn.runtime.block_on(client.batch_execute(sql));
        self.checkin(conn);
        outcome.map_err(|e| PgFailure::from_client(context, &e))
    }

    /// Closes every idle connection (in a forked child, sets the parent's
    /// aside instead).
    pub fn close_all(&self) {
        let idle = {
            let mut pool = self.pool.lock();
            adopt_after_fork(&mut pool);
            std::mem::take(&mut pool.idle)
        };
        drop(idle);
    }
}

/// A new connection to `s`'s database on a runtime of its own (driven
/// only while a call blocks on it): the runtime, the client, and the
/// connection to spawn (or to read messages from).
pub(super) fn open(s: &PgSettings) -> Result<(Runtime, Client, PgConnection), PgFailure> {
    let runtime = Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| {
            PgFailure::new(
                ErrorKind::Interface,
                format!("Could not connect to {}: {e}", s.describe()),
            )
        })?;
    let (client, connection) = runtime
        .block_on(config(s).connect(s.tls.connector()))
        .map_err(|e| connect_failure(s, &e))?;
    Ok((runtime, client, connection))
}

/// A connection's I/O half, as `open` makes it.
pub(super) type PgConnection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// The client configuration for `s`.
pub(super) fn config(s: &PgSettings) -> Config {
    let mut config = Config::new();
    config
        .host(&s.host)
        .port(s.port)
        .dbname(&s.dbname)
        .user(&s.user)
        .password(&s.password)
        .connect_timeout(s.connect_timeout)
        .ssl_mode(s.tls.wire_mode())
        .application_name("eventsourcing_rs")
        .options(format!(
            "-c idle_in_transaction_session_timeout={}",
            s.idle_in_transaction_ms
        ));
    config
}

/// "Could not connect to ...", with the server's or the network's reason.
pub(super) fn connect_failure(s: &PgSettings, e: &tokio_postgres::Error) -> PgFailure {
    let reason = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    };
    PgFailure::new(
        ErrorKind::Interface,
        format!("Could not connect to {}: {reason}", s.describe()),
    )
}

fn adopt_after_fork(pool: &mut Pool) {
    let epoch = process_epoch();
    if pool.epoch != epoch {
        pool.epoch = epoch;
        for conn in pool.idle.drain(..) {
            std::mem::forget(conn);
        }
    }
}

fn unreachable_write(context: &str) -> Result<Written, PgFailure> {
    Err(PgFailure::new(
        ErrorKind::Interface,
        format!("{context}: failed twice on a fresh start (lost connection or stale statement)"),
    ))
}

pub(super) enum WriteError {
    /// Nothing was committed (COMMIT was never sent).
    BeforeCommit(PgFailure),
    /// Refused by the server, or lost with the outcome unknown.
    Failed(PgFailure),
}

fn write_on(
    conn: &mut PgConn,
    before: &str,
    statement: &str,
    params: &[PgValue],
    expected_rows: Option<u64>,
    context: &str,
) -> Result<Written, WriteError> {
    let fail = |e: &tokio_postgres::Error| PgFailure::from_client(context, e);
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        params.iter().map(|p| p as _).collect();
    let prepared = conn.statement(statement);
    let client = &conn.client;
    let outcome = conn.runtime.block_on(async {
        let prepared = match prepared {
            Some(prepared) => prepared,
            None => {
                // First use on this connection: prepared after `before`, in
                // its transaction (preparing an INSERT takes its table's
                // lock as running it would, so `before`'s lock timeout must
                // apply), then run with COMMIT in a second round trip.
                let (began, made) =
                    futures_util::join!(client.batch_execute(before), client.prepare(statement));
                let made = began
                    .and(made)
                    .map_err(|e| WriteError::BeforeCommit(fail(&e)));
                let made = match made {
                    Ok(made) => made,
                    Err(error) => {
                        if !client.is_closed() {
                            let _ = client.batch_execute("ROLLBACK").await;
                        }
                        return Err(error);
                    }
                };
                let (rows, committed) =
                    futures_util::join!(run(client, &made, &refs), client.batch_execute("COMMIT"));
                return settle(client, Ok(()), rows, committed, context).map(|rows| (made, rows));
            }
        };
        // One round trip: `before`, the statement and COMMIT, pipelined.
        // The statements are all or nothing (a refused one writes nothing),
        // so COMMIT can go with them; a failed one aborts the transaction,
        // and COMMIT then rolls it back.
        let (began, rows, committed) = futures_util::join!(
            client.batch_execute(before),
            run(client, &prepared, &refs),
            client.batch_execute("COMMIT")
        );
        settle(client, began, rows, committed, context).map(|rows| (prepared, rows))
    });
    let (prepared, (rows, count)) = outcome?;
    conn.keep_statement(statement, prepared);
    if expected_rows.is_some_and(|n| n != count) {
        // Refused by its guards: nothing was written.
        return Ok(Written {
            count,
            ids: Vec::new(),
        });
    }
    let ids = rows
        .iter()
        .filter_map(|row| row.try_get::<_, super::value::AnyInt>(0).ok())
        .map(|id| id.0)
        .collect();
    Ok(Written { count, ids })
}

/// The outcome of a pipelined write, from its parts' results, in order:
/// an error the server sent before COMMIT's response means nothing was
/// committed (so a write whose session the server ended may be sent
/// again); a connection lost without one leaves the outcome unknown.
fn settle(
    client: &Client,
    began: Result<(), tokio_postgres::Error>,
    rows: Result<(Vec<Row>, u64), tokio_postgres::Error>,
    committed: Result<(), tokio_postgres::Error>,
    context: &str,
) -> Result<(Vec<Row>, u64), WriteError> {
    let mut settled = settle_group(client, began, vec![rows], committed, context)?;
    Ok(settled.pop().unwrap_or_default())
}

/// [`settle`] for several statements, in order.
fn settle_group(
    client: &Client,
    began: Result<(), tokio_postgres::Error>,
    results: Vec<Result<(Vec<Row>, u64), tokio_postgres::Error>>,
    committed: Result<(), tokio_postgres::Error>,
    context: &str,
) -> Result<Vec<(Vec<Row>, u64)>, WriteError> {
    let fail = |e: &tokio_postgres::Error| PgFailure::from_client(context, e);
    // The server's own error (a lock timeout, a conflict, a session ended
    // by an administrator or a shutdown) came in order, before COMMIT was
    // read: nothing was committed. A connection that just closed says
    // nothing of how far the server got: COMMIT may have run.
    let before_commit = |e: tokio_postgres::Error| {
        // (A value that could not be sent fails here, in the client, and
        // the server commits an empty transaction: nothing either.)
        if e.as_db_error().is_some() || !e.is_closed() {
            WriteError::BeforeCommit(fail(&e))
        } else {
            WriteError::Failed(unknown_outcome(context, &e))
        }
    };
    began.map_err(before_commit)?;
    let rows = results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(before_commit)?;
    if let Err(e) = committed {
        return Err(WriteError::Failed(if client.is_closed() || e.is_closed() {
            unknown_outcome(context, &e)
        } else {
            fail(&e)
        }));
    }
    Ok(rows)
}

/// Runs a prepared statement: its rows, and the number of rows it wrote
/// or returned.
pub(super) async fn run(
    client: &Client,
    statement: &Statement,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(Vec<Row>, u64), tokio_postgres::Error> {
    use futures_util::TryStreamExt;
    let stream = client.query_raw(statement, params.iter().copied()).await?;
    futures_util::pin_mut!(stream);
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await? {
        rows.push(row);
    }
    let count = stream.rows_affected().unwrap_or(rows.len() as u64);
    Ok((rows, count))
}

pub(super) fn unknown_outcome(context: &str, e: &tokio_postgres::Error) -> PgFailure {
    PgFailure::new(
        ErrorKind::Interface,
        format!(
            "{context}: lost the connection to PostgreSQL while committing; whether the \
             transaction was committed is unknown: {e}"
        ),
    )
}

fn query_on(
    conn: &mut PgConn,
    statement: &str,
    params: &[PgValue],
    context: &str,
) -> Result<Vec<Row>, PgFailure> {
    let fail = |e: &tokio_postgres::Error| PgFailure::from_client(context, e);
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        params.iter().map(|p| p as _).collect();
    let prepared = conn.statement(statement);
    let client = &conn.client;
    let (prepared, rows) = conn.runtime.block_on(async {
        let prepared = match prepared {
            Some(prepared) => prepared,
            None => client.prepare(statement).await.map_err(|e| fail(&e))?,
        };
        let rows = client.query(&prepared, &refs).await.map_err(|e| fail(&e))?;
        Ok::<_, PgFailure>((prepared, rows))
    })?;
    conn.keep_statement(statement, prepared);
    Ok(rows)
}
