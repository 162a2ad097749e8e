//! Migrations: idempotent, safe when two processes start together, and the database
//! is created when it is missing.

use crate::common;

use std::process::Command;

use catalog_mirror::config::{ConfigSource, Secret, Settings};
use common::TestDb;

async fn applied(db: &TestDb) -> Vec<(i64, bool)> {
    let pool = db.pool().await;
    sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn applying_twice_changes_nothing_the_second_time() {
    let db = TestDb::empty().await;
    let pool = db.pool().await;
    catalog_mirror::db::migrate(&pool).await.unwrap();
    let first = applied(&db).await;
    catalog_mirror::db::migrate(&pool).await.unwrap();
    assert_eq!(applied(&db).await, first);
    assert_eq!(first.len(), catalog_mirror::db::MIGRATOR.iter().count());
    assert!(catalog_mirror::db::migrations_current(&pool).await.unwrap());
}

#[tokio::test]
async fn two_processes_migrating_at_once_both_succeed() {
    let db = TestDb::empty().await;
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_catalog-mirror"))
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .env("CATALOG_MIRROR_LOG__FILTER", "warn")
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let versions = applied(&db).await;
    assert_eq!(
        versions.len(),
        catalog_mirror::db::MIGRATOR.iter().count(),
        "each migration once"
    );
    assert!(versions.iter().all(|(_, ok)| *ok));
}

#[tokio::test]
async fn a_missing_database_is_created() {
    let name = format!("cm_test_{:016x}", rand::random::<u64>());
    let url = common::with_database(&common::server_url(), &name);
    let mut settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
    settings.database.url = Secret::new(url.clone());
    let pool = catalog_mirror::db::prepare(&settings.database)
        .await
        .expect("created and migrated");
    assert!(catalog_mirror::db::migrations_current(&pool).await.unwrap());
    pool.close().await;
    // Hand it to TestDb so it is dropped.
    drop(TestDb { name, url });
}

#[tokio::test]
async fn creation_can_be_turned_off() {
    let name = format!("cm_test_{:016x}", rand::random::<u64>());
    let mut settings = Settings::load(&ConfigSource::DefaultsOnly).unwrap();
    settings.database.url = Secret::new(common::with_database(&common::server_url(), &name));
    settings.database.create_if_missing = false;
    let error = catalog_mirror::db::prepare(&settings.database)
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("does not exist") || format!("{error:#}").contains(&name),
        "{error:#}"
    );
}
