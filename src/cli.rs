//! The command line: one binary, one subcommand per job. `main.rs` only calls [`run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigSource, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "catalog-mirror",
    version,
    about = "Keeps a fast, searchable local mirror of Violet merchants' catalogs",
    long_about = "catalog-mirror receives Violet webhooks, tracks each merchant's catalog syncs, \
refetches catalogs after they complete into a PostgreSQL mirror and serves them through a \
Meilisearch-compatible search API.\n\nConfiguration: embedded defaults (config/default.toml), \
then --config PATH (or /etc/catalog-mirror/config.toml), then CATALOG_MIRROR_<SECTION>__<KEY> \
environment variables and DATABASE_URL."
)]
pub struct Cli {
    /// Configuration file (TOML). Without it, /etc/catalog-mirror/config.toml is read when present.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "CATALOG_MIRROR_CONFIG"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: apply migrations, receive webhooks, run jobs, serve search and admin.
    Serve,
    /// Create the database if missing and apply pending migrations, then exit.
    Migrate,
    /// Run the built-in Violet sandbox: a simulated Violet API and webhook emitter.
    Sandbox(crate::sandbox::cli::SandboxArgs),
    /// Print the effective configuration (secrets redacted); exit 1 when it is invalid.
    CheckConfig,
    /// Rebuild the search index from the mirror into a new directory and swap it in
    /// atomically; a running daemon keeps serving the old index until it adopts the new one.
    Reindex,
    /// Operate a running daemon through its admin API (admin.url, admin.token).
    Admin(crate::admin::cli::AdminArgs),
    /// Show the whole flow with no Violet account: start the sandbox and the daemon,
    /// onboard a few merchants, wait until their catalogs are searchable, print a search
    /// command and the admin page address, and run until Ctrl-C.
    Demo(crate::demo::DemoArgs),
}

impl Cli {
    fn config_source(&self) -> ConfigSource {
        match &self.config {
            Some(path) => ConfigSource::File(path.clone()),
            None => ConfigSource::System,
        }
    }
}

/// Parses arguments, runs the command and maps the outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let source = cli.config_source();

    // check-config must report problems itself, so it loads the settings on its own.
    if let Command::CheckConfig = cli.command {
        return check_config(&source);
    }
    // The sandbox does not need the daemon's configuration.
    if let Command::Sandbox(args) = cli.command {
        crate::telemetry::init(&crate::config::LogSettings {
            format: crate::config::LogFormat::Text,
            filter: "info".into(),
        });
        return block_on(async move { crate::sandbox::cli::run(args, shutdown_on_signal()).await });
    }

    let settings = match Settings::load(&source) {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    // The admin client prints its own results and errors; it starts no logging.
    if let Command::Admin(args) = cli.command {
        return crate::admin::cli::run(args, &settings.admin);
    }
    if let Command::Demo(_) = cli.command {
        // Progress bars and info lines do not mix: warnings only, unless RUST_LOG says.
        crate::telemetry::init(&crate::config::LogSettings {
            filter: "warn".into(),
            ..settings.log.clone()
        });
    } else {
        crate::telemetry::init(&settings.log);
    }
    block_on(async move {
        match cli.command {
            Command::Serve => crate::app::serve(settings, shutdown_on_signal()).await,
            Command::Migrate => {
                crate::db::prepare(&settings.database).await?;
                println!("migrations are up to date");
                Ok(())
            }
            Command::Reindex => {
                let pool = crate::db::prepare(&settings.database).await?;
                let report = crate::search::reindex(&pool, &settings.search.index_dir).await?;
                println!(
                    "reindexed {} offers up to change {} into {} in {} ms",
                    report.documents,
                    report.change_no,
                    report.generation,
                    report.elapsed.as_millis()
                );
                Ok(())
            }
            Command::Demo(args) => crate::demo::run(settings, args, shutdown_on_signal()).await,
            Command::Sandbox(_) | Command::CheckConfig | Command::Admin(_) => {
                unreachable!("handled above")
            }
        }
    })
}

fn check_config(source: &ConfigSource) -> ExitCode {
    let checked = Settings::load(source).and_then(|settings| {
        crate::search::auth::Access::from_settings(&settings.search).map(|_| settings)
    });
    match checked {
        Ok(settings) => {
            print!("{}", settings.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn block_on(future: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "exiting on error");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A token cancelled on SIGINT or SIGTERM: the one shutdown signal passed down.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}
