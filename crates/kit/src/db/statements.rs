//! Statements prepared once per connection, not once per call.
//!
//! tokio-postgres prepares a `&str` query anew on every call: a Parse/Describe round
//! trip, and the server parses and plans it again each time (BENCHMARKS.md,
//! "prepared statements"). A pooled connection ([`PgClient`]) keeps the statements
//! it has prepared, by their text, and [`Sql`] runs a query through that cache, on
//! the connection or in one of its transactions ([`Tx`]). Code that takes
//! `db: &impl Sql` reads like tokio-postgres' own (`db.query_opt(sql, params)`).
//!
//! A statement that fails is forgotten (prepared again next time): a migration that
//! changed the table under it makes the server refuse the old plan.

use std::collections::HashMap;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, GenericClient, Row, Statement, Transaction};

/// More distinct statements than pixpress runs mean the text is built from data:
/// the cache starts over rather than grow without bound.
const MAX_STATEMENTS: usize = 256;

/// The parameters of a query, as tokio-postgres takes them.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The statements a connection has prepared, by their text.
#[derive(Default)]
pub struct Statements(Mutex<HashMap<String, Statement>>);

impl Statements {
    fn cached(&self, sql: &str) -> Option<Statement> {
        self.0.lock().ok()?.get(sql).cloned()
    }

    fn keep(&self, sql: &str, statement: &Statement) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= MAX_STATEMENTS {
                map.clear();
            }
            map.insert(sql.to_owned(), statement.clone());
        }
    }

    fn forget(&self, sql: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(sql);
        }
    }

    /// `sql` prepared on `client` (the connection these statements belong to).
    async fn prepare(&self, client: &impl GenericClient, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.cached(sql) {
            return Ok(statement);
        }
        let statement = client.prepare(sql).await?;
        self.keep(sql, &statement);
        Ok(statement)
    }

    /// `result` of running `sql`, forgetting its statement if it failed.
    fn checked<T>(&self, sql: &str, result: Result<T, Error>) -> Result<T, Error> {
        if result.is_err() {
            self.forget(sql);
        }
        result
    }
}

/// Runs queries through the connection's prepared statements: a pooled connection
/// ([`PgClient`]) or one of its transactions ([`Tx`]).
pub trait Sql: Sync {
    type Client: GenericClient + Sync;

    /// Where the statements run, and the cache they are prepared in.
    fn parts(&self) -> (&Self::Client, &Statements);

    fn query(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send {
        async move {
            let (client, statements) = self.parts();
            let statement = statements.prepare(client, sql).await?;
            statements.checked(sql, client.query(&statement, params).await)
        }
    }

    fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send {
        async move {
            let (client, statements) = self.parts();
            let statement = statements.prepare(client, sql).await?;
            statements.checked(sql, client.query_opt(&statement, params).await)
        }
    }

    fn query_one(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Row, Error>> + Send {
        async move {
            let (client, statements) = self.parts();
            let statement = statements.prepare(client, sql).await?;
            statements.checked(sql, client.query_one(&statement, params).await)
        }
    }

    /// The number of rows changed.
    fn execute(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        async move {
            let (client, statements) = self.parts();
            let statement = statements.prepare(client, sql).await?;
            statements.checked(sql, client.execute(&statement, params).await)
        }
    }
}

/// A pooled connection: the client, and the statements prepared on it. Derefs to
/// the client for what the cache has no part in (`batch_execute`, `simple_query`).
pub struct PgClient {
    client: Client,
    statements: Statements,
}

impl PgClient {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            statements: Statements::default(),
        }
    }

    /// A transaction that runs its queries through this connection's statements.
    pub async fn transaction(&mut self) -> Result<Tx<'_>, Error> {
        Ok(Tx {
            tx: self.client.transaction().await?,
            statements: &self.statements,
        })
    }
}

impl Deref for PgClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgClient {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Sql for PgClient {
    type Client = Client;
    fn parts(&self) -> (&Client, &Statements) {
        (&self.client, &self.statements)
    }
}

/// A transaction on a [`PgClient`]; dropped without [`Tx::commit`], it rolls back.
pub struct Tx<'a> {
    tx: Transaction<'a>,
    statements: &'a Statements,
}

impl Tx<'_> {
    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }
}

impl<'a> Deref for Tx<'a> {
    type Target = Transaction<'a>;
    fn deref(&self) -> &Transaction<'a> {
        &self.tx
    }
}

impl<'a> Sql for Tx<'a> {
    type Client = Transaction<'a>;
    fn parts(&self) -> (&Transaction<'a>, &Statements) {
        (&self.tx, self.statements)
    }
}
