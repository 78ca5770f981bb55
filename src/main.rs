//! The `pgusers` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    pgusers::cli::main()
}
