//! The `calories-app` binary: serve (the default), migrate, seed, or check a running instance.

use std::process::ExitCode;

use anyhow::Context;
use calories_app::{AppState, Config, db::Database, probe, seed, telemetry};
use clap::{Parser, Subcommand};

/// A calories-tracking service. Configuration comes from the environment (and `.env`); see
/// example-app/README.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP on BIND_ADDR (the default command).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Fill the database with a realistic data set.
    Seed {
        /// Users to add.
        #[arg(long, default_value_t = 1000)]
        users: u64,
        /// Meals per user, spread over their last 30 days.
        #[arg(long, default_value_t = 30)]
        meals_per_user: u32,
    },
    /// Exit 0 when the service on BIND_ADDR answers /health/live with 200 (for container health checks).
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        // No runtime, no logging and no other settings: this runs every few seconds inside the
        // container, and must not fail on a setting it does not use (such as JWT_SECRET).
        return healthcheck();
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("calories-app: configuration error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if let (Command::Serve, Err(err)) = (&command, config.check_for_serving()) {
        eprintln!("calories-app: configuration error: {err:#}");
        return ExitCode::from(2);
    }
    telemetry::init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("calories-app: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("calories-app: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn healthcheck() -> ExitCode {
    let _ = dotenvy::dotenv();
    let default = Config::default().bind_addr;
    let addr = match std::env::var("BIND_ADDR") {
        Ok(raw) if !raw.trim().is_empty() => match raw.trim().parse() {
            Ok(addr) => addr,
            Err(_) => {
                eprintln!("unhealthy: BIND_ADDR {raw:?} is not an address such as 0.0.0.0:8000");
                return ExitCode::FAILURE;
            }
        },
        _ => default,
    };
    match probe::check(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("unhealthy: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve | Command::Healthcheck => {
            let addr = config.bind_addr;
            let state = AppState::new(config).await?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (BIND_ADDR)"))?;
            tracing::info!(
                addr = %listener.local_addr()?,
                database = ?state.db.dialect,
                cache = state.cache.backend_name(),
                "calories-app listening"
            );
            calories_app::serve(listener, state, calories_app::shutdown_signal()).await?;
            tracing::info!("stopped");
        }
        Command::Migrate => {
            Database::connect(&config.database_url, 1).await?;
            tracing::info!("migrations applied");
        }
        Command::Seed {
            users,
            meals_per_user,
        } => {
            // Seeded accounts share one published password: in production they would be
            // open doors.
            anyhow::ensure!(
                !config.is_production(),
                "seed refuses APP_ENV=production: its users all have the published password \
                 {:?}; seed a development or staging database instead",
                seed::SEED_PASSWORD
            );
            let db =
                Database::connect(&config.database_url, config.database_max_connections).await?;
            let report = seed::run(&db, users, meals_per_user, true).await?;
            println!(
                "seeded {} users and {} meals in {:.1} s (password for every seeded user: {})",
                report.users,
                report.meals,
                report.elapsed.as_secs_f64(),
                seed::SEED_PASSWORD
            );
        }
    }
    Ok(())
}
