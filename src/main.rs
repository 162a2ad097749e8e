//! The `catalog-mirror` binary: everything lives in the library; this only runs the CLI.

fn main() -> std::process::ExitCode {
    catalog_mirror::cli::run()
}
