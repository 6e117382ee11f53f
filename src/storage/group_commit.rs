//! Visitor messages committed together: one writer task per process takes every message
//! waiting for the database and stores them in one transaction, with one statement per table
//! for a run of messages (`messages::insert_visitor_messages_in`). On SQLite, which has one
//! writer, each sqlx statement (`BEGIN` and `COMMIT` included) is a round trip to the
//! connection's thread; on PostgreSQL each commit is a WAL flush. Many visitors writing at
//! once then share a few statements and one commit instead of eight round trips and a commit
//! each (see docs/benchmarks.md). Each message keeps its own outcome: a closed chat refuses
//! only its own message, and if the shared transaction fails (on PostgreSQL, say, a deadlock
//! with another instance), every message of it is tried again alone.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{
    Backend, StoreError,
    files::NewFile,
    messages::{Pending, VisitorMessage, VisitorMessageOutcome, insert_visitor_messages_in},
};

/// Messages stored in one transaction at most.
const BATCH: usize = 64;

/// A visitor message waiting to be stored.
struct Job {
    chat_id: String,
    author: String,
    body: String,
    html: String,
    files: Vec<NewFile>,
    chat_allowance: i64,
    now: i64,
    answer: oneshot::Sender<Result<VisitorMessageOutcome, StoreError>>,
}

impl Job {
    fn pending(&self) -> Pending<'_> {
        Pending {
            chat_id: &self.chat_id,
            message: VisitorMessage {
                author: &self.author,
                body: &self.body,
                html: &self.html,
                files: &self.files,
                chat_allowance: self.chat_allowance,
            },
            now: self.now,
        }
    }
}

/// Hands visitor messages to the writer task.
#[derive(Clone, Debug)]
pub(super) struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on the write pool.
    pub(super) fn start(write: AnyPool, backend: Backend) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(write, backend, rx));
        Self { jobs }
    }

    /// Stores a message with the others waiting, and answers when its transaction committed.
    pub(super) async fn insert(
        &self,
        p: &Pending<'_>,
    ) -> Result<VisitorMessageOutcome, StoreError> {
        let (answer, answered) = oneshot::channel();
        let m = &p.message;
        let job = Job {
            chat_id: p.chat_id.to_owned(),
            author: m.author.to_owned(),
            body: m.body.to_owned(),
            html: m.html.to_owned(),
            files: m.files.to_vec(),
            chat_allowance: m.chat_allowance,
            now: p.now,
            answer,
        };
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unsupported("the database is closed".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Unsupported("the database is closed".into()))?
    }
}

async fn write_batches(write: AnyPool, backend: Backend, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        match together(&write, backend, &jobs).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.drain(..).zip(outcomes) {
                    let _ = job.answer.send(Ok(outcome));
                }
            }
            Err(e) => {
                if jobs.len() > 1 {
                    tracing::warn!(error = %e, messages = jobs.len(), "storing visitor messages together failed; storing them one by one");
                }
                for job in jobs.drain(..) {
                    let outcome = alone(&write, backend, &job).await;
                    let _ = job.answer.send(outcome);
                }
            }
        }
    }
}

/// Every job in one transaction; an error rolls all of them back.
async fn together(
    write: &AnyPool,
    backend: Backend,
    jobs: &[Job],
) -> Result<Vec<VisitorMessageOutcome>, StoreError> {
    let batch: Vec<Pending<'_>> = jobs.iter().map(Job::pending).collect();
    let mut tx = write.begin().await?;
    let outcomes = insert_visitor_messages_in(&mut tx, backend, &batch).await?;
    tx.commit().await?;
    Ok(outcomes)
}

async fn alone(
    write: &AnyPool,
    backend: Backend,
    job: &Job,
) -> Result<VisitorMessageOutcome, StoreError> {
    together(write, backend, std::slice::from_ref(job))
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("no outcome for a visitor message".into()))
}
