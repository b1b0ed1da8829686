//! A private PostgreSQL server for one test, for tests that must stop,
//! kill or restart the database itself (the shared `TEST_DATABASE_URL`
//! server is used by every other test at the same time, so it must never
//! be touched).
//!
//! [`PgServer::start`] runs `initdb` into a new directory under the
//! system's temporary directory and starts `postgres` on a free port,
//! listening on 127.0.0.1 only, with its Unix socket inside that directory.
//! [`PgServer::kill`] kills it the hard way (SIGKILL to the postmaster and
//! every backend, as a crash or the OOM killer would), and
//! [`PgServer::start_again`] starts it on the same data directory and port,
//! so PostgreSQL runs crash recovery from its WAL. Dropping the guard kills
//! the server and removes the directory, also when the test panics.
//!
//! The server binaries (`initdb`, `postgres`, `pg_isready`) are looked for
//! in `PG_BINDIR` (a hint), then `pg_config --bindir`, then the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout, which `scripts/test.sh`
//! installs), then `PATH`. Missing binaries fail the test with a message
//! saying what to install: no test is skipped. PostgreSQL refuses to run as
//! root, so under euid 0 every PostgreSQL command runs as the `postgres` OS
//! user (through `setpriv`), and the directory belongs to that user.
//! Linux only (`/proc` is read to find the backends to kill).
//!
//! ```no_run
//! use chat_test_support::pg_server::PgServer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut pg = PgServer::start().await;
//! let url = pg.url(); // postgres://postgres@127.0.0.1:PORT/postgres, trust auth
//! // ... start a server on `url` ...
//! pg.kill().await; // the database is gone: expect 503s
//! pg.start_again().await; // crash recovery, same port: expect recovery
//! # drop(url);
//! // Dropping `pg` kills it and removes its directory.
//! # }
//! ```

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::tls::ServerCertificate;

/// How long `postgres` may take to accept connections after a start,
/// crash recovery included.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the processes of a killed server may take to disappear.
const GONE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many free ports a first start tries before giving up (another
/// process may take the port between our probe and PostgreSQL's bind).
const PORT_ATTEMPTS: usize = 3;

/// What to tell someone whose machine lacks the server binaries.
const INSTALL_HINT: &str = "the PostgreSQL outage tests run a private PostgreSQL server and need \
     its binaries (initdb, postgres, pg_isready): install the server package \
     (Debian/Ubuntu: `apt-get install postgresql`; scripts/test.sh does this on a fresh machine) \
     or set PG_BINDIR to the directory holding them";

/// A private PostgreSQL server: its own data directory, port and socket
/// directory. Killed, and its directory removed, when dropped.
#[derive(Debug)]
pub struct PgServer {
    /// The temporary directory: data directory, socket and log inside.
    dir: PathBuf,
    /// Where `initdb`, `postgres` and `pg_isready` are.
    bindir: PathBuf,
    /// The port it listens on, on 127.0.0.1; kept across restarts.
    port: u16,
    /// Uid and gid to run PostgreSQL as (when the test runs as root).
    run_as: Option<(u32, u32)>,
    /// The running postmaster, if any.
    postmaster: Option<Child>,
}

impl PgServer {
    /// Creates a new cluster (`initdb`, trust authentication, superuser
    /// `postgres`) in a temporary directory and starts it on a free port.
    /// Panics, saying why (with PostgreSQL's own output), when it cannot.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Like [`PgServer::start`], but the server speaks TLS with
    /// `certificate` and accepts TCP connections over TLS only
    /// (`hostssl` in `pg_hba.conf`): a client that connects in plain text
    /// is refused, so a test that gets in has proved its connection is
    /// encrypted.
    pub async fn start_tls(certificate: &ServerCertificate) -> Self {
        Self::start_with(Some(certificate)).await
    }

    async fn start_with(tls: Option<&ServerCertificate>) -> Self {
        let bindir = find_bindir().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let run_as = postgres_os_user();
        let dir = std::env::temp_dir().join(format!("chat-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap_or_else(|err| panic!("creating {}: {err}", dir.display()));
        let mut server = Self {
            dir,
            bindir,
            port: 0,
            run_as,
            postmaster: None,
        };
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid)).unwrap_or_else(|err| {
                panic!(
                    "giving {} to the postgres OS user: {err}",
                    server.dir.display()
                )
            });
        }
        server.initdb().await;
        if let Some(certificate) = tls {
            server.require_tls(certificate);
        }
        let mut attempt = 1;
        loop {
            server.port = free_port();
            match server.launch().await {
                Ok(()) => return server,
                Err(err) if attempt >= PORT_ATTEMPTS => panic!("{err}"),
                Err(_) => attempt += 1,
            }
        }
    }

    /// The URL of its `postgres` database as the superuser `postgres`
    /// (no password: trust authentication on 127.0.0.1).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on (the same after [`PgServer::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Whether the postmaster was started and not killed since.
    pub fn is_running(&self) -> bool {
        self.postmaster.is_some()
    }

    /// Kills the server hard: stops the postmaster (so it forks nothing
    /// more), then SIGKILLs it and every backend and auxiliary process it
    /// started, and waits until they are all gone. Nothing is flushed or
    /// shut down cleanly: what was committed survives in the WAL, the rest
    /// is lost, as in a crash. Connections to it break at once.
    pub async fn kill(&mut self) {
        let Some(mut postmaster) = self.postmaster.take() else {
            panic!("kill: the private PostgreSQL server is not running");
        };
        if let Some(pid) = postmaster.id() {
            kill_tree(pid);
        }
        let reaped = tokio::time::timeout(GONE_TIMEOUT, postmaster.wait()).await;
        assert!(
            matches!(reaped, Ok(Ok(_))),
            "the killed postmaster did not exit: {reaped:?}"
        );
    }

    /// Starts the server again on the same data directory and port (after
    /// [`PgServer::kill`]: PostgreSQL recovers from its WAL first) and
    /// waits until it accepts connections. Panics if it does not within
    /// [`READY_TIMEOUT`].
    pub async fn start_again(&mut self) {
        assert!(
            self.postmaster.is_none(),
            "start_again: the private PostgreSQL server is already running"
        );
        if let Err(err) = self.launch().await {
            panic!("{err}");
        }
    }

    /// Freezes the server without breaking anything: SIGSTOP to the
    /// postmaster (first, so that it forks nothing more) and to every
    /// process it started. Open connections stay open and the kernel still
    /// accepts new ones, but nothing is answered until [`PgServer::thaw`]:
    /// what a client sees of a server that hangs, or of a network that
    /// silently drops every packet.
    pub fn freeze(&mut self) {
        let pid = self.running_pid("freeze");
        signal("STOP", &[pid]);
        signal("STOP", &children_of(pid));
    }

    /// Lets a server frozen by [`PgServer::freeze`] run again: SIGCONT to
    /// every process it started, then to the postmaster.
    pub fn thaw(&mut self) {
        let pid = self.running_pid("thaw");
        signal("CONT", &children_of(pid));
        signal("CONT", &[pid]);
    }

    /// The postmaster's pid; panics, naming `what`, when it is not running.
    fn running_pid(&self, what: &str) -> u32 {
        self.postmaster
            .as_ref()
            .and_then(Child::id)
            .unwrap_or_else(|| panic!("{what}: the private PostgreSQL server is not running"))
    }

    /// `initdb` into `<dir>/data`.
    async fn initdb(&self) {
        let data = self.data_dir();
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                // A throwaway cluster: no need to wait for the disk here.
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|err| panic!("running initdb: {err}; {INSTALL_HINT}"));
        assert!(
            output.status.success(),
            "initdb -D {} failed ({}):\n{}{}",
            data.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Installs `certificate` as the server's, turns `ssl` on and lets TCP
    /// clients in over TLS only (`pg_isready` asks over TLS too, libpq's
    /// default; the Unix socket keeps trust authentication).
    fn require_tls(&self, certificate: &ServerCertificate) {
        let data = self.data_dir();
        // PostgreSQL refuses a key readable by others, or not its own.
        self.write_private(&data.join("server.crt"), &certificate.cert_pem);
        self.write_private(&data.join("server.key"), &certificate.key_pem);
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
        self.write_private(&data.join("pg_hba.conf"), hba);
        let conf = data.join("postgresql.conf");
        let mut settings = std::fs::read_to_string(&conf)
            .unwrap_or_else(|err| panic!("reading {}: {err}", conf.display()));
        settings.push_str("\nssl = on\n");
        self.write_private(&conf, &settings);
    }

    /// Writes `contents` to `path`, mode 0600, owned by the PostgreSQL user.
    fn write_private(&self, path: &Path, contents: &str) {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let written = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| file.write_all(contents.as_bytes()));
        written.unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|err| panic!("chown {}: {err}", path.display()));
        }
    }

    /// Starts `postgres` on `self.port` and waits until it accepts
    /// connections; on failure, kills what it started and says why.
    async fn launch(&mut self) -> Result<(), String> {
        let log_path = self.dir.join("postgres.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|err| format!("opening {}: {err}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|err| format!("opening {}: {err}", log_path.display()))?;
        let mut postmaster = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg("listen_addresses=127.0.0.1")
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "max_connections=50", "-c", "shared_buffers=16MB"])
            // A killed process loses nothing written to the kernel: commits
            // still write their WAL before they return, and only an OS crash
            // would need the fsyncs. Without them a restart skips syncing the
            // whole data directory before crash recovery (2-3 s here), and
            // the test disturbs the shared machine's disk less.
            .args(["-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("starting postgres: {err}; {INSTALL_HINT}"))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = postmaster.try_wait() {
                return Err(format!(
                    "the private PostgreSQL server on port {} exited at start ({status}); its log:\n{}",
                    self.port,
                    read_log(&log_path)
                ));
            }
            if self.accepts_connections().await {
                self.postmaster = Some(postmaster);
                return Ok(());
            }
            if Instant::now() > deadline {
                if let Some(pid) = postmaster.id() {
                    kill_tree(pid);
                }
                let _ = postmaster.wait().await;
                return Err(format!(
                    "the private PostgreSQL server on port {} did not accept connections within {READY_TIMEOUT:?}; its log:\n{}",
                    self.port,
                    read_log(&log_path)
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `pg_isready` over TCP: accepting connections, not merely listening
    /// (a server in crash recovery listens but refuses sessions).
    async fn accepts_connections(&self) -> bool {
        let status = Command::new(self.bindir.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-t", "1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        matches!(status, Ok(status) if status.success())
    }

    /// A PostgreSQL program from the bindir, run as the `postgres` OS user
    /// when we are root (initdb and postgres refuse root).
    fn command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                // setpriv execs the program in place (no extra process),
                // so the child's pid is the postmaster's own.
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(program);
                command
            }
            None => Command::new(program),
        };
        // Predictable messages and no locale warnings whatever the host's.
        command.env("LC_ALL", "C").current_dir(&self.dir);
        command
    }
}

impl Drop for PgServer {
    /// Kills the server (a no-op when it is not running) and removes its
    /// directory. Synchronous: `Drop` cannot await.
    fn drop(&mut self) {
        if let Some(pid) = self.postmaster.as_ref().and_then(Child::id) {
            kill_tree(pid);
        }
        // Dropping the `Child` lets tokio reap the postmaster.
        self.postmaster = None;
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "warning: could not remove the private PostgreSQL directory {}: {err}",
                self.dir.display()
            );
        }
    }
}

// ------------------------------------------------------------- internals

/// Where the PostgreSQL server binaries are, if anywhere.
fn find_bindir() -> Option<PathBuf> {
    let has_server = |dir: &Path| {
        ["initdb", "postgres", "pg_isready"]
            .iter()
            .all(|program| dir.join(program).is_file())
    };
    if let Some(dir) = std::env::var_os("PG_BINDIR").filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            has_server(&dir),
            "PG_BINDIR={} holds no initdb, postgres and pg_isready; {INSTALL_HINT}",
            dir.display()
        );
        return Some(dir);
    }
    let from_pg_config = StdCommand::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    // Debian's /usr/bin/pg_config may belong to libpq-dev of another major
    // version than the installed server: check, then look further.
    if let Some(dir) = from_pg_config.filter(|dir| has_server(dir)) {
        return Some(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| has_server(dir))
}

/// Under euid 0, the uid and gid of the `postgres` OS user; otherwise
/// `None` (PostgreSQL then runs as the current user).
fn postgres_os_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = StdCommand::new("id").args(args).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"]) != Some(0) {
        return None;
    }
    match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
        (Some(uid), Some(gid)) => Some((uid, gid)),
        _ => panic!(
            "running as root, and PostgreSQL refuses to run as root: the private \
             PostgreSQL server runs as the `postgres` OS user, which does not exist \
             (the postgresql package creates it); or run the tests as a normal user"
        ),
    }
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("finding a free port: {err}"))
}

/// SIGKILLs the postmaster `pid` and every process it started, and waits
/// (bounded) until they are gone. The postmaster is stopped first so that
/// it cannot fork a new backend between the listing and the kill. Its
/// children (backends, checkpointer, WAL writer, ...) must die too: left
/// alone they linger until they notice, and a new postmaster refuses to
/// start while they still hold the old shared memory.
fn kill_tree(pid: u32) {
    signal("STOP", &[pid]);
    let mut victims = children_of(pid);
    victims.push(pid);
    signal("KILL", &victims);
    let deadline = Instant::now() + GONE_TIMEOUT;
    while victims.iter().any(|&victim| alive(victim)) {
        if Instant::now() > deadline {
            eprintln!("warning: PostgreSQL processes {victims:?} still alive after SIGKILL");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `SIG<name>` to `pids` with kill(1) (the workspace forbids unsafe
/// code, so no libc). Processes already gone are fine.
fn signal(name: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = StdCommand::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The pids whose parent is `parent`, from `/proc/<pid>/stat`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// Whether `pid` still runs (a zombie has let go of everything and counts
/// as gone: its parent may never reap it).
fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
}

/// State and parent pid of `pid`. The command name in `stat` is in
/// parentheses and may hold spaces, so fields are read after the last ')'.
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The server's log, for failure messages.
fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| format!("({}: {err})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_and_state_are_read_after_the_command_name() {
        let own = stat_fields(std::process::id()).expect("our own stat");
        assert!(matches!(own.0, 'R' | 'S'), "{own:?}");
        assert!(own.1 > 0);
        assert!(alive(std::process::id()));
    }
}
