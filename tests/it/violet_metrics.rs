//! The Violet client's metrics, observed through a local `metrics` recorder while it
//! talks to the real sandbox: request counts by endpoint template and status,
//! request durations, rate-limit waits and retries by reason.
//!
//! The recorder is thread-local, so the whole scenario runs on one current-thread
//! runtime inside `metrics::with_local_recorder`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_mirror::config::{ConfigSource, Settings};
use catalog_mirror::sandbox::{MerchantSpec, Sandbox, SandboxConfig};
use catalog_mirror::violet::VioletClient;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

type Events = Arc<Mutex<Vec<(String, f64)>>>;

/// Records every increment and observation as (`name{label=value,...}`, value).
#[derive(Default)]
struct Capture {
    events: Events,
}

struct Handle {
    key: String,
    events: Events,
}

impl Handle {
    fn push(&self, value: f64) {
        self.events.lock().unwrap().push((self.key.clone(), value));
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.push(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.push(value as f64);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, _: f64) {}
}

impl Capture {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Handle {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            events: Arc::clone(&self.events),
        })
    }

    fn count(&self, key: &str) -> usize {
        let events = self.events.lock().unwrap();
        events.iter().filter(|(k, _)| k == key).count()
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

#[test]
fn requests_durations_waits_and_retries_are_measured() {
    let capture = Capture::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&capture, || {
        runtime.block_on(async {
            let sandbox = Sandbox::start(
                SandboxConfig {
                    seed: 7,
                    token_ttl: Duration::from_secs(3600),
                    merchants: vec![MerchantSpec {
                        id: 1001,
                        name: "Acme Outfitters".into(),
                        offers: 150,
                        collections: 2,
                    }],
                    ..Default::default()
                },
                "127.0.0.1:0".parse().unwrap(),
            )
            .await
            .unwrap();
            let mut settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap().violet;
            settings.base_url = sandbox.base_url();
            settings.retry_base_ms = 10;
            settings.retry_max_ms = 20;
            let client = VioletClient::new(&settings).unwrap();

            sandbox.set_knobs(|k| k.fail_next_5xx = 1);
            let pages: Vec<_> = futures::StreamExt::collect(client.offer_pages(1001)).await;
            assert_eq!(pages.len(), 2);
            assert!(pages.iter().all(Result::is_ok));
        })
    });

    let listing = "endpoint=/catalog/offers/merchants/{merchant_id}";
    assert_eq!(
        capture.count("catalog_mirror_violet_requests_total{endpoint=/login,status=200}"),
        1
    );
    assert_eq!(
        capture.count(&format!(
            "catalog_mirror_violet_requests_total{{{listing},status=503}}"
        )),
        1
    );
    assert_eq!(
        capture.count(&format!(
            "catalog_mirror_violet_requests_total{{{listing},status=200}}"
        )),
        2
    );
    assert_eq!(
        capture.count(&format!(
            "catalog_mirror_violet_request_duration_seconds{{{listing}}}"
        )),
        3
    );
    assert_eq!(
        capture.count("catalog_mirror_violet_retries_total{reason=server_error}"),
        1
    );
    assert_eq!(
        capture.count("catalog_mirror_violet_rate_limit_wait_seconds{}"),
        3,
        "one wait per request sent"
    );
    let events = capture.events.lock().unwrap();
    assert!(
        events
            .iter()
            .all(|(key, _)| !key.contains("sandbox-app-secret") && !key.contains("eyJ")),
        "no secret in a metric label"
    );
}
