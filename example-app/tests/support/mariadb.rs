//! Starts, owns and tears down a throwaway MariaDB server for integration tests.
//!
//! Each [`MariaDb`] gets its own [`tempfile::TempDir`] holding a freshly
//! initialised data directory, the Unix socket, the pid file and the server
//! log (`mariadbd.log`). The server listens on `127.0.0.1` on a free TCP port
//! and has an account `app`/`app` with all privileges, so tests can connect
//! with a plain `mysql://app:app@127.0.0.1:PORT/db` URL (see [`MariaDb::url`]).
//! Databases are created with the `mariadb` command-line client, so this module
//! needs no async runtime and depends only on `std` and `tempfile`.
//!
//! Binaries are looked up in the usual Debian locations and on `PATH`; they can
//! be overridden with the environment variables `MARIADBD`,
//! `MARIADB_INSTALL_DB`, `MARIADB_CLIENT` (note that `mariadb-install-db`
//! finds its bootstrap server by itself, not through `MARIADBD`). If they are
//! missing, install `mariadb-server` (`scripts/test.sh` does it with `apt-get`).
//! Works as root (`--user=root` is then passed to both `mariadb-install-db`
//! and `mariadbd`) and as an ordinary user (no `--user`, which would make
//! `mariadb-install-db` fail on `chown`).
//!
//! # Process lifetime
//!
//! `mariadbd` is not a direct child of the test process: it runs under a tiny
//! `sh` supervisor (in its own process group, so Ctrl-C in the terminal does
//! not reach it directly) whose stdin is a pipe from the test process. The
//! supervisor
//!
//! * reaps `mariadbd`, so no zombie is left behind;
//! * when [`Drop`] writes `stop` into the pipe, shuts the server down
//!   gracefully (`SIGTERM`, hard kill after 10 s) and exits;
//! * when the pipe reaches end-of-file because the test process is gone
//!   (normal exit, `panic = "abort"`, `SIGKILL`, ...: the kernel closes the
//!   pipe in every case), kills `mariadbd` with `SIGKILL` at once and deletes
//!   the temporary directory. This takes milliseconds, but it happens just
//!   *after* the test process exits, not before.
//!
//! The last point matters for [`shared`]: a value stored in a `static` is
//! never dropped, so without the supervisor the shared server would outlive
//! the test binary and its temporary directory would never be removed.
// Not every test binary uses every helper.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Name of the account created for tests (all privileges, any host).
pub const USER: &str = "app";
/// Password of [`USER`].
pub const PASSWORD: &str = "app";

/// How long [`MariaDb::start`] waits for the server to answer a query.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many ports are tried when the chosen port is taken before `mariadbd` binds it.
const PORT_ATTEMPTS: usize = 5;
/// How long [`Drop`] waits for a graceful shutdown before killing.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// `sun_path` is 108 bytes on Linux; keep a margin.
const MAX_SOCKET_PATH: usize = 100;

const INSTALL_HINT: &str = "install mariadb-server (scripts/test.sh does it with \
    `apt-get install -y mariadb-server`) or point the environment variable at the binary";

/// Supervisor, run as `sh -c SUPERVISOR mariadb-supervisor DIR SERVER ARGS...`
/// with its stdin a pipe whose write end only the test process holds.
///
/// A background "watcher" blocks reading that pipe:
/// * a line (`stop`, written by [`Drop`]) means graceful shutdown: `SIGTERM`,
///   then `SIGKILL` after 10 s;
/// * end-of-file means the test process is gone (the kernel closes its fds
///   however it dies): write `DIR/.orphaned`, `SIGKILL` the server.
///
/// The supervisor itself waits for (reaps) the server, removes `DIR` if it
/// was orphaned, and exits with the server's status, so the test process sees
/// the supervisor exit exactly when the server exits.
const SUPERVISOR: &str = r#"
dir=$1; shift
trap '' INT HUP PIPE
exec 3<&0
"$@" </dev/null 3<&- &
server=$!
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    read -r line < "/proc/$1/stat" 2>/dev/null || return 1
    case "${line##*) }" in Z*|X*) return 1 ;; esac
    return 0
}
(
    if read -r _; then
        kill -TERM "$server" 2>/dev/null
        i=0
        while [ "$i" -lt 100 ] && alive "$server"; do sleep 0.1; i=$((i+1)); done
    else
        : > "$dir/.orphaned"
    fi
    kill -KILL "$server" 2>/dev/null
) <&3 &
watcher=$!
exec 3<&-
wait "$server"
status=$?
if [ -e "$dir/.orphaned" ]; then
    rm -rf "$dir"
else
    kill "$watcher" 2>/dev/null
fi
exit "$status"
"#;

/// A running, throwaway MariaDB server; dropping it stops the server and
/// deletes its data directory.
pub struct MariaDb {
    server: Server,
    port: u16,
    version: String,
    startup: Duration,
    log: PathBuf,
    socket: PathBuf,
    client: Client,
    /// How the server was started, so that [`MariaDb::restart`] can start it again.
    mariadbd: PathBuf,
    args: Vec<String>,
    pid_file: PathBuf,
    /// Declared last so it is removed after the server has stopped.
    dir: TempDir,
}

/// The role a server plays in replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No binary log: the shared server and most tests.
    Standalone,
    /// Binary log on, GTIDs, `server-id` 1: a primary a replica can follow.
    Primary,
    /// `server-id` 2, no binary log of its own: follows a primary (see [`MariaDb::start_replica_of`]).
    Replica,
}

/// Returns the server shared by the whole test binary, starting it on first use.
///
/// The server lives in a `static`, which Rust never drops, so [`Drop`] does
/// not run for it; instead its supervisor kills it and removes its temporary
/// directory once the test process has exited (see the module docs). Give
/// each test its own database with [`MariaDb::create_database`].
pub fn shared() -> &'static MariaDb {
    static SHARED: OnceLock<MariaDb> = OnceLock::new();
    SHARED.get_or_init(MariaDb::start)
}

/// Why one start attempt failed.
enum StartError {
    /// The port picked was grabbed by someone else before `mariadbd` bound it.
    PortTaken,
    /// Anything else: the message is ready to be shown.
    Fatal(String),
}

impl MariaDb {
    /// Initialises a fresh data directory and starts `mariadbd` on a free port
    /// of `127.0.0.1`, returning once the server answers queries over TCP.
    ///
    /// # Panics
    ///
    /// If a binary is missing (with a hint to install `mariadb-server`), if
    /// `mariadb-install-db` fails, or if the server does not answer within
    /// 60 seconds; the message then contains the tail of the relevant log.
    pub fn start() -> MariaDb {
        Self::start_as(Role::Standalone)
    }

    /// As [`start`](Self::start), configured for `role` in replication.
    pub fn start_as(role: Role) -> MariaDb {
        let started = Instant::now();
        let mariadbd = find_binary("MARIADBD", &["mariadbd", "mysqld"]);
        let install_db = find_binary(
            "MARIADB_INSTALL_DB",
            &["mariadb-install-db", "mysql_install_db"],
        );
        let client = find_binary("MARIADB_CLIENT", &["mariadb", "mysql"]);

        let dir = make_temp_dir();
        let data = dir.path().join("data");
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).expect("create tmp dir for mariadbd inside the TempDir");
        let socket = dir.path().join("mariadbd.sock");
        let pid_file = dir.path().join("mariadbd.pid");
        let log = dir.path().join("mariadbd.log");
        let root = running_as_root();

        install_data_dir(&install_db, &data, &tmp, dir.path(), root);

        let mut last_error = String::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let mut args: Vec<String> = vec![
                "--no-defaults".into(),
                format!("--datadir={}", data.display()),
                format!("--tmpdir={}", tmp.display()),
                format!("--socket={}", socket.display()),
                format!("--pid-file={}", pid_file.display()),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".into(),
                "--skip-networking=0".into(),
                "--skip-name-resolve".into(),
                "--performance-schema=OFF".into(),
                // Small memory footprint; durability is irrelevant for a throwaway server.
                "--innodb-buffer-pool-size=32M".into(),
                "--innodb-log-file-size=8M".into(),
                "--innodb-log-buffer-size=2M".into(),
                "--innodb-flush-log-at-trx-commit=2".into(),
                "--innodb-doublewrite=0".into(),
                // io_uring/libaio are often blocked in containers (seccomp).
                "--innodb-use-native-aio=0".into(),
                "--key-buffer-size=1M".into(),
                "--aria-pagecache-buffer-size=8M".into(),
                "--query-cache-size=0".into(),
                "--character-set-server=utf8mb4".into(),
                "--collation-server=utf8mb4_unicode_ci".into(),
            ];
            match role {
                Role::Standalone => args.push("--skip-log-bin".into()),
                Role::Primary => args.extend([
                    format!("--log-bin={}", dir.path().join("binlog").display()),
                    "--server-id=1".into(),
                    "--binlog-format=ROW".into(),
                ]),
                // Replication resumes by itself after a restart (its position is in the
                // data directory).
                Role::Replica => args.extend(["--skip-log-bin".into(), "--server-id=2".into()]),
            }
            if root {
                // mariadbd refuses to run as root unless told so explicitly.
                args.push("--user=root".into());
            }
            let log_file = File::create(&log).expect("create mariadbd.log inside the TempDir");
            let supervisor = spawn_supervised(dir.path(), &mariadbd, &args, log_file);

            let mut server = Server::new(supervisor, pid_file.clone());
            let spawn_args = args;
            let probe = Client {
                binary: client.clone(),
                port,
            };
            match wait_until_ready(&mut server, &probe, &socket, &log) {
                Ok(version) => {
                    let mut db = MariaDb {
                        server,
                        port,
                        version,
                        startup: Duration::ZERO,
                        log,
                        socket,
                        client: probe,
                        mariadbd,
                        args: spawn_args,
                        pid_file,
                        dir,
                    };
                    db.create_app_user();
                    db.startup = started.elapsed();
                    return db;
                }
                Err(StartError::PortTaken) => {
                    server.stop();
                    last_error = format!("port {port} was taken (attempt {attempt})");
                }
                Err(StartError::Fatal(message)) => {
                    server.stop();
                    panic!(
                        "MariaDB did not start: {message}\n--- tail of {} ---\n{}",
                        log.display(),
                        log_tail(&log)
                    );
                }
            }
        }
        panic!("MariaDB did not start after {PORT_ATTEMPTS} attempts: {last_error}");
    }

    /// URL of `database` for the `app` account, e.g.
    /// `mysql://app:app@127.0.0.1:PORT/database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "mysql://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Creates a new, empty `utf8mb4` database and returns its [`url`](Self::url).
    ///
    /// # Panics
    ///
    /// If `name` is not 1–64 ASCII letters, digits or `_`, or if the database
    /// already exists (so two tests never share one by accident).
    pub fn create_database(&self, name: &str) -> String {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        assert!(
            valid,
            "invalid database name {name:?}: use 1-64 of [A-Za-z0-9_]"
        );
        self.execute(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ));
        self.url(name)
    }

    /// Runs `sql` as `root` with the `mariadb` client and returns its output
    /// (tab-separated rows, no header).
    ///
    /// # Panics
    ///
    /// If the client cannot be run or the statement fails.
    pub fn execute(&self, sql: &str) -> String {
        self.try_execute(sql)
            .unwrap_or_else(|e| panic!("MariaDB statement failed: {sql}\n{e}"))
    }

    /// TCP port the server listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Server version as reported by `SELECT VERSION()`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Wall-clock time [`start`](Self::start) took, from creating the data
    /// directory to the first answered query.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Path of the server's Unix socket (inside the temporary directory).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Path of the server log (stdout and stderr of `mariadbd`).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Temporary directory holding data, socket, pid file and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn try_execute(&self, sql: &str) -> Result<String, String> {
        self.client.execute(sql)
    }

    /// Starts a replica of `primary` (started with [`Role::Primary`]) on another free port
    /// of 127.0.0.1 and returns once it has applied everything the primary has logged.
    ///
    /// Replication starts at the primary's current GTID position: the replica has its own
    /// `app` account already, so what came before (that account's creation) is not replayed.
    pub fn start_replica_of(primary: &MariaDb) -> MariaDb {
        let replica = MariaDb::start_as(Role::Replica);
        let position = primary.gtid_binlog_pos();
        replica.execute(&format!(
            "SET GLOBAL gtid_slave_pos = '{position}'; \
             CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
             MASTER_USER = '{USER}', MASTER_PASSWORD = '{PASSWORD}', \
             MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = slave_pos; \
             START SLAVE;",
            primary.port
        ));
        replica.wait_caught_up(primary);
        replica
    }

    /// The primary's `@@gtid_binlog_pos`: everything it has logged so far.
    pub fn gtid_binlog_pos(&self) -> String {
        self.execute("SELECT @@gtid_binlog_pos").trim().to_owned()
    }

    /// Waits (in the server, with `MASTER_GTID_WAIT`) until this replica has applied
    /// everything `primary` has logged so far.
    ///
    /// # Panics
    /// If it has not within 60 seconds (the message holds the replica's status).
    pub fn wait_caught_up(&self, primary: &MariaDb) {
        let position = primary.gtid_binlog_pos();
        let reached = self.execute(&format!("SELECT MASTER_GTID_WAIT('{position}', 60)"));
        assert_eq!(
            reached.trim(),
            "0",
            "the replica did not reach {position} within 60 s:\n{}",
            self.execute("SHOW SLAVE STATUS\\G")
        );
    }

    /// A global status counter such as `Com_select`.
    pub fn status(&self, name: &str) -> u64 {
        let out = self.execute(&format!("SHOW GLOBAL STATUS LIKE '{name}'"));
        out.split('\t')
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no status {name}: {out:?}"))
    }

    /// Stops the server (gracefully); [`restart`](Self::restart) starts it again on the same
    /// port with the same data.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts a stopped server again, on the same port and data directory, and returns once
    /// it answers.
    ///
    /// # Panics
    /// If it does not answer within 60 seconds.
    pub fn restart(&mut self) {
        self.server.stop();
        let log_file = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("open mariadbd.log to append");
        let supervisor = spawn_supervised(self.dir.path(), &self.mariadbd, &self.args, log_file);
        self.server = Server::new(supervisor, self.pid_file.clone());
        if let Err(err) = wait_until_ready(&mut self.server, &self.client, &self.socket, &self.log)
        {
            let message = match err {
                StartError::Fatal(message) => message,
                StartError::PortTaken => format!("port {} was taken meanwhile", self.port),
            };
            panic!(
                "MariaDB did not restart: {message}\n--- tail of {} ---\n{}",
                self.log.display(),
                log_tail(&self.log)
            );
        }
    }

    fn create_app_user(&self) {
        self.execute(&format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;"
        ));
    }
}

impl Drop for MariaDb {
    /// Shuts the server down (gracefully, hard kill after 15 s) and waits for
    /// it; the temporary directory is removed right after.
    fn drop(&mut self) {
        self.server.stop();
    }
}

/// The `sh` supervisor whose child is `mariadbd`, plus the pipe that keeps it alive.
struct Server {
    supervisor: Child,
    /// Write end of the supervisor's stdin; closing it (explicitly or by the
    /// test process dying) makes the supervisor kill the server.
    lifeline: Option<ChildStdin>,
    pid_file: PathBuf,
}

impl Server {
    fn new(mut supervisor: Child, pid_file: PathBuf) -> Server {
        let lifeline = supervisor.stdin.take();
        Server {
            supervisor,
            lifeline,
            pid_file,
        }
    }

    /// Stops the server: asks the supervisor for a graceful shutdown
    /// (`SIGTERM`, `SIGKILL` after 10 s) and waits for it; if it is stuck,
    /// kills supervisor and server outright. Idempotent.
    fn stop(&mut self) {
        if let Some(mut lifeline) = self.lifeline.take() {
            // If the write fails the supervisor is gone or sees EOF and kills anyway.
            let _ = lifeline.write_all(b"stop\n");
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            match self.supervisor.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                _ => return,
            }
        }
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
        if let Ok(server_pid) = fs::read_to_string(&self.pid_file) {
            let _ = Command::new("sh")
                .args(["-c", "kill -KILL \"$1\"", "kill", server_pid.trim()])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs SQL as `root` over TCP with the `mariadb` command-line client.
struct Client {
    binary: PathBuf,
    port: u16,
}

impl Client {
    fn execute(&self, sql: &str) -> Result<String, String> {
        let output = Command::new(&self.binary)
            .arg("--no-defaults")
            .arg("--protocol=TCP")
            .arg("--host=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg("--user=root")
            .arg("--connect-timeout=5")
            .arg("--batch")
            .arg("--skip-column-names")
            .arg(format!("--execute={sql}"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{} exited with {}: {}",
                self.binary.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}

/// Starts `mariadbd args` under the [`SUPERVISOR`] of `dir`, logging to `log`.
fn spawn_supervised(dir: &Path, mariadbd: &Path, args: &[String], log: File) -> Child {
    let log_err = log.try_clone().expect("clone mariadbd.log handle");
    Command::new("sh")
        .arg("-c")
        .arg(SUPERVISOR)
        .arg("mariadb-supervisor")
        .arg(dir)
        .arg(mariadbd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn `sh` to supervise mariadbd: {e}"))
}

/// Polls until the server answers over TCP, exits, or the deadline passes;
/// returns the server version.
fn wait_until_ready(
    server: &mut Server,
    client: &Client,
    socket: &Path,
    log: &Path,
) -> Result<String, StartError> {
    let deadline = Instant::now() + START_DEADLINE;
    let addr = SocketAddr::from(([127, 0, 0, 1], client.port));
    let mut last = String::from("no TCP connection yet");
    loop {
        match server.supervisor.try_wait() {
            Ok(Some(status)) => {
                let text = fs::read_to_string(log).unwrap_or_default();
                return Err(
                    if text.contains("Address already in use")
                        || text.contains("Bind on TCP/IP port")
                    {
                        StartError::PortTaken
                    } else {
                        StartError::Fatal(format!("mariadbd exited early ({status})"))
                    },
                );
            }
            Ok(None) => {}
            Err(e) => return Err(StartError::Fatal(format!("cannot poll mariadbd: {e}"))),
        }
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            // Make sure it is our server, not whoever grabbed the port, that answers.
            match client.execute("SELECT VERSION(), @@socket") {
                Ok(out) => {
                    let mut fields = out.trim_end().splitn(2, '\t');
                    let version = fields.next().unwrap_or_default().to_owned();
                    if fields.next() == Some(socket.to_string_lossy().as_ref()) {
                        return Ok(version);
                    }
                    last = format!("port {} is answered by another server: {out}", client.port);
                }
                Err(e) => last = e,
            }
        }
        if Instant::now() >= deadline {
            return Err(StartError::Fatal(format!(
                "no answer within {START_DEADLINE:?}; last error: {last}"
            )));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Looks a binary up: `env` override, then `PATH` plus the usual sbin dirs.
fn find_binary(env: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env}={} does not exist: {INSTALL_HINT}",
            path.display()
        );
        return path;
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path_var).collect();
    for extra in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    for name in names {
        for dir in &dirs {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "`{}` not found (override with {env}): {INSTALL_HINT}",
        names[0]
    );
}

/// Creates the temporary directory, in `/tmp` if `$TMPDIR` would make the
/// socket path too long for a Unix socket.
fn make_temp_dir() -> TempDir {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("mariadb-test-");
        b
    };
    let dir = builder
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create temp dir for MariaDB: {e}"));
    if dir.path().join("mariadbd.sock").as_os_str().len() <= MAX_SOCKET_PATH {
        return dir;
    }
    builder
        .tempdir_in("/tmp")
        .unwrap_or_else(|e| panic!("cannot create temp dir for MariaDB in /tmp: {e}"))
}

/// Whether the effective uid is 0 (`/proc/self` is owned by the effective uid).
fn running_as_root() -> bool {
    match fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.trim_ascii() == b"0")
            .unwrap_or(false),
    }
}

/// Runs `mariadb-install-db` into `data` (temporary files in `tmp`), logging
/// to `install.log` in `dir`.
fn install_data_dir(install_db: &Path, data: &Path, tmp: &Path, dir: &Path, root: bool) {
    let log = dir.join("install.log");
    let out = File::create(&log).expect("create install.log inside the TempDir");
    let err = out.try_clone().expect("clone install.log handle");
    let mut cmd = Command::new(install_db);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg("--skip-name-resolve")
        // Never the shared /tmp: every starting mariadbd deletes all `#sql*`
        // files in its tmpdir, including those of concurrent servers.
        .arg(format!("--tmpdir={}", tmp.display()))
        // Passed through to the bootstrap server; same redo log size as at run
        // time, so the first start does not resize it.
        .arg("--innodb-log-file-size=8M")
        .arg("--innodb-buffer-pool-size=32M")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if root {
        // Needed as root; as non-root `--user` makes it fail on chown.
        cmd.arg("--user=root");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}: {INSTALL_HINT}", install_db.display()));
    if !status.success() {
        panic!(
            "{} failed ({status})\n--- tail of install.log ---\n{}",
            install_db.display(),
            log_tail(&log)
        );
    }
}

/// Asks the kernel for a free port on 127.0.0.1 (released before returning).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to pick a port: {e}"))
}

/// Last ~40 lines (at most 8 KiB) of a log file.
fn log_tail(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
        let _ = f.read_to_end(&mut buf);
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
