use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let status = container_api::cli::run(container_api::cli::Args::parse()).await?;
    std::process::exit(status)
}
