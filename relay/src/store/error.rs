//! The error every store operation may end with, whatever the backend.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(#[from] heed::Error),
    #[error("cannot create state directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("number {0} is taken")]
    NumberTaken(String),
    #[error("no free number left in {0}")]
    NumbersExhausted(String),
    #[error("no account with number {0}")]
    NotFound(String),
    #[error("the recipient's mailbox is full")]
    QuotaExceeded,
    #[error("a record could not be encoded or decoded")]
    Encode,
    /// The transaction that held this write (with others) could not be committed.
    #[error("storage: group commit: {0}")]
    BatchCommit(std::sync::Arc<heed::Error>),
    #[error("the group-commit thread has stopped")]
    CommitterStopped,
    #[error("cannot start the group-commit thread: {0}")]
    Thread(std::io::Error),
    /// PostgreSQL refused or failed a statement (not a connection problem).
    #[error("database: {}", describe(.0))]
    Postgres(#[source] postgres::Error),
    /// PostgreSQL cannot be reached: the relay goes on, but nothing that needs the
    /// database works until it is back.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database's schema is newer than this relay knows, or cannot be set up.
    #[error("database schema: {0}")]
    Schema(String),
    /// A file blob could not be kept, read or removed.
    #[error("blob {what}: {source}")]
    Blob {
        what: &'static str,
        source: std::io::Error,
    },
    /// A new record would eat into the room kept for deletes.
    #[error("out of space: {0}")]
    OutOfSpace(crate::space::Shortage),
}

impl StoreError {
    /// The write failed for want of space: the reserve refused it, the LMDB map is full,
    /// or the disk is. Worth one line when it starts, not one per write.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            StoreError::OutOfSpace(_) => true,
            StoreError::Db(e) => db_out_of_space(e),
            StoreError::BatchCommit(e) => db_out_of_space(e),
            _ => false,
        }
    }
}

/// LMDB reports a short write at commit (the disk filled up under it) as `EIO`, so that
/// counts too: a failing disk is then also reported as out of space, once, rather than
/// with an error line per write.
fn db_out_of_space(e: &heed::Error) -> bool {
    match e {
        heed::Error::Mdb(heed::MdbError::MapFull) => true,
        heed::Error::Io(io) => matches!(
            io.raw_os_error(),
            Some(libc::ENOSPC | libc::EDQUOT | libc::EIO)
        ),
        _ => false,
    }
}

/// A PostgreSQL error with its causes: the driver's own text is only its kind ("db
/// error", "error performing TLS handshake"); the server's message (`no pg_hba.conf entry
/// …`) or the TLS reason (`invalid peer certificate: UnknownIssuer`) is in its sources.
pub fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

impl From<postgres::Error> for StoreError {
    /// A lost or refused connection is [`StoreError::Unavailable`]; anything else a
    /// failed statement.
    fn from(e: postgres::Error) -> StoreError {
        if e.is_closed() || (e.code().is_none() && e.as_db_error().is_none()) {
            StoreError::Unavailable(describe(&e))
        } else {
            StoreError::Postgres(e)
        }
    }
}
