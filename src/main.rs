//! The `tickmux` binary; everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    tickmux::cli::main()
}
