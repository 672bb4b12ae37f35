//! The stack under test and its faults: MariaDB, Redis, the calories-app replicas and nginx,
//! each started on 127.0.0.1 in the run directory, killed, stopped and restarted on demand,
//! and stopped by pid at the end.
//!
//! Every pid is appended to `RUN/pids` as it starts, so that `benches/capacity.sh` can kill
//! whatever is left should this process die without cleaning up.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http::Client;

/// Named counters (statement kinds, Redis commands) and their values.
pub(crate) type Counts = std::collections::BTreeMap<String, u64>;

/// How the replicas are configured, beyond what the stack itself decides.
#[derive(Debug, Clone)]
pub(crate) struct AppSettings {
    /// `CACHE_URL`: the stack's Redis, or `none`.
    pub(crate) cache_on: bool,
    /// `CACHE_LOCAL_CAPACITY` with the cache on (the ConfigMap's 10,000).
    pub(crate) local_capacity: u64,
}

/// One process the stack started, and how to start it again.
#[derive(Debug)]
pub(crate) struct Proc {
    /// What it is, in messages: `redis-server`, `calories-app #2`, ...
    pub(crate) name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Its log file.
    pub(crate) log: PathBuf,
    child: Option<Child>,
    /// CPU ticks of earlier incarnations (killed or stopped).
    retired_ticks: u64,
}

impl Proc {
    fn new(name: &str, program: impl Into<PathBuf>, args: Vec<String>, log: PathBuf) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args,
            env: Vec::new(),
            log,
            child: None,
            retired_ticks: 0,
        }
    }

    /// The running incarnation's pid.
    #[must_use]
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self, pids: &Path) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("{}: cannot open {}", self.name, self.log.display()))?;
        let err = log.try_clone()?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .with_context(|| {
                format!(
                    "{}: cannot start {}; see {}",
                    self.name,
                    self.program.display(),
                    self.log.display()
                )
            })?;
        let mut file = OpenOptions::new().create(true).append(true).open(pids)?;
        writeln!(file, "{}", child.id())?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the process is still running.
    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// CPU ticks of this process (all incarnations) and, with `children`, of its children.
    fn ticks(&self, children: bool) -> u64 {
        let live = self.pid().map_or(0, |pid| {
            let own = ticks_of(pid);
            if children {
                own + children_of(pid).into_iter().map(ticks_of).sum::<u64>()
            } else {
                own
            }
        });
        self.retired_ticks + live
    }

    /// SIGKILL, and wait for the exit.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.retired_ticks += ticks_of(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait up to `grace` for the exit, then SIGKILL. The exit status.
    fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id();
        let _ = Command::new("kill")
            .args(["-s", "TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + grace;
        let mut last = ticks_of(pid);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.retired_ticks += last;
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    last = ticks_of(pid).max(last);
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    self.retired_ticks += last;
                    return child.wait().ok();
                }
            }
        }
    }

    fn tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn failed(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{} {what}; its log is {} and ends with:\n{}",
            self.name,
            self.log.display(),
            self.tail()
        )
    }
}

/// The user + system CPU ticks of `pid` (0 once it is gone).
#[must_use]
pub(crate) fn ticks_of(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // After the command's ")" the fields are: state ppid ... utime (14th) stime (15th).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// The pids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
///
/// # Errors
/// No port could be bound.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// The whole stack.
#[derive(Debug)]
pub(crate) struct Stack {
    dir: PathBuf,
    pids: PathBuf,
    /// `calories-app`'s binary.
    app_bin: PathBuf,
    mariadb: Proc,
    db_socket: PathBuf,
    /// MariaDB's port.
    pub(crate) db_port: u16,
    redis: Proc,
    /// Redis's port.
    pub(crate) redis_port: u16,
    apps: Vec<(Proc, u16)>,
    /// Which replicas nginx sends traffic to.
    in_rotation: Vec<bool>,
    nginx: Proc,
    /// nginx's port: the entry point of every user.
    pub(crate) nginx_port: u16,
    jwt_secret: String,
    settings: AppSettings,
}

/// The `calories` database user's password (a loopback-only throwaway database).
const DB_PASSWORD: &str = "capacity";

impl Stack {
    /// Prepares the stack in `dir` (nothing starts yet).
    ///
    /// # Errors
    /// `dir` cannot be written, or no free port.
    pub(crate) fn new(dir: &Path, app_bin: &Path, replicas: usize) -> anyhow::Result<Self> {
        for sub in ["db/data", "db/tmp", "redis", "photos", "nginx/tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let db_port = free_port()?;
        let redis_port = free_port()?;
        let nginx_port = free_port()?;
        let db_socket = dir.join("db/mariadbd.sock");
        let as_root = is_root();
        let mut db_args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", dir.join("db/data").display()),
            format!("--tmpdir={}", dir.join("db/tmp").display()),
            format!("--socket={}", db_socket.display()),
            format!("--pid-file={}", dir.join("db/mariadbd.pid").display()),
            format!("--port={db_port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--skip-name-resolve".to_owned(),
            "--skip-log-bin".to_owned(),
            "--performance-schema=OFF".to_owned(),
            "--innodb-buffer-pool-size=512M".to_owned(),
            "--innodb-use-native-aio=0".to_owned(),
            "--max-connections=500".to_owned(),
            "--character-set-server=utf8mb4".to_owned(),
            "--collation-server=utf8mb4_unicode_ci".to_owned(),
        ];
        if as_root {
            db_args.insert(1, "--user=root".to_owned());
        }
        let mariadbd = ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mariadbd");
        let redis = Proc::new(
            "redis-server",
            "redis-server",
            vec![
                "--port".into(),
                redis_port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                dir.join("redis").display().to_string(),
            ],
            dir.join("redis.log"),
        );
        let nginx = Proc::new(
            "nginx",
            "nginx",
            vec![
                "-p".into(),
                dir.join("nginx").display().to_string(),
                "-c".into(),
                dir.join("nginx/nginx.conf").display().to_string(),
                "-e".into(),
                dir.join("nginx/error.log").display().to_string(),
            ],
            dir.join("nginx.log"),
        );
        let mut apps = Vec::new();
        for i in 0..replicas {
            let name = format!("calories-app #{}", i + 1);
            let log = dir.join(format!("app-{}.log", i + 1));
            apps.push((Proc::new(&name, app_bin, Vec::new(), log), free_port()?));
        }
        // 64 hex digits, as `openssl rand -hex 32` makes, unique per run.
        let mut jwt_secret = String::new();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for i in 0..4u128 {
            let _ = write!(
                jwt_secret,
                "{:016x}",
                (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15 + i) >> 16) as u64 ^ 0x5bd1_e995
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            pids: dir.join("pids"),
            app_bin: app_bin.to_path_buf(),
            mariadb: Proc::new("mariadbd", mariadbd, db_args, dir.join("mariadbd.log")),
            db_socket,
            db_port,
            redis,
            redis_port,
            in_rotation: vec![true; apps.len()],
            apps,
            nginx,
            nginx_port,
            jwt_secret,
            settings: AppSettings {
                cache_on: true,
                local_capacity: 10_000,
            },
        })
    }

    /// `mysql://` URL of the run's database.
    #[must_use]
    pub(crate) fn database_url(&self) -> String {
        format!(
            "mysql://calories:{DB_PASSWORD}@127.0.0.1:{}/calories",
            self.db_port
        )
    }

    /// The replicas' ports.
    #[must_use]
    pub(crate) fn app_ports(&self) -> Vec<u16> {
        self.apps.iter().map(|(_, port)| *port).collect()
    }

    /// Creates the data directory, starts MariaDB and creates the database and its user.
    ///
    /// # Errors
    /// `mariadb-install-db` or `mariadbd` failed: the message names the log.
    pub(crate) fn start_mariadb(&mut self) -> anyhow::Result<()> {
        let install_log = self.dir.join("mariadb-install-db.log");
        let mut install = Command::new("mariadb-install-db");
        install.args([
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]);
        if is_root() {
            install.arg("--user=root");
        }
        let status = install
            .arg(format!("--datadir={}", self.dir.join("db/data").display()))
            .arg(format!("--tmpdir={}", self.dir.join("db/tmp").display()))
            .stdout(File::create(&install_log)?)
            .stderr(File::create(self.dir.join("mariadb-install-db.err"))?)
            .status()
            .context("mariadb-install-db cannot run (is mariadb-server installed?)")?;
        if !status.success() {
            bail!(
                "mariadb-install-db failed; see {} and its .err beside it",
                install_log.display()
            );
        }
        self.spawn_mariadb()?;
        self.sql(&format!(
            "CREATE DATABASE calories CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; \
             CREATE USER 'calories'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'; \
             GRANT ALL PRIVILEGES ON calories.* TO 'calories'@'127.0.0.1';"
        ))?;
        Ok(())
    }

    fn spawn_mariadb(&mut self) -> anyhow::Result<()> {
        self.mariadb.spawn(&self.pids)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.sql("SELECT 1").is_ok() {
                return Ok(());
            }
            if !self.mariadb.alive() {
                return Err(self.mariadb.failed("exited at start"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(self.mariadb.failed("did not answer within 60 s"))
    }

    /// Runs SQL as root over the socket; its output.
    ///
    /// # Errors
    /// The client failed.
    pub(crate) fn sql(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.db_socket.display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .context("the mariadb client cannot run")?;
        if !out.status.success() {
            bail!("mariadb: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// MariaDB's `Questions` counter (statements clients sent), if it answers.
    #[must_use]
    pub(crate) fn questions(&self) -> Option<u64> {
        self.sql("SHOW GLOBAL STATUS LIKE 'Questions'")
            .ok()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// MariaDB's statement counters (`Com_select`, `Com_insert`, ...: each statement kind
    /// clients sent), those above zero, if it answers.
    #[must_use]
    pub(crate) fn statements(&self) -> Option<Counts> {
        let out = self.sql("SHOW GLOBAL STATUS LIKE 'Com\\_%'").ok()?;
        Some(
            out.lines()
                .filter_map(|line| {
                    let (name, value) = line.split_once('\t')?;
                    let n: u64 = value.trim().parse().ok()?;
                    (n > 0).then(|| (name.trim_start_matches("Com_").to_owned(), n))
                })
                .collect(),
        )
    }

    /// Redis's calls per command (`INFO commandstats`), if it answers.
    #[must_use]
    pub(crate) fn redis_commands(&self) -> Option<Counts> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.redis_port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream.write_all(b"INFO commandstats\r\n").ok()?;
        // A bulk string: `$<length>\r\n<text>\r\n`.
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        let mut expected = None;
        while expected.is_none_or(|len| reply.len() < len) {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            reply.extend_from_slice(&buf[..n]);
            if expected.is_none()
                && let Some(end) = reply.windows(2).position(|w| w == b"\r\n")
            {
                let len: usize = std::str::from_utf8(reply.get(1..end)?).ok()?.parse().ok()?;
                expected = Some(end + 2 + len);
            }
        }
        let text = String::from_utf8_lossy(&reply);
        // cmdstat_get:calls=12,usec=34,...
        Some(
            text.lines()
                .filter_map(|line| {
                    let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                    let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                    Some((name.to_owned(), calls.parse().ok()?))
                })
                .collect(),
        )
    }

    /// Stops MariaDB by SIGTERM and waits for its exit.
    pub(crate) fn stop_mariadb(&mut self) {
        self.mariadb.terminate(Duration::from_secs(60));
    }

    /// Starts MariaDB again on the same data directory and port.
    ///
    /// # Errors
    /// It did not come back: the message names its log.
    pub(crate) fn restart_mariadb(&mut self) -> anyhow::Result<()> {
        self.spawn_mariadb()
    }

    /// Starts redis-server and waits for its PONG.
    ///
    /// # Errors
    /// It did not answer: the message names its log.
    pub(crate) fn start_redis(&mut self) -> anyhow::Result<()> {
        self.redis.spawn(&self.pids)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if redis_ping(self.redis_port) {
                return Ok(());
            }
            if !self.redis.alive() {
                return Err(self.redis.failed("exited at start"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(self.redis.failed("did not answer PING within 20 s"))
    }

    /// SIGKILLs redis-server.
    pub(crate) fn kill_redis(&mut self) {
        self.redis.kill();
    }

    /// Runs `calories-app seed`.
    ///
    /// # Errors
    /// The seed failed: the message names its log.
    pub(crate) fn seed(&self, users: u64, meals_per_user: u32) -> anyhow::Result<String> {
        let log = self.dir.join("seed.log");
        let status = Command::new(&self.app_bin)
            .args([
                "seed",
                "--users",
                &users.to_string(),
                "--meals-per-user",
                &meals_per_user.to_string(),
            ])
            .env("DATABASE_URL", self.database_url())
            .env("RUST_LOG", "warn")
            .stdout(File::create(&log)?)
            .stderr(File::create(self.dir.join("seed.err"))?)
            .status()
            .context("calories-app seed cannot run")?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            bail!(
                "calories-app seed failed; see {} and seed.err beside it",
                log.display()
            );
        }
        Ok(text.trim().to_owned())
    }

    /// The replicas' environment: the ConfigMap's settings, rate limits raised for the run.
    fn app_env(&self, port: u16) -> Vec<(String, String)> {
        let mut env: Vec<(&str, String)> = vec![
            ("APP_ENV", "production".into()),
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("DATABASE_URL", self.database_url()),
            ("DATABASE_MAX_CONNECTIONS", "10".into()),
            ("JWT_SECRET", self.jwt_secret.clone()),
            // Long enough for the whole run: no refresh storm in the middle of a phase.
            ("JWT_TTL_SECONDS", "14400".into()),
            ("PHOTO_DIR", self.dir.join("photos").display().to_string()),
            // All users come from 127.0.0.1 through nginx: per-IP limits would refuse the run.
            ("RATE_LIMIT_PER_MINUTE", "1000000".into()),
            ("RATE_LIMIT_ANON_PER_MINUTE", "1000000".into()),
            ("RATE_LIMIT_AUTH_PER_MINUTE", "1000000".into()),
            ("UPLOADS_PER_MINUTE", "1000".into()),
            ("PASSWORD_HASH_CONCURRENCY", "1".into()),
            ("PASSWORD_HASH_WAIT_MS", "2000".into()),
            ("TRUST_FORWARDED_FOR", "true".into()),
            ("SHUTDOWN_GRACE_SECONDS", "20".into()),
            // The ConfigMap's `info` writes a line per request: gigabytes over a full run.
            ("RUST_LOG", "warn".into()),
        ];
        if self.settings.cache_on {
            env.push((
                "CACHE_URL",
                format!("redis://127.0.0.1:{}/0", self.redis_port),
            ));
            env.push((
                "CACHE_LOCAL_CAPACITY",
                self.settings.local_capacity.to_string(),
            ));
            env.push(("CACHE_LOCAL_TTL_SECONDS", "5".into()));
        } else {
            env.push(("CACHE_URL", "none".into()));
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Starts replica `i` (from 0) and waits until `/health/ready` answers 200.
    ///
    /// # Errors
    /// It exited or did not become ready in 60 s: the message names its log.
    pub(crate) async fn start_app(&mut self, i: usize) -> anyhow::Result<()> {
        let port = self.apps[i].1;
        let env = self.app_env(port);
        let pids = self.pids.clone();
        let (app, _) = &mut self.apps[i];
        app.env = env;
        app.spawn(&pids)?;
        let probe = Client::new(format!("http://127.0.0.1:{port}"), 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if probe.status_of("/health/ready").await == 200 {
                return Ok(());
            }
            if !app.alive() {
                return Err(app.failed("exited at start"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(app.failed("was not ready (GET /health/ready) within 60 s"))
    }

    /// SIGKILLs replica `i`.
    pub(crate) fn kill_app(&mut self, i: usize) {
        self.apps[i].0.kill();
    }

    /// SIGTERMs replica `i` and waits for it to drain and exit; whether it exited cleanly.
    pub(crate) fn terminate_app(&mut self, i: usize) -> bool {
        self.apps[i]
            .0
            .terminate(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    }

    /// Replaces the replicas' settings (the next starts use them).
    pub(crate) fn set_app_settings(&mut self, settings: AppSettings) {
        self.settings = settings;
    }

    /// Writes nginx.conf for the replicas in rotation.
    fn write_nginx_conf(&self) -> anyhow::Result<()> {
        let dir = self.dir.join("nginx");
        let mut servers = String::new();
        for (i, (_, port)) in self.apps.iter().enumerate() {
            if self.in_rotation[i] {
                let _ = writeln!(
                    servers,
                    "        server 127.0.0.1:{port} max_fails=3 fail_timeout=5s;"
                );
            }
        }
        let tmp = dir.join("tmp");
        let conf = format!(
            "# Written by the capacity run: the ingress stand-in.\n\
             daemon off;\n\
             worker_processes 2;\n\
             pid {pid};\n\
             error_log {err} warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {tmp}/body;\n\
             \x20   proxy_temp_path {tmp}/proxy;\n\
             \x20   fastcgi_temp_path {tmp}/fastcgi;\n\
             \x20   uwsgi_temp_path {tmp}/uwsgi;\n\
             \x20   scgi_temp_path {tmp}/scgi;\n\
             \x20   client_max_body_size 6m;\n\
             \x20   keepalive_requests 100000;\n\
             \x20   upstream app {{\n\
             {servers}\
             \x20       keepalive 128;\n\
             \x20       keepalive_requests 100000;\n\
             \x20   }}\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port} backlog=4096;\n\
             \x20       location / {{\n\
             \x20           proxy_pass http://app;\n\
             \x20           proxy_http_version 1.1;\n\
             \x20           proxy_set_header Connection \"\";\n\
             \x20           proxy_set_header Host $host;\n\
             \x20           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             \x20           # Which replica answered: the oracle's violation log names it.\n\
             \x20           add_header X-Upstream $upstream_addr always;\n\
             \x20           # Retried on another replica: connection failures and 502 only, and\n\
             \x20           # only for idempotent methods (nginx never retries POST, PATCH or\n\
             \x20           # LOCK without `non_idempotent`). Not 503: that is the app's own\n\
             \x20           # answer (database down, hashing busy), and counting it as a failure\n\
             \x20           # would take every healthy replica out during a database outage.\n\
             \x20           proxy_next_upstream error timeout http_502;\n\
             \x20           proxy_next_upstream_tries 3;\n\
             \x20           # ingress-nginx's default: a 1 s connect timeout on an overloaded box\n\
             \x20           # failed connects in the first seconds of the MariaDB stop, and three\n\
             \x20           # such failures took every replica out for fail_timeout (502s).\n\
             \x20           proxy_connect_timeout 5s;\n\
             \x20           proxy_read_timeout 30s;\n\
             \x20       }}\n\
             \x20   }}\n\
             }}\n",
            pid = dir.join("nginx.pid").display(),
            err = dir.join("error.log").display(),
            tmp = tmp.display(),
            port = self.nginx_port,
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        Ok(())
    }

    /// Starts nginx in front of the replicas and waits until it answers.
    ///
    /// # Errors
    /// It exited or did not answer: the message names its log.
    pub(crate) async fn start_nginx(&mut self) -> anyhow::Result<()> {
        self.write_nginx_conf()?;
        self.nginx.spawn(&self.pids)?;
        let probe = Client::new(format!("http://127.0.0.1:{}", self.nginx_port), 1);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if probe.status_of("/health/live").await == 200 {
                return Ok(());
            }
            if !self.nginx.alive() {
                return Err(self.nginx.failed("exited at start"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(self.nginx.failed("did not answer within 20 s"))
    }

    /// Takes replica `i` in or out of nginx's rotation (a reload, as an ingress controller
    /// does when an endpoint changes).
    ///
    /// # Errors
    /// The configuration cannot be written or nginx signalled.
    pub(crate) fn set_rotation(&mut self, i: usize, on: bool) -> anyhow::Result<()> {
        self.in_rotation[i] = on;
        self.write_nginx_conf()?;
        let pid = self.nginx.pid().context("nginx is not running")?;
        let status = Command::new("kill")
            .args(["-s", "HUP", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "cannot signal nginx ({pid}) to reload");
        Ok(())
    }

    /// CPU seconds so far per process kind: apps, nginx, mariadbd, redis-server.
    #[must_use]
    pub(crate) fn cpu_seconds(&self, ticks_per_second: f64) -> Vec<(&'static str, f64)> {
        let apps: u64 = self.apps.iter().map(|(p, _)| p.ticks(false)).sum();
        vec![
            ("calories-app (3)", apps as f64 / ticks_per_second),
            ("nginx", self.nginx.ticks(true) as f64 / ticks_per_second),
            (
                "mariadbd",
                self.mariadb.ticks(false) as f64 / ticks_per_second,
            ),
            (
                "redis-server",
                self.redis.ticks(false) as f64 / ticks_per_second,
            ),
        ]
    }

    /// Stops everything: nginx, the replicas, Redis, then MariaDB (SIGTERM, then SIGKILL).
    pub(crate) fn stop_all(&mut self) {
        self.nginx.terminate(Duration::from_secs(5));
        for (app, _) in &mut self.apps {
            app.terminate(Duration::from_secs(25));
        }
        self.redis.terminate(Duration::from_secs(5));
        self.mariadb.terminate(Duration::from_secs(60));
    }

    /// Versions of the servers, for the report.
    #[must_use]
    pub(crate) fn versions(&self) -> Vec<(&'static str, String)> {
        let first_line = |program: &str, arg: &str| {
            Command::new(program)
                .arg(arg)
                .output()
                .ok()
                .map(|o| {
                    let text = if o.stdout.is_empty() {
                        o.stderr
                    } else {
                        o.stdout
                    };
                    String::from_utf8_lossy(&text)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                })
                .unwrap_or_default()
        };
        vec![
            ("MariaDB", self.sql("SELECT VERSION()").unwrap_or_default()),
            ("redis-server", first_line("redis-server", "--version")),
            ("nginx", first_line("nginx", "-v")),
        ]
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether a Redis on `port` answers PING.
fn redis_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}
