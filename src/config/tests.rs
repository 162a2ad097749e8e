//! Layering and validation of settings. `figment::Jail` isolates the environment and
//! the working directory of each test.
// Jail's closures must return figment's own (large) error type.
#![allow(clippy::result_large_err)]

use super::*;

fn load_file(jail: &mut figment::Jail, toml: &str) -> Result<Settings, ConfigErrors> {
    jail.create_file("test.toml", toml)
        .expect("write test config");
    Settings::load(&ConfigSource::File("test.toml".into()))
}

#[test]
fn embedded_defaults_are_valid() {
    figment::Jail::expect_with(|_jail| {
        let settings = Settings::load(&ConfigSource::DefaultsOnly).expect("defaults load");
        assert_eq!(settings.jobs.debounce_ms, 2000);
        assert_eq!(settings.webhooks.body_limit_bytes, 2 * 1024 * 1024);
        assert_eq!(settings.violet.page_size, 100);
        Ok(())
    });
}

#[test]
fn file_overrides_defaults_and_env_overrides_file() {
    figment::Jail::expect_with(|jail| {
        let settings = load_file(jail, "[jobs]\nworkers = 7\ndebounce_ms = 10\n").unwrap();
        assert_eq!(settings.jobs.workers, 7);
        assert_eq!(settings.jobs.debounce_ms, 10);
        assert_eq!(
            settings.jobs.lease_secs, 60,
            "untouched keys keep their default"
        );

        jail.set_env("CATALOG_MIRROR_JOBS__WORKERS", "9");
        let settings = Settings::load(&ConfigSource::File("test.toml".into())).unwrap();
        assert_eq!(settings.jobs.workers, 9, "environment wins over the file");
        assert_eq!(
            settings.jobs.debounce_ms, 10,
            "file still wins over defaults"
        );
        Ok(())
    });
}

#[test]
fn database_url_is_honoured_below_the_prefixed_variable() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("DATABASE_URL", "postgres://a@localhost/one");
        let settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
        assert_eq!(settings.database.url.expose(), "postgres://a@localhost/one");

        jail.set_env("CATALOG_MIRROR_DATABASE__URL", "postgres://b@localhost/two");
        let settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
        assert_eq!(settings.database.url.expose(), "postgres://b@localhost/two");
        Ok(())
    });
}

#[test]
fn env_arrays_feed_list_settings() {
    figment::Jail::expect_with(|jail| {
        jail.set_env(
            "CATALOG_MIRROR_WEBHOOKS__EXTRA_SECRETS",
            r#"["old-secret","older"]"#,
        );
        let settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
        let accepted = settings.webhooks.accepted_secrets(&settings.violet);
        let values: Vec<&str> = accepted.iter().map(Secret::expose).collect();
        assert_eq!(values, ["sandbox-app-secret", "old-secret", "older"]);
        Ok(())
    });
}

#[test]
fn wrong_type_names_the_key() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("CATALOG_MIRROR_JOBS__WORKERS", "many");
        let errors = Settings::load(&ConfigSource::DefaultsOnly).unwrap_err();
        let error = errors
            .for_key("jobs.workers")
            .expect("error names jobs.workers");
        assert!(error.reason.contains("invalid type"), "{error:?}");
        Ok(())
    });
}

#[test]
fn unknown_key_is_refused_with_its_name() {
    figment::Jail::expect_with(|jail| {
        let errors = load_file(jail, "[jobs]\nworkerz = 3\n").unwrap_err();
        let text = errors.to_string();
        assert!(text.contains("workerz"), "{text}");
        Ok(())
    });
}

#[test]
fn out_of_range_values_name_key_and_reason() {
    figment::Jail::expect_with(|jail| {
        let errors = load_file(
            jail,
            "[violet]\npage_size = 500\nbase_url = \"ftp://x\"\napp_secret = \"\"\n\
             [sync]\nfailed_retry_jitter = 1.5\n[jobs]\nworkers = 0\n\
             [search]\nmax_concurrent_searches = 5000\n",
        )
        .unwrap_err();
        let reason = |key: &str| {
            errors
                .for_key(key)
                .map(|e| e.reason.clone())
                .unwrap_or_default()
        };
        assert!(reason("violet.page_size").contains("between 1 and 100"));
        assert!(reason("violet.base_url").contains("scheme `ftp`"));
        assert!(reason("violet.app_secret").contains("must be set"));
        assert!(reason("sync.failed_retry_jitter").contains("between 0.0 and 1.0"));
        assert!(reason("jobs.workers").contains("greater than 0"));
        assert!(reason("search.max_concurrent_searches").contains("at most 1024"));
        assert_eq!(
            errors.0.len(),
            6,
            "all problems are reported at once: {errors}"
        );
        Ok(())
    });
}

#[test]
fn request_bounds_have_their_defaults_and_refuse_zero() {
    figment::Jail::expect_with(|jail| {
        let settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
        assert_eq!(
            settings.search.max_total_hits, 1000,
            "Meilisearch's default"
        );
        assert_eq!(settings.search.max_values_per_facet, 100);
        assert_eq!(settings.search.max_queries_per_multi_search, 50);
        assert_eq!(settings.search.max_queued_searches, 256);
        assert_eq!(settings.search.max_requests_in_flight, 512);
        assert_eq!(settings.search.timeout_ms, 2000);
        assert_eq!(settings.notifications.max_stream_subscribers, 256);
        assert_eq!(settings.webhooks.max_bodies_in_flight, 64);
        assert_eq!(settings.webhooks.batch_max_events, 64);
        assert_eq!(settings.webhooks.batch_window_ms, 2);
        assert_eq!(settings.webhooks.writers, 4);
        assert_eq!(settings.webhooks.queue_capacity, 256);
        assert_eq!(settings.admin.max_page_size, 500);

        let errors = load_file(
            jail,
            "[search]\nmax_total_hits = 0\nmax_queries_per_multi_search = 0\n\
             max_values_per_facet = 0\nmax_queued_searches = 0\nmax_requests_in_flight = 0\n\
             timeout_ms = 5\n[notifications]\nmax_stream_subscribers = 0\n\
             [webhooks]\nmax_bodies_in_flight = 0\nbatch_max_events = 0\nbatch_window_ms = 5000\n\
             writers = 16\nqueue_capacity = 0\n[admin]\nmax_page_size = 0\n\
             [http]\nwrite_stall_timeout_ms = 0\nidle_timeout_ms = 10\n",
        )
        .unwrap_err();
        for (key, reason) in [
            ("search.max_total_hits", "greater than 0"),
            ("search.max_queries_per_multi_search", "greater than 0"),
            ("search.max_values_per_facet", "greater than 0"),
            ("search.max_queued_searches", "greater than 0"),
            ("search.max_requests_in_flight", "greater than 0"),
            ("search.timeout_ms", "at least 10"),
            ("notifications.max_stream_subscribers", "greater than 0"),
            ("webhooks.max_bodies_in_flight", "greater than 0"),
            ("webhooks.batch_max_events", "between 1 and 1000"),
            ("webhooks.batch_window_ms", "at most 1000"),
            (
                "webhooks.writers",
                "less than database.max_connections (16)",
            ),
            ("webhooks.queue_capacity", "greater than 0"),
            ("admin.max_page_size", "between 1 and 100000"),
            ("http.write_stall_timeout_ms", "at least 100"),
            ("http.idle_timeout_ms", "at least 1000"),
        ] {
            let error = errors
                .for_key(key)
                .unwrap_or_else(|| panic!("no error names {key}: {errors}"));
            assert!(error.reason.contains(reason), "{key}: {error:?}");
        }
        assert_eq!(errors.0.len(), 15, "{errors}");
        Ok(())
    });
}

#[test]
fn missing_config_file_is_an_error_naming_it() {
    figment::Jail::expect_with(|_jail| {
        let errors = Settings::load(&ConfigSource::File("nope.toml".into())).unwrap_err();
        assert!(errors.to_string().contains("nope.toml"));
        Ok(())
    });
}

#[test]
fn redacted_rendering_hides_every_secret() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("CATALOG_MIRROR_VIOLET__PASSWORD", "pw-visible-nowhere");
        jail.set_env("CATALOG_MIRROR_ADMIN__TOKEN", "admin-visible-nowhere");
        jail.set_env("CATALOG_MIRROR_SEARCH__API_KEY", "search-visible-nowhere");
        jail.set_env(
            "CATALOG_MIRROR_WEBHOOKS__EXTRA_SECRETS",
            r#"["hook-visible-nowhere"]"#,
        );
        jail.set_env(
            "DATABASE_URL",
            "postgres://u:dbpass-visible-nowhere@localhost/db",
        );
        let settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
        for text in [settings.to_redacted_toml(), format!("{settings:?}")] {
            assert!(!text.contains("visible-nowhere"), "{text}");
            assert!(!text.contains("sandbox-app-secret"), "{text}");
            assert!(text.contains("[redacted]"));
        }
        Ok(())
    });
}

#[test]
fn the_sandbox_secret_is_refused_unless_violet_is_on_loopback() {
    figment::Jail::expect_with(|jail| {
        // The demo and the tests: the sandbox on this machine, under any loopback name.
        for base_url in [
            "http://127.0.0.1:8090/v1",
            "http://127.8.9.10/v1",
            "http://localhost:8090/v1",
            "http://LOCALHOST/v1",
            "http://[::1]:8090/v1",
            "http://[::ffff:127.0.0.1]/v1",
        ] {
            jail.set_env("CATALOG_MIRROR_VIOLET__BASE_URL", base_url);
            let loaded = Settings::load(&ConfigSource::DefaultsOnly);
            assert!(loaded.is_ok(), "{base_url}: {loaded:?}");
        }

        // Anywhere else, the published secret would let anyone sign webhooks.
        for base_url in [
            "https://api.violet.io/v1",
            "http://10.0.0.5/v1",
            "http://0.0.0.0:8090/v1",
            "http://[::ffff:10.0.0.5]/v1",
            "http://localhost.example.com/v1",
        ] {
            jail.set_env("CATALOG_MIRROR_VIOLET__BASE_URL", base_url);
            let errors = Settings::load(&ConfigSource::DefaultsOnly).unwrap_err();
            let error = errors
                .for_key("violet.app_secret")
                .unwrap_or_else(|| panic!("{base_url}: {errors}"));
            assert!(
                error.reason.contains("violet.base_url") && error.reason.contains("loopback"),
                "{base_url}: {error:?}"
            );
            assert!(
                !errors.to_string().contains(SANDBOX_APP_SECRET),
                "the message names the keys, not the secret: {errors}"
            );
        }

        // With the app's own secret production loads; a rotated-in sandbox secret does not.
        jail.set_env(
            "CATALOG_MIRROR_VIOLET__BASE_URL",
            "https://api.violet.io/v1",
        );
        jail.set_env("CATALOG_MIRROR_VIOLET__APP_SECRET", "the-apps-own-secret");
        let mut settings =
            Settings::load(&ConfigSource::DefaultsOnly).expect("a real secret loads");
        assert!(settings.refuse_published_secrets().is_ok());
        // Settings changed in code after loading are checked again when the daemon is built.
        settings.violet.app_secret = Secret::new(SANDBOX_APP_SECRET);
        let errors = settings.refuse_published_secrets().unwrap_err();
        assert!(errors.for_key("violet.app_secret").is_some(), "{errors}");
        jail.set_env(
            "CATALOG_MIRROR_WEBHOOKS__EXTRA_SECRETS",
            format!(r#"["old","{SANDBOX_APP_SECRET}"]"#),
        );
        let errors = Settings::load(&ConfigSource::DefaultsOnly).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert!(
            errors.for_key("webhooks.extra_secrets[1]").is_some(),
            "{errors}"
        );
        Ok(())
    });
}

#[test]
fn the_slow_statement_threshold_is_bounded_and_may_be_off() {
    figment::Jail::expect_with(|jail| {
        let settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
        assert_eq!(
            settings.database.slow_statement(),
            Some(Duration::from_secs(1))
        );
        let off = load_file(jail, "[database]\nslow_statement_ms = 0\n").unwrap();
        assert_eq!(off.database.slow_statement(), None);
        let errors = load_file(jail, "[database]\nslow_statement_ms = 3600001\n").unwrap_err();
        let error = errors
            .for_key("database.slow_statement_ms")
            .expect("the key is named");
        assert!(error.reason.contains("at most 3600000"), "{}", error.reason);
        jail.set_env("CATALOG_MIRROR_DATABASE__SLOW_STATEMENT_MS", "250");
        let settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
        assert_eq!(
            settings.database.slow_statement(),
            Some(Duration::from_millis(250))
        );
        Ok(())
    });
}

#[test]
fn refresh_mode_and_delta_bounds_have_defaults_and_are_checked() {
    figment::Jail::expect_with(|jail| {
        let settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
        assert_eq!(settings.refresh.mode, RefreshPolicy::Delta);
        assert_eq!(settings.refresh.full_every_secs, 86_400);
        assert_eq!(settings.refresh.delta_overlap_secs, 300);
        assert_eq!(settings.refresh.watermark_max_age_secs, 259_200);

        let text = load_file(jail, "[refresh]\nmode = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("sometimes") && text.contains("delta"),
            "{text}"
        );
        let errors = load_file(
            jail,
            "[refresh]\nfull_every_secs = 600\ndelta_overlap_secs = 600\nwatermark_max_age_secs = 0\n",
        )
        .unwrap_err();
        let reason = |key: &str| {
            errors
                .for_key(key)
                .map(|e| e.reason.clone())
                .unwrap_or_default()
        };
        assert!(reason("refresh.delta_overlap_secs").contains("less than refresh.full_every_secs"));
        assert!(reason("refresh.watermark_max_age_secs").contains("greater than 0"));
        let full = load_file(jail, "[refresh]\nmode = \"full\"\n").unwrap();
        assert_eq!(full.refresh.mode, RefreshPolicy::Full);
        Ok(())
    });
}
