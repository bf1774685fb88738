//! `sora-legacy-shim`: see `cli` for the command line and `server::stack` for the tower stack.

fn main() -> std::process::ExitCode {
    sora_legacy_shim::cli::main()
}
