//! The database: one sqlx `Any` pool over SQLite or MySQL, the migrations for each, and the food
//! table the app ships as data.
//!
//! One code path serves both databases: queries use `?` placeholders and the types both drivers
//! share (BIGINT, DOUBLE, text; times as Unix seconds), so a test run on SQLite says something
//! about MySQL too. `scripts/test.sh` runs every HTTP test on both.
//!
//! With `DATABASE_READ_URL`, a MySQL/MariaDB replica answers the reads that
//! [`Database::read`] routes to it; see [`crate::replica`] for the rules.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection, Executor, Row};

use crate::outage::Outage;
use crate::redis_conn::SharedRedis;
use crate::replica::Replica;

/// The food table's rows, shipped in the binary so an image needs no data files.
const FOODS_CSV: &str = include_str!("../data/foods.csv");

/// A pooled connection idle at least this long is pinged before it is handed out, so that one
/// the server closed meanwhile (a restart, MySQL's `wait_timeout`) is replaced instead of failing
/// its query. See [`pool_options`].
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The options both pools (primary and replica) are built from: at most `max_connections`, and
/// a ping before handing out a connection only when it sat idle for [`PING_IDLE_AFTER`].
///
/// sqlx pings every connection it hands out (`test_before_acquire`) and again every one it
/// takes back (on release, always): two round trips for each query the app sends. Measured in
/// the capacity run (`benches/CAPACITY.md`, "MariaDB statements per request"), the pings were
/// half of everything the replicas sent MariaDB. The ping on release stays (sqlx has no switch
/// for it), and it already checks each connection as it goes back, so a connection taken from
/// the pool soon after is as good as checked; one that sat idle may have been closed by the
/// server since, and is pinged.
///
/// ```
/// let options = calories_app::db::pool_options(10);
/// assert_eq!(options.get_max_connections(), 10);
/// assert!(!options.get_test_before_acquire());
/// ```
#[must_use]
pub fn pool_options(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `sqlite:` URLs: the embedded default.
    Sqlite,
    /// `mysql:` and `mariadb:` URLs.
    MySql,
}

impl Dialect {
    /// The dialect of `url`.
    ///
    /// ```
    /// use calories_app::db::Dialect;
    /// assert_eq!(Dialect::of("sqlite://data/calories.db").unwrap(), Dialect::Sqlite);
    /// assert_eq!(Dialect::of("mysql://app:pw@db:3306/calories").unwrap(), Dialect::MySql);
    /// assert!(Dialect::of("postgres://db/calories").is_err());
    /// ```
    ///
    /// # Errors
    /// A scheme other than `sqlite`, `mysql` or `mariadb`.
    pub fn of(url: &str) -> anyhow::Result<Self> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "mysql" | "mariadb" => Ok(Self::MySql),
            _ => anyhow::bail!(
                "DATABASE_URL must start with sqlite:, mysql: or mariadb: (got {:?})",
                redact(url)
            ),
        }
    }
}

/// The pool and what kind of database is behind it, plus the read replica when there is one.
#[derive(Debug, Clone)]
pub struct Database {
    /// The connection pool of the primary: every write and transaction, and the reads a write
    /// depends on.
    pub pool: AnyPool,
    /// SQLite or MySQL.
    pub dialect: Dialect,
    /// `DATABASE_READ_URL`'s replica, if set.
    replica: Option<Arc<Replica>>,
    /// Whether the primary is known to be unreachable (see [`crate::outage`]).
    pub outage: Arc<Outage>,
}

impl Database {
    /// Connects (creating a SQLite file and its folder when missing), runs the migrations and
    /// loads the food table on first start.
    ///
    /// # Errors
    /// An unreachable or misconfigured database, named with its (password-free) URL.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        install_default_drivers();
        let dialect = Dialect::of(url)?;
        let url = match dialect {
            Dialect::Sqlite => sqlite_url(url)?,
            Dialect::MySql => url.replacen("mariadb:", "mysql:", 1),
        };
        let pool = pool_options(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers run beside the writer; the busy timeout makes a
                        // second writer wait for the first instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot connect to the database at {}", redact(&url)))?;
        let db = Self {
            pool,
            dialect,
            replica: None,
            outage: Arc::default(),
        };
        db.migrate().await?;
        db.load_foods().await?;
        Ok(db)
    }

    /// Adds the read replica at `url` (`DATABASE_READ_URL`), a MySQL or MariaDB replica of this
    /// (MySQL) database, with a pool of `max_connections`; a user who wrote reads from the
    /// primary for `read_your_writes`, on every app replica sharing the Redis `markers` (the
    /// rate limiter's), or on this one only without it.
    ///
    /// The pool connects lazily, so a replica that is down at start only sends reads to the
    /// primary (see [`crate::replica`]); it is never migrated (replication brings the schema).
    ///
    /// ```no_run
    /// # async fn run() -> anyhow::Result<()> {
    /// use std::time::Duration;
    /// let db = calories_app::db::Database::connect("mysql://app:pw@primary/calories", 25)
    ///     .await?
    ///     .with_replica("mysql://app:pw@replica/calories", 25, Duration::from_secs(5), None)?;
    /// assert!(db.replica().is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A URL that is not `mysql:`/`mariadb:`, or a primary that is SQLite.
    pub fn with_replica(
        mut self,
        url: &str,
        max_connections: u32,
        read_your_writes: Duration,
        markers: Option<SharedRedis>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            Dialect::of(url)? == Dialect::MySql && self.dialect == Dialect::MySql,
            "DATABASE_READ_URL {:?} must be a mysql: or mariadb: replica of a mysql: or \
             mariadb: DATABASE_URL; unset it for SQLite",
            redact(url)
        );
        let url = url.replacen("mariadb:", "mysql:", 1);
        let pool = pool_options(max_connections)
            .acquire_timeout(crate::replica::REPLICA_ACQUIRE_TIMEOUT)
            .connect_lazy(&url)
            .with_context(|| format!("DATABASE_READ_URL {} is not usable", redact(&url)))?;
        self.replica = Some(Arc::new(Replica::new(pool, read_your_writes, markers)));
        Ok(self)
    }

    /// The read replica, when `DATABASE_READ_URL` names one.
    #[must_use]
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_deref()
    }

    /// Runs the read `query` on the pool [`crate::replica`] picks for `user` (`None` for a
    /// read that is the same for everyone): the primary when there is no replica, when `user`
    /// wrote within the read-your-writes window or when the replica is down; else the replica,
    /// with the primary answering if it fails. `query` may therefore run twice: it must only
    /// read. Whenever it goes to the primary, it goes through [`Database::primary`]'s outage
    /// check: refused at once while the primary is known to be unreachable.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("sqlite://{}/c.db", dir.path().display());
    /// let db = calories_app::db::Database::connect(&url, 2).await.unwrap();
    /// let foods: i64 = db
    ///     .read(None, |pool| async move {
    ///         sqlx::query_scalar("SELECT COUNT(*) FROM foods").fetch_one(&pool).await
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert!(foods > 0);
    /// # });
    /// ```
    ///
    /// # Errors
    /// The query's error on the pool that answered last.
    pub async fn read<T, F, Fut>(&self, user: Option<i64>, query: F) -> Result<T, sqlx::Error>
    where
        F: Fn(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        match &self.replica {
            Some(replica) => replica.read(&self.pool, &self.outage, user, query).await,
            None => self.primary(query).await,
        }
    }

    /// Runs `query` on the primary, failing at once while it is known to be unreachable (see
    /// [`crate::outage`]): for the reads a write depends on.
    ///
    /// # Errors
    /// What the query says; an I/O error while the primary is unreachable.
    pub async fn primary<T, F, Fut>(&self, query: F) -> Result<T, sqlx::Error>
    where
        F: FnOnce(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.outage.run(query(self.pool.clone())).await
    }

    /// Records that `user` just wrote, so that their reads see the primary for the
    /// read-your-writes window; call it after the write commits and before the cache is
    /// invalidated. Does nothing without a replica.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("sqlite://{}/c.db", dir.path().display());
    /// let db = calories_app::db::Database::connect(&url, 2).await.unwrap();
    /// db.wrote(7).await; // no replica: nothing to remember
    /// # });
    /// ```
    pub async fn wrote(&self, user: i64) {
        if let Some(replica) = &self.replica {
            replica.wrote(user).await;
        }
    }

    /// Applies the migrations this dialect has not yet seen.
    ///
    /// # Errors
    /// A migration that fails, or one that was changed after it was applied.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Dialect::MySql => sqlx::migrate!("migrations/mysql"),
        };
        migrator
            .run(&self.pool)
            .await
            .context("database migrations failed")
    }

    /// Fills the food table from the shipped data when it is empty.
    async fn load_foods(&self) -> anyhow::Result<()> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM foods")
            .fetch_one(&self.pool)
            .await?;
        if count > 0 {
            return Ok(());
        }
        let foods = parse_foods(FOODS_CSV)?;
        let mut tx = self.pool.begin().await?;
        for chunk in foods.chunks(200) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO foods (name, name_lower, kcal, protein_g, fat_g, carbs_g) ",
            );
            insert.push_values(chunk, |mut row, food| {
                row.push_bind(food.name)
                    .push_bind(food.name.to_lowercase())
                    .push_bind(food.kcal)
                    .push_bind(food.protein_g)
                    .push_bind(food.fat_g)
                    .push_bind(food.carbs_g);
            });
            if let Err(err) = insert.build().execute(&mut *tx).await {
                // Another replica starting at the same moment loaded them first.
                if is_unique_violation(&err) {
                    return Ok(());
                }
                return Err(err.into());
            }
        }
        tx.commit().await?;
        tracing::info!(foods = foods.len(), "loaded the food table");
        Ok(())
    }

    /// Runs an `INSERT` built on [`Database::insert_sql`] and returns the new row's id.
    ///
    /// sqlx's `Any` driver drops SQLite's last-insert rowid (it reports `None`), so on SQLite
    /// the statement ends in `RETURNING id` (SQLite 3.35+) and MySQL reports the id itself.
    ///
    /// `executor` is the pool, or a transaction the insert belongs to (`&mut *tx`).
    ///
    /// # Errors
    /// The statement failed, or the database returned no id.
    pub async fn insert_returning_id<'q, 'c, E>(
        &self,
        executor: E,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<i64, sqlx::Error>
    where
        E: Executor<'c, Database = sqlx::Any>,
    {
        match self.dialect {
            Dialect::Sqlite => query.fetch_one(executor).await?.try_get(0),
            Dialect::MySql => query
                .execute(executor)
                .await?
                .last_insert_id()
                .ok_or_else(|| sqlx::Error::Protocol("MySQL returned no insert id".to_owned())),
        }
    }

    /// `insert` as [`Database::insert_returning_id`] needs it for this dialect.
    #[must_use]
    pub fn insert_sql(&self, insert: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("{insert} RETURNING id"),
            Dialect::MySql => insert.to_owned(),
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn is_reachable(&self) -> bool {
        let ping = sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&self.pool);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), ping).await,
            Ok(Ok(1))
        )
    }
}

/// Whether `err` is a unique-constraint violation (a duplicate email, a food loaded twice).
#[must_use]
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// One row of the shipped food table.
#[derive(Debug, Clone, PartialEq)]
struct FoodRow<'a> {
    name: &'a str,
    kcal: i64,
    protein_g: f64,
    fat_g: f64,
    carbs_g: f64,
}

/// Parses `name,kcal,protein,fat,carbs` lines. The file is ours and its names hold no commas
/// or quotes (a test checks every row), so a split is the whole parser.
fn parse_foods(csv: &str) -> anyhow::Result<Vec<FoodRow<'_>>> {
    csv.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let row = match fields.as_slice() {
                [name, kcal, protein, fat, carbs] => (|| {
                    Some(FoodRow {
                        name,
                        kcal: kcal.parse().ok()?,
                        protein_g: protein.parse().ok()?,
                        fat_g: fat.parse().ok()?,
                        carbs_g: carbs.parse().ok()?,
                    })
                })(),
                _ => None,
            };
            row.with_context(|| format!("data/foods.csv line {}: {line:?} is malformed", i + 2))
        })
        .collect()
}

/// A SQLite URL that creates the file when missing, with its folder made.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or_default();
    let folder = Path::new(file)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = folder.filter(|_| file != ":memory:") {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the database folder {}", dir.display()))?;
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// The URL with its password replaced, for messages and logs.
#[must_use]
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_food_row_parses_and_names_are_unique() {
        let foods = parse_foods(FOODS_CSV).unwrap();
        assert!(foods.len() >= 300, "{} foods", foods.len());
        let mut names: Vec<String> = foods.iter().map(|f| f.name.to_lowercase()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), foods.len(), "duplicate food names");
        assert!(
            foods
                .iter()
                .all(|f| f.kcal >= 0 && f.protein_g >= 0.0 && f.name.len() <= 120)
        );
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("mysql://app:s3cret@db:3306/c"),
            "mysql://app:***@db:3306/c"
        );
        assert_eq!(redact("sqlite://data/c.db"), "sqlite://data/c.db");
    }

    #[test]
    fn sqlite_urls_create_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/c.db", dir.path().display());
        assert!(sqlite_url(&url).unwrap().ends_with("c.db?mode=rwc"));
        assert!(dir.path().join("sub").is_dir());
    }
}
