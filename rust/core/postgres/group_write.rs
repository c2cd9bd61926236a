//! Group commit on PostgreSQL (see `core::group_commit` for who writes a
//! group and when): the writes of a group that take the same table lock
//! go in one transaction, pipelined in one round trip: `BEGIN` and the
//! lock, each write's statement, `COMMIT`.
//!
//! No savepoints are needed: the recorders' statements are guarded (a
//! conflicting event or a refused tracking record makes a statement write
//! nothing and return fewer rows, rather than fail), and under the table
//! lock the guards are exact, also between the writes of one group (each
//! statement sees the ones before it). So each write keeps its own outcome
//! by its row count. A statement that fails outright (a value the server
//! rejects, say) aborts the transaction, and nothing of the group was
//! committed: each write is then sent again on its own, so that only the
//! faulty one fails. A connection lost while committing leaves every
//! write of the group with an unknown outcome, said so to each.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio_postgres::Statement;

use super::connections::{run, unknown_outcome, Connections, PgConn, WriteError, Written};
use super::error::PgFailure;
use super::value::PgValue;
use crate::core::group_commit::GroupQueue;
use crate::core::sqlite::ErrorKind;

/// One write: as `Connections::write` takes it.
pub struct WriteRequest<'a> {
    pub before: &'a str,
    pub statement: &'a str,
    pub params: &'a [PgValue],
    pub expected_rows: Option<u64>,
    pub context: &'a str,
}

/// One database's queue of writes.
pub type WriteQueue = GroupQueue<Result<Written, PgFailure>>;

impl Connections {
    /// Runs the write as [`Connections::write`] does, together with the
    /// writes of other threads that take the same lock (`before`) queued
    /// meanwhile; returns its own outcome.
    pub fn write_grouped(&self, mut request: WriteRequest<'_>) -> Result<Written, PgFailure> {
        self.write_queue().submit(
            &mut request,
            |first, other| first.before == other.before,
            |group| self.write_group(group),
            || {
                Err(PgFailure::new(
                    ErrorKind::Internal,
                    "a write of the same commit group failed unexpectedly; nothing of the \
                     group is known to be committed",
                ))
            },
        )
    }

    fn write_group(&self, group: Vec<&mut WriteRequest<'_>>) -> Vec<Result<Written, PgFailure>> {
        if group.len() == 1 {
            let r = &group[0];
            return vec![self.write(r.before, r.statement, r.params, r.expected_rows, r.context)];
        }
        let together = match self.checkout() {
            Ok(mut conn) => {
                conn.uses += 1;
                let outcome = write_group_on(&mut conn, &group);
                self.checkin(conn);
                outcome
            }
            Err(failure) => Err(WriteError::Failed(failure)),
        };
        match together {
            Ok(written) => written,
            // Committed or not, unknown (or no connection at all): said
            // to every write of the group.
            Err(WriteError::Failed(failure)) => {
                group.iter().map(|_| Err(failure.clone())).collect()
            }
            // Nothing was committed: each on its own, so that only a
            // faulty write fails (and a lost session is replaced).
            Err(WriteError::BeforeCommit(_)) => group
                .iter()
                .map(|r| self.write(r.before, r.statement, r.params, r.expected_rows, r.context))
                .collect(),
        }
    }
}

fn write_group_on(
    conn: &mut PgConn,
    group: &[&mut WriteRequest<'_>],
) -> Result<Vec<Result<Written, PgFailure>>, WriteError> {
    let before = group[0].before;
    let context = group[0].context;
    let fail = |e: &tokio_postgres::Error| PgFailure::from_client(context, e);
    let mut missing: Vec<&str> = group
        .iter()
        .map(|r| r.statement)
        .filter(|s| conn.statement(s).is_none())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let client = &conn.client;
    let made: Vec<(String, Statement)> = if missing.is_empty() {
        Vec::new()
    } else {
        // Prepared after `before`, in its transaction, as a lone write's
        // first statement is (see `Connections::write`).
        let prepared = conn.runtime.block_on(async {
            let (began, made) = futures_util::join!(
                client.batch_execute(before),
                in_order(missing.iter().map(|s| client.prepare(s)))
            );
            let made: Result<Vec<Statement>, _> = made.into_iter().collect();
            match began.and(made) {
                Ok(made) => Ok(made),
                Err(error) => {
                    if !client.is_closed() {
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                    Err(WriteError::BeforeCommit(fail(&error)))
                }
            }
        })?;
        missing
            .iter()
            .map(|s| s.to_string())
            .zip(prepared)
            .collect()
    };
    // Looked up before the new ones are kept: keeping one may empty a full
    // cache.
    let statements: Vec<Statement> = group
        .iter()
        .map(|r| {
            made.iter()
                .find(|(sql, _)| sql == r.statement)
                .map(|(_, statement)| statement.clone())
                .or_else(|| conn.statement(r.statement))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| {
            WriteError::BeforeCommit(PgFailure::new(
                ErrorKind::Internal,
                format!("{context}: a statement of the group was not prepared"),
            ))
        })?;
    for (sql, statement) in &made {
        conn.keep_statement(sql, statement.clone());
    }
    let params: Vec<Vec<&(dyn tokio_postgres::types::ToSql + Sync)>> = group
        .iter()
        .map(|r| r.params.iter().map(|p| p as _).collect())
        .collect();
    let client = &conn.client;
    let began_here = made.is_empty();
    let (began, results, committed) = conn.runtime.block_on(async {
        let runs = in_order(
            statements
                .iter()
                .zip(&params)
                .map(|(statement, params)| run(client, statement, params)),
        );
        if began_here {
            futures_util::join!(
                client.batch_execute(before),
                runs,
                client.batch_execute("COMMIT")
            )
        } else {
            let (results, committed) = futures_util::join!(runs, client.batch_execute("COMMIT"));
            (Ok(()), results, committed)
        }
    });
    if let Err(error) = began {
        let failure = fail(&error);
        // A session the server ended is tried again, write by write, on
        // new connections; anything else (a lock timeout, say) is every
        // write's error: nothing was committed.
        return Err(if failure.lost || client.is_closed() {
            WriteError::BeforeCommit(failure)
        } else {
            WriteError::Failed(failure)
        });
    }
    // The server's own error aborted the transaction (its COMMIT rolls
    // back): nothing was committed. A connection that closed leaves the
    // outcome unknown.
    for result in &results {
        if let Err(error) = result {
            if error.as_db_error().is_some() {
                return Err(WriteError::BeforeCommit(fail(error)));
            }
            if error.is_closed() || client.is_closed() {
                return Err(WriteError::Failed(unknown_outcome(context, error)));
            }
        }
    }
    if let Err(error) = committed {
        return Err(WriteError::Failed(
            if client.is_closed() || error.is_closed() {
                unknown_outcome(context, &error)
            } else {
                fail(&error)
            },
        ));
    }
    // Committed. A statement whose values could not be encoded was never
    // sent (the client fails it before sending): that write alone failed.
    Ok(group
        .iter()
        .zip(results)
        .map(|(request, result)| {
            let (rows, count) = result.map_err(|e| fail(&e))?;
            if request.expected_rows.is_some_and(|n| n != count) {
                return Ok(Written {
                    count,
                    ids: Vec::new(),
                });
            }
            Ok(Written {
                count,
                ids: rows
                    .iter()
                    .filter_map(|row| row.try_get::<_, super::value::AnyInt>(0).ok())
                    .map(|id| id.0)
                    .collect(),
            })
        })
        .collect())
}

/// Awaits the futures together, polling them in order every time: a
/// client's request is sent when its future is first polled, so the
/// statements reach the server in order, all before the COMMIT that the
/// caller polls after them. (`join_all` may poll a large set in another
/// order.)
async fn in_order<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(outputs.iter_mut().filter_map(Option::take).collect())
    })
    .await
}
