fn main() -> std::process::ExitCode {
    gmrf_cli::main()
}
