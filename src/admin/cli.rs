//! `catalog-mirror admin ...`: the admin API from the command line. Reads `admin.url`
//! and `admin.token` from the configuration (or `CATALOG_MIRROR_ADMIN__URL` and
//! `CATALOG_MIRROR_ADMIN__TOKEN`); prints tables, or the API's JSON with `--json`.
//!
//! Exit codes: 0 done, 1 the API refused the request (bad input, not found, conflict),
//! 2 bad command line, 3 the daemon is unreachable, 4 the token is missing or refused
//! (or the admin API is disabled).

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::{AdminClient, ClientError};
use super::output;
use crate::config::AdminSettings;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 done, 1 request refused by the API, 2 bad command line, \
3 daemon unreachable, 4 admin token missing or refused (or admin API disabled)."
)]
pub struct AdminArgs {
    /// Admin API address (default: admin.url from the configuration, CATALOG_MIRROR_ADMIN__URL).
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,

    /// Print the API's JSON response instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Every merchant: product and collection sync states, last sync, durations, success
    /// rate, consecutive failures, offers, catalog version and index lag; then the
    /// refreshes running (pages fetched, offers staged, rate-limit wait, elapsed time,
    /// estimated time left) or the last one of each listing.
    Status {
        /// Redraw every --interval seconds until Ctrl-C (with --json: one JSON document
        /// per line each time).
        #[arg(long)]
        watch: bool,
        /// Seconds between redraws with --watch.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600), requires = "watch")]
        interval: u64,
    },
    /// One merchant: its sync states, sync history, recent events and jobs.
    Merchant {
        /// The merchant id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
    /// Enqueue a full refresh now, for one merchant or (without --merchant) every connected merchant.
    Resync {
        /// Only this merchant (default: every connected merchant).
        #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
        merchant: Option<i64>,
        /// What to refresh.
        #[arg(long, value_enum, default_value_t = ResyncKindArg::Both)]
        kind: ResyncKindArg,
    },
    /// Rebuild the search index from PostgreSQL (built aside, then swapped in).
    Reindex,
    /// Jobs, newest first, with counts per state; dead jobs show their last error.
    Jobs {
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<JobStateArg>,
        /// Only this merchant's jobs.
        #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
        merchant: Option<i64>,
        /// How many jobs to list (1 to 500).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=500))]
        limit: i64,
    },
    /// Put a dead (or cancelled) job back in the queue with fresh attempts.
    Retry {
        /// The job id (see `admin jobs --state dead`).
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        job_id: i64,
    },
    /// The stored webhook events, newest first.
    Events {
        /// Only this merchant's events.
        #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
        merchant: Option<i64>,
        /// Only this topic, e.g. PRODUCT_SYNC_COMPLETED.
        #[arg(long)]
        topic: Option<String>,
        /// Only events with this status.
        #[arg(long, value_enum)]
        status: Option<EventStatusArg>,
        /// Only events received since then: RFC 3339 time or an age such as 90s, 15m, 2h, 7d.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// How many events to list (1 to 500).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=500))]
        limit: i64,
    },
    /// Removals a complete pass held because they were too large a share of the
    /// catalog (refresh.max_removal_fraction): show them, or confirm or discard them.
    Removals {
        /// The merchant id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        merchant: i64,
        /// Remove the held offers now.
        #[arg(long, conflicts_with = "discard")]
        confirm: bool,
        /// Drop the hold and remove nothing.
        #[arg(long)]
        discard: bool,
    },
    /// Plan a stored event again (state machine and jobs), as if it had just arrived.
    Replay {
        /// The event's row id (first column of `admin events`).
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ResyncKindArg {
    Products,
    Collections,
    Both,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum JobStateArg {
    Pending,
    Running,
    Done,
    Dead,
    Cancelled,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EventStatusArg {
    Processed,
    Unprocessable,
    Ignored,
    Pending,
    Folded,
    Applied,
}

fn name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// Runs an admin command against the daemon; prints the result or the error.
pub fn run(args: AdminArgs, settings: &AdminSettings) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let url = args.url.clone().unwrap_or_else(|| settings.url.clone());
    if let AdminCommand::Status {
        watch: true,
        interval,
    } = args.command
    {
        return runtime.block_on(watch(&url, settings, &args, interval));
    }
    let result = runtime.block_on(async {
        let client = AdminClient::new(&url, settings.token.clone())?;
        execute(&client, &args).await
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// `admin status --watch`: redraws until Ctrl-C. A failed call is shown in place of
/// the table and retried at the next tick, so the watch outlives a daemon restart.
async fn watch(url: &str, settings: &AdminSettings, args: &AdminArgs, interval: u64) -> ExitCode {
    use std::io::{IsTerminal, Write};
    let client = match AdminClient::new(url, settings.token.clone()) {
        Ok(client) => client,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(err.exit_code());
        }
    };
    let terminal = std::io::stdout().is_terminal();
    loop {
        let frame = match execute(&client, args).await {
            // One document per line: easy to follow with `jq` or a log shipper.
            Ok(text) if args.json => {
                let compact = serde_json::from_str::<Value>(&text)
                    .map(|value| value.to_string())
                    .unwrap_or(text);
                format!("{compact}\n")
            }
            Ok(text) => text,
            Err(err) if args.json => {
                format!("{}\n", json!({ "error": err.to_string() }))
            }
            Err(err) => format!("error: {err}\n"),
        };
        let mut out = std::io::stdout().lock();
        let written = if args.json {
            out.write_all(frame.as_bytes())
        } else if terminal {
            // Clear the screen and draw from the top.
            write!(out, "\x1b[H\x1b[2J{frame}")
        } else {
            writeln!(
                out,
                "--- {} ---\n{frame}",
                chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
            )
        };
        // A closed pipe (`| head`) ends the watch.
        if written.and_then(|()| out.flush()).is_err() {
            return ExitCode::SUCCESS;
        }
        drop(out);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            _ = tokio::time::sleep(std::time::Duration::from_secs(interval)) => {}
        }
    }
}

/// Calls the API and renders what it answered.
async fn execute(client: &AdminClient, args: &AdminArgs) -> Result<String, ClientError> {
    let (response, render): (Value, fn(&Value) -> String) = match &args.command {
        AdminCommand::Status { .. } => (client.get("/merchants", &[]).await?, output::status),
        AdminCommand::Merchant { id } => (
            client.get(&format!("/merchants/{id}"), &[]).await?,
            output::merchant,
        ),
        AdminCommand::Resync { merchant, kind } => {
            let body = match merchant {
                Some(id) => json!({ "merchant_id": id, "kind": name(*kind) }),
                None => json!({ "all": true, "kind": name(*kind) }),
            };
            (client.post("/resync", Some(body)).await?, output::resync)
        }
        AdminCommand::Reindex => (client.post("/reindex", None).await?, output::reindex),
        AdminCommand::Jobs {
            state,
            merchant,
            limit,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(state) = state {
                query.push(("state", name(*state)));
            }
            if let Some(merchant) = merchant {
                query.push(("merchant", merchant.to_string()));
            }
            (client.get("/jobs", &query).await?, output::jobs)
        }
        AdminCommand::Retry { job_id } => (
            client.post(&format!("/jobs/{job_id}/retry"), None).await?,
            output::retry,
        ),
        AdminCommand::Events {
            merchant,
            topic,
            status,
            since,
            limit,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(merchant) = merchant {
                query.push(("merchant", merchant.to_string()));
            }
            if let Some(topic) = topic {
                query.push(("topic", topic.clone()));
            }
            if let Some(status) = status {
                query.push(("status", name(*status)));
            }
            if let Some(since) = since {
                query.push(("since", since.clone()));
            }
            (client.get("/events", &query).await?, output::events)
        }
        AdminCommand::Replay { id } => (
            client.post(&format!("/events/{id}/replay"), None).await?,
            output::replay,
        ),
        AdminCommand::Removals {
            merchant,
            confirm,
            discard,
        } => {
            let path = format!("/merchants/{merchant}/removals");
            let response = match (confirm, discard) {
                (true, _) => client.post(&format!("{path}/confirm"), None).await?,
                (_, true) => client.post(&format!("{path}/discard"), None).await?,
                _ => client.get(&path, &[]).await?,
            };
            (response, output::removals)
        }
    };
    if args.json {
        let mut text = serde_json::to_string_pretty(&response).unwrap_or_default();
        text.push('\n');
        return Ok(text);
    }
    Ok(render(&response))
}
