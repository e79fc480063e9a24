use std::process::ExitCode;

use clap::Parser;
use console::style;

#[tokio::main]
async fn main() -> ExitCode {
    match cde::cli::run(cde::cli::Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{} {e}", style("error:").red().bold());
            ExitCode::from(2)
        }
    }
}
