fn main() -> std::process::ExitCode {
    cde::cli::main()
}
