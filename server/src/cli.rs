//! The `serve`, `query` and `shell` verbs of the `skyscan` binary.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use skyscan_client::{Client, ClientError, ConnectOptions, JobInfo, Progress, QueryOptions};
use skyscan_engine::catalog::Database;
use skyscan_engine::query::{EngineOptions, QueryEngine, QueryError, ResultColumn, ResultSink};
use skyscan_format::ColumnData;
use skyscan_server::arrow_conv::{arrow_schema, to_record_batch};
use skyscan_server::jobs::JobConfig;
use skyscan_server::{Auth, ServerConfig};

use crate::output::{Format, ResultWriter};

/// The address clients use when none is given.
const DEFAULT_SERVER: &str = "127.0.0.1:7077";

/// `skyscan serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The database root directory.
    db: PathBuf,
    /// Address to listen on (loopback by default; a port of 0 picks one).
    #[arg(long, default_value = DEFAULT_SERVER)]
    listen: String,
    /// A shared secret every client must send (also `SKYSCAN_TOKEN`).
    #[arg(long, conflicts_with = "tokens")]
    token: Option<String>,
    /// A file of `user token` lines: per-user tokens.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// The database unqualified table names resolve in.
    #[arg(long)]
    database: Option<String>,
    /// Where asynchronous results are spooled (default: DB/results).
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// Seconds a finished asynchronous result is kept.
    #[arg(long, default_value_t = 86_400)]
    result_expiry_secs: u64,
    /// Asynchronous queries running at once.
    #[arg(long, default_value_t = 2)]
    job_runners: usize,
    /// Connections at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Queries at once on one connection.
    #[arg(long, default_value_t = 8)]
    max_queries_per_connection: usize,
    /// Queries running at once in the server (others wait their turn).
    #[arg(long, default_value_t = 256)]
    max_running_queries: usize,
    /// Seconds before a connection without requests is closed.
    #[arg(long, default_value_t = 3600)]
    idle_timeout_secs: u64,
    /// Seconds an interactive query may run.
    #[arg(long, default_value_t = 3600)]
    query_timeout_secs: u64,
    /// Scan threads per query (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds a shutdown (SIGINT, SIGTERM) lets running queries finish.
    #[arg(long, default_value_t = 30)]
    grace_secs: u64,
    /// Do not log connections and errors.
    #[arg(long)]
    quiet: bool,
    /// Serve the live alert-production catalog (APDB) in this directory:
    /// the `APDB_*` protocol messages, and SQL on `apdb.DiaObject`, … .
    #[arg(long)]
    apdb: Option<PathBuf>,
    /// The felis YAML of the APDB (default: DIR/apdb.yaml).
    #[arg(long, requires = "apdb")]
    apdb_schema: Option<PathBuf>,
    /// Open the APDB as a read-only replica following the primary served
    /// at HOST:PORT (log shipping over the protocol).
    #[arg(long, requires = "apdb")]
    apdb_replica_of: Option<String>,
    /// The token sent to the primary (default: this server's --token).
    #[arg(long, requires = "apdb_replica_of")]
    apdb_upstream_token: Option<String>,
}

/// Opens the APDB of `serve --apdb` and attaches it to `engine` as
/// database `apdb`.
fn open_apdb(
    args: &ServeArgs,
    engine: &QueryEngine,
) -> Result<Option<Arc<skyscan_server::apdb_service::ApdbService>>, String> {
    use skyscan_engine::apdb::{Apdb, ApdbConfig, FelisSchema};
    use skyscan_server::apdb_service::ApdbService;
    let Some(dir) = &args.apdb else {
        return Ok(None);
    };
    let schema_path = args
        .apdb_schema
        .clone()
        .unwrap_or_else(|| dir.join("apdb.yaml"));
    let felis = FelisSchema::from_file(&schema_path)
        .map_err(|e| format!("serve: --apdb-schema {}: {e}", schema_path.display()))?;
    let service = match &args.apdb_replica_of {
        None => {
            let (apdb, _) = Apdb::open_with_schema(dir, felis, ApdbConfig::default())
                .map_err(|e| format!("serve: --apdb {}: {e}", dir.display()))?;
            ApdbService::primary(Arc::new(apdb))?
        }
        Some(upstream) => {
            let apdb = Apdb::open_replica(dir, felis, ApdbConfig::default())
                .map_err(|e| format!("serve: --apdb {}: {e}", dir.display()))?;
            let token = args
                .apdb_upstream_token
                .clone()
                .or_else(|| args.token.clone())
                .or_else(|| {
                    std::env::var("SKYSCAN_TOKEN")
                        .ok()
                        .filter(|t| !t.is_empty())
                });
            let options = ConnectOptions {
                token,
                client_name: format!("skyscan-apdb-replica/{}", env!("CARGO_PKG_VERSION")),
                ..ConnectOptions::default()
            };
            ApdbService::replica(Arc::new(apdb), upstream, options)?
        }
    };
    engine.attach_apdb("apdb", Arc::clone(service.apdb()));
    Ok(Some(service))
}

/// Set by SIGINT / SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; `signal` has no other preconditions.
        unsafe {
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully.
pub fn serve(args: &ServeArgs) -> Result<(), String> {
    let listen = args
        .listen
        .parse()
        .map_err(|e| format!("serve: --listen {}: {e}", args.listen))?;
    let auth = match (&args.tokens, &args.token) {
        (Some(path), _) => Auth::from_file(path)?,
        (None, Some(token)) => Auth::token(token, "default"),
        (None, None) => match std::env::var("SKYSCAN_TOKEN") {
            Ok(token) if !token.is_empty() => Auth::token(&token, "default"),
            _ => Auth::Open,
        },
    };
    let db = Database::open(&args.db).map_err(|e| format!("serve: {e}"))?;
    let engine = Arc::new(QueryEngine::new(
        db,
        EngineOptions {
            default_database: args.database.clone(),
            ..EngineOptions::default()
        },
    ));
    let apdb = open_apdb(args, &engine)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 256);
    let mut jobs = JobConfig::in_dir(
        args.results_dir
            .clone()
            .unwrap_or_else(|| args.db.join("results")),
    );
    jobs.expiry = Duration::from_secs(args.result_expiry_secs);
    jobs.runners = args.job_runners.clamp(1, 64);
    jobs.query_threads = threads;
    jobs.log = !args.quiet;
    let config = ServerConfig {
        listen,
        auth,
        max_connections: args.max_connections.max(1),
        max_queries_per_connection: args.max_queries_per_connection.max(1),
        max_running_queries: args.max_running_queries.max(1),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs.max(1)),
        query_timeout: Duration::from_secs(args.query_timeout_secs.max(1)),
        query_threads: threads,
        jobs: Some(jobs),
        grace: Duration::from_secs(args.grace_secs),
        log: !args.quiet,
        apdb,
        ..ServerConfig::default()
    };
    install_signal_handlers();
    let handle = skyscan_server::start(engine, config).map_err(|e| format!("serve: {e}"))?;
    // The first line of stdout says where (scripts read the port from it).
    println!("skyscan: listening on {}", handle.local_addr());
    let _ = io::stdout().flush();
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    skyscan_server::log("shutting down: no new connections; running queries may finish");
    handle.shutdown();
    skyscan_server::log("stopped");
    Ok(())
}

/// When to draw the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// When stderr is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Where a query runs.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The server, HOST:PORT (also `SKYSCAN_SERVER`; default 127.0.0.1:7077).
    #[arg(long, conflicts_with = "db")]
    server: Option<String>,
    /// Run in this process against a database directory instead of a server.
    #[arg(long)]
    db: Option<PathBuf>,
    /// The server's token (also `SKYSCAN_TOKEN`).
    #[arg(long)]
    token: Option<String>,
}

impl Target {
    fn server(&self) -> String {
        self.server
            .clone()
            .or_else(|| std::env::var("SKYSCAN_SERVER").ok())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string())
    }

    fn connect(&self) -> Result<Client, String> {
        let server = self.server();
        let options = ConnectOptions {
            token: self
                .token
                .clone()
                .or_else(|| std::env::var("SKYSCAN_TOKEN").ok()),
            client_name: format!("skyscan-cli/{}", env!("CARGO_PKG_VERSION")),
            ..ConnectOptions::default()
        };
        Client::connect(server.as_str(), &options).map_err(|e| format!("{server}: {e}"))
    }
}

/// `skyscan query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The SQL statement (`SUBMIT <sql>` submits it asynchronously).
    sql: String,
    #[command(flatten)]
    target: Target,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write the result to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Progress bar on stderr for queries running over a second.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// The database unqualified names resolve in (with --db).
    #[arg(long)]
    database: Option<String>,
}

/// A progress bar on stderr, drawn once a query has run for a second.
struct ProgressBar {
    started: Instant,
    enabled: bool,
    drawn: bool,
}

impl ProgressBar {
    fn new(mode: ProgressMode) -> ProgressBar {
        ProgressBar {
            started: Instant::now(),
            enabled: match mode {
                ProgressMode::Auto => io::stderr().is_terminal(),
                ProgressMode::Always => true,
                ProgressMode::Never => false,
            },
            drawn: false,
        }
    }

    fn update(&mut self, p: Progress) {
        let elapsed = self.started.elapsed();
        if !self.enabled || (elapsed < Duration::from_secs(1) && !self.drawn) {
            return;
        }
        let width = 30usize;
        let filled = if p.chunks_total == 0 {
            0
        } else {
            (p.chunks_done.min(p.chunks_total) as usize * width) / p.chunks_total as usize
        };
        eprint!(
            "\r[{}{}] {}/{} chunks, {} rows, {:.1} s ",
            "#".repeat(filled),
            ".".repeat(width - filled),
            p.chunks_done,
            p.chunks_total,
            p.rows,
            elapsed.as_secs_f64()
        );
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn {
            eprint!("\r{}\r", " ".repeat(79));
            self.drawn = false;
        }
    }
}

fn output_file(path: Option<&Path>) -> Result<Box<dyn Write + Send>, String> {
    Ok(match path {
        Some(path) => Box::new(io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout())),
    })
}

/// Runs one query and writes its result.
pub fn query(args: &QueryArgs) -> Result<(), String> {
    if args.format == Format::Parquet && args.output.is_none() && io::stdout().is_terminal() {
        return Err(
            "query: --format parquet needs --output FILE (or a redirected stdout)".to_string(),
        );
    }
    let started = Instant::now();
    let rows = match &args.target.db {
        Some(db) => query_embedded(db, args)?,
        None => {
            let mut client = args.target.connect()?;
            run_remote(
                &mut client,
                &args.sql,
                args.format,
                args.output.as_deref(),
                args.progress,
            )
            .map_err(|e| format!("query: {e}"))?
        }
    };
    if args.format == Format::Table && args.output.is_none() {
        eprintln!("{rows} rows in {:.3} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Runs `sql` on the server and writes the result; returns its rows.
fn run_remote(
    client: &mut Client,
    sql: &str,
    format: Format,
    output: Option<&Path>,
    progress: ProgressMode,
) -> Result<u64, String> {
    let bar = Arc::new(Mutex::new(ProgressBar::new(progress)));
    let options = QueryOptions {
        on_progress: bar.lock().is_ok_and(|b| b.enabled).then(|| {
            let bar = Arc::clone(&bar);
            Box::new(move |p: Progress| {
                if let Ok(mut bar) = bar.lock() {
                    bar.update(p);
                }
            }) as Box<dyn FnMut(Progress) + Send>
        }),
        max_rows: 0,
    };
    let result = (|| -> Result<u64, String> {
        let mut stream = client.query_with(sql, options).map_err(|e| e.to_string())?;
        let mut writer = ResultWriter::new(format, stream.schema().clone(), output_file(output)?)?;
        while let Some(batch) = stream.next_batch().map_err(|e| e.to_string())? {
            writer.write(&batch)?;
        }
        writer.finish()
    })();
    if let Ok(mut bar) = bar.lock() {
        bar.finish();
    }
    result
}

/// Streams engine batches into a [`ResultWriter`].
struct WriterSink {
    format: Format,
    out: Option<Box<dyn Write + Send>>,
    writer: Option<ResultWriter<Box<dyn Write + Send>>>,
    schema: Option<arrow_schema::SchemaRef>,
}

impl ResultSink for WriterSink {
    fn begin(&mut self, columns: &[ResultColumn]) -> Result<(), QueryError> {
        let schema = arrow_schema(columns);
        let out = self
            .out
            .take()
            .ok_or_else(|| QueryError::internal("begin called twice"))?;
        self.writer = Some(
            ResultWriter::new(self.format, schema.clone(), out).map_err(QueryError::internal)?,
        );
        self.schema = Some(schema);
        Ok(())
    }

    fn batch(&mut self, columns: Vec<ColumnData>) -> Result<(), QueryError> {
        let (Some(schema), Some(writer)) = (&self.schema, self.writer.as_mut()) else {
            return Err(QueryError::internal("a batch before the schema"));
        };
        let batch = to_record_batch(schema, columns).map_err(QueryError::internal)?;
        writer.write(&batch).map_err(QueryError::internal)
    }
}

fn query_embedded(db: &Path, args: &QueryArgs) -> Result<u64, String> {
    let engine = QueryEngine::new(
        Database::open(db).map_err(|e| format!("query: {e}"))?,
        EngineOptions {
            default_database: args.database.clone(),
            ..EngineOptions::default()
        },
    );
    let mut sink = WriterSink {
        format: args.format,
        out: Some(output_file(args.output.as_deref())?),
        writer: None,
        schema: None,
    };
    let bar = Arc::new(Mutex::new(ProgressBar::new(args.progress)));
    let mut options = engine.options().exec.clone();
    options.threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    {
        let bar = Arc::clone(&bar);
        options.progress = Some(Arc::new(move |p: skyscan_engine::query::Progress| {
            if let Ok(mut bar) = bar.lock() {
                bar.update(Progress {
                    chunks_done: p.chunks_done,
                    chunks_total: p.chunks_total,
                    rows: 0,
                });
            }
        }));
    }
    let outcome = engine.query_with(&args.sql, &options, &mut sink);
    if let Ok(mut bar) = bar.lock() {
        bar.finish();
    }
    outcome.map_err(|e| format!("query: {e}"))?;
    match sink.writer.take() {
        Some(writer) => writer.finish(),
        None => Ok(0),
    }
}

/// `skyscan shell`.
#[derive(Args, Debug)]
pub struct ShellArgs {
    #[command(flatten)]
    target: Target,
    /// Output format of results.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

const SHELL_HELP: &str = "\
Statements end with `;` and may span lines. Commands:
  \\timing          show each statement's time (toggle)
  \\async           submit statements asynchronously (toggle)
  \\status [ID]     asynchronous queries: all, or one
  \\fetch ID        show a finished asynchronous result
  \\cancel ID       cancel an asynchronous query
  \\delete ID       delete an asynchronous query and its result
  \\format FORMAT   table, csv, tsv or json
  \\help            this text
  \\q               quit";

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".skyscan_history"))
}

fn show_job(job: &JobInfo) {
    let progress = if job.chunks_total > 0 {
        format!(" {}/{} chunks", job.chunks_done, job.chunks_total)
    } else {
        String::new()
    };
    let error = if job.error_message.is_empty() {
        String::new()
    } else {
        format!(" error: {}", job.error_message)
    };
    let sql: String = job.sql.chars().take(60).collect();
    println!(
        "{:>6}  {:<9}{progress}  {} rows  {}{error}",
        job.id, job.state, job.rows, sql
    );
}

/// The interactive shell.
pub fn shell(args: &ShellArgs) -> Result<(), String> {
    if args.target.db.is_some() {
        return Err(
            "shell: connect to a server (--server); `skyscan query --db` runs embedded".to_string(),
        );
    }
    let mut client = args.target.connect()?;
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| format!("shell: {e}"))?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let interactive = io::stdin().is_terminal();
    if interactive {
        println!(
            "skyscan shell: {} as {} ({}). \\help for help, \\q to quit.",
            args.target.server(),
            client.server_info().user,
            client.server_info().server_name
        );
    }
    let mut timing = false;
    let mut asynchronous = false;
    let mut format = args.format;
    let mut statement = String::new();
    loop {
        let prompt = if statement.is_empty() {
            "skyscan> "
        } else {
            "      -> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                statement.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(err) => return Err(format!("shell: {err}")),
        };
        let trimmed = line.trim();
        if statement.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            let command = words.next().unwrap_or_default();
            let id = words.next().map(str::parse::<u64>);
            let result: Result<(), ClientError> = match (command, id) {
                ("\\q" | "\\quit", _) => break,
                ("\\help" | "\\?", _) => {
                    println!("{SHELL_HELP}");
                    Ok(())
                }
                ("\\timing", _) => {
                    timing = !timing;
                    println!("timing is {}", if timing { "on" } else { "off" });
                    Ok(())
                }
                ("\\async", _) => {
                    asynchronous = !asynchronous;
                    println!(
                        "statements are {}",
                        if asynchronous {
                            "submitted asynchronously"
                        } else {
                            "run at once"
                        }
                    );
                    Ok(())
                }
                ("\\format", _) => {
                    match trimmed
                        .split_whitespace()
                        .nth(1)
                        .map(|f| Format::from_str(f, true))
                    {
                        Some(Ok(Format::Parquet)) | None | Some(Err(_)) => {
                            println!("\\format table|csv|tsv|json");
                        }
                        Some(Ok(f)) => format = f,
                    }
                    Ok(())
                }
                ("\\status", None) => client.list_jobs().map(|jobs| {
                    if jobs.is_empty() {
                        println!("no asynchronous queries");
                    }
                    jobs.iter().for_each(show_job);
                }),
                ("\\status", Some(Ok(id))) => client.status(id).map(|job| show_job(&job)),
                ("\\fetch", Some(Ok(id))) => {
                    let result = (|| -> Result<u64, String> {
                        let mut stream = client.fetch(id).map_err(|e| e.to_string())?;
                        let mut writer =
                            ResultWriter::new(format, stream.schema().clone(), io::stdout())?;
                        while let Some(batch) = stream.next_batch().map_err(|e| e.to_string())? {
                            writer.write(&batch)?;
                        }
                        writer.finish()
                    })();
                    match result {
                        Ok(rows) => println!("{rows} rows"),
                        Err(e) => eprintln!("error: {e}"),
                    }
                    Ok(())
                }
                ("\\cancel", Some(Ok(id))) => client.cancel_job(id),
                ("\\delete", Some(Ok(id))) => client.delete_job(id),
                _ => {
                    println!(
                        "unknown or incomplete command {trimmed:?}; \\help lists the commands"
                    );
                    Ok(())
                }
            };
            if let Err(err) = result {
                eprintln!("error: {err}");
                if matches!(err, ClientError::Io(_)) {
                    return Err("shell: the connection to the server is lost".to_string());
                }
            }
            continue;
        }
        if trimmed.is_empty() && statement.is_empty() {
            continue;
        }
        statement.push_str(&line);
        statement.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = statement.trim().trim_end_matches(';').trim().to_string();
        statement.clear();
        let _ = editor.add_history_entry(sql.replace('\n', " "));
        if sql.is_empty() {
            continue;
        }
        let started = Instant::now();
        if asynchronous {
            match client.submit(&sql) {
                Ok(id) => println!("submitted as query {id} (\\status {id}, \\fetch {id})"),
                Err(err) => eprintln!("error: {err}"),
            }
        } else {
            match run_remote(&mut client, &sql, format, None, ProgressMode::Auto) {
                Ok(rows) => println!("{rows} rows"),
                Err(err) => eprintln!("error: {err}"),
            }
        }
        if timing {
            println!("time: {:.3} s", started.elapsed().as_secs_f64());
        }
        if client.ping().is_err() {
            return Err("shell: the connection to the server is lost".to_string());
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
