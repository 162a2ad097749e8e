//! `catalog-mirror sandbox` arguments and `run`: defaults, clear errors for bad
//! input, a help line on every flag, serving until cancelled, and playing a
//! scenario at a receiver then exiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use catalog_mirror::sandbox::Scenario;
use catalog_mirror::sandbox::cli::{SandboxArgs, run};
use clap::{CommandFactory, Parser};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    sandbox: SandboxArgs,
}

fn parse(args: &[&str]) -> Result<SandboxArgs, String> {
    Cli::try_parse_from(std::iter::once("sandbox").chain(args.iter().copied()))
        .map(|c| c.sandbox)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults_match_the_documented_sandbox() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.addr.to_string(), "127.0.0.1:8090");
    assert_eq!((a.merchants, a.offers, a.seed), (3, 2_000, 42));
    let config = a.config();
    assert_eq!(
        config.merchants.iter().map(|m| m.id).collect::<Vec<_>>(),
        [1001, 1002, 1003]
    );
    assert_eq!(
        (config.app_id, config.app_secret.as_str()),
        (10000, "sandbox-app-secret")
    );
    assert_eq!(config.token_ttl, Duration::from_secs(86_400));
    assert_eq!(a.knobs(), Default::default());

    let a = parse(&[
        "--latency-ms",
        "25",
        "--rate-limit",
        "4",
        "--retry-after-secs",
        "3",
        "--error-rate",
        "0.1",
        "--play",
        "Scheduled_Sync",
        "--target",
        "http://127.0.0.1:9/hook",
        "--duplicate-rate",
        "0.2",
        "--out-of-order",
    ])
    .unwrap();
    let k = a.knobs();
    assert_eq!(k.latency, Duration::from_millis(25));
    assert_eq!(
        k.rate_limit
            .map(|r| (r.requests_per_sec, r.retry_after_secs)),
        Some((4, 3))
    );
    assert_eq!(k.error_rate_5xx, 0.1);
    assert_eq!(a.play, Some(Scenario::ScheduledSync));
    let f = a.delivery_faults();
    assert!(f.out_of_order && f.duplicate_rate == 0.2);
}

#[test]
fn bad_input_is_a_clear_error() {
    for (args, needle) in [
        (
            &["--play", "weekly", "--target", "http://x"][..],
            "onboarding, scheduled-sync",
        ),
        (&["--play", "onboarding"][..], "--target"),
        (&["--error-rate", "2"][..], "between 0 and 1"),
        (&["--duplicate-rate", "x"][..], "not a number"),
        (&["--offers", "many"][..], "--offers"),
        (&["--offers", "20000000"][..], "20000000"),
        (&["--merchants", "0"][..], "--merchants"),
        (&["--token-ttl-secs", "0"][..], "--token-ttl-secs"),
        (&["--target", "ftp://example.com/x"][..], "http or https"),
        (&["--addr", "localhost"][..], "--addr"),
        (&["--exit-after-play"][..], "--play"),
        (
            &["--no-offer-events", "--max-offer-events", "3"][..],
            "cannot be used with",
        ),
    ] {
        let err = parse(args).expect_err(&format!("{args:?} should be refused"));
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn every_flag_has_a_help_line() {
    let cmd = Cli::command();
    let mut checked = 0;
    for arg in cmd
        .get_arguments()
        .filter(|a| a.get_long().is_some_and(|l| l != "help"))
    {
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(help.len() > 10, "--{} has no help", arg.get_long().unwrap());
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} flags");
}

#[tokio::test]
async fn run_serves_until_cancelled() {
    let args = parse(&["--addr", "127.0.0.1:0", "--offers", "10"]).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(args, stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "run returned before it was cancelled");
    stop.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops when cancelled")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn run_refuses_an_unknown_merchant_and_a_busy_port() {
    let err = run(
        parse(&["--addr", "127.0.0.1:0", "--merchant", "9999"]).unwrap(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("9999"), "{err:#}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let err = run(parse(&["--addr", &addr]).unwrap(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains(&addr), "{err:#}");
}

#[tokio::test]
async fn run_plays_a_scenario_to_the_target_and_exits() {
    let got: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let sink = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let topic = headers["x-violet-topic"].to_str().unwrap().to_string();
                sink.lock().unwrap().push((topic, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let args = parse(&[
        "--addr",
        "127.0.0.1:0",
        "--merchants",
        "2",
        "--offers",
        "5",
        "--play",
        "onboarding",
        "--target",
        &target,
        "--exit-after-play",
    ])
    .unwrap();
    tokio::time::timeout(Duration::from_secs(20), run(args, CancellationToken::new()))
        .await
        .expect("exits after playing")
        .unwrap();
    let got = got.lock().unwrap();
    assert_eq!(
        got.len(),
        2 * (5 + 6),
        "two merchants: 5 OFFER_ADDED and 6 other events each"
    );
    assert_eq!(
        got.iter()
            .filter(|(t, _)| t == "MERCHANT_CONNECTED")
            .count(),
        2
    );
}
