// Runs move their records through cde's Container API and HTTP engine, whose many small
// allocations the C library's allocator serves at about twice the cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cde::cli::main()
}
