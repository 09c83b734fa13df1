//! `khulasa health`: asks a running server whether it serves, through
//! `grpc.health.v1` — what a container's HEALTHCHECK or a shell script
//! runs. Exit 0 when SERVING, 1 otherwise (not serving, unreachable, no
//! answer in time).

use std::time::Duration;

use anyhow::Context;

/// What `health` is given.
#[derive(clap::Args)]
pub struct HealthArgs {
    /// The server's gRPC address.
    #[arg(
        long,
        default_value = "http://127.0.0.1:50051",
        env = "KHULASA_HEALTH_ADDR"
    )]
    addr: String,
    /// The service to ask about (`""`: the server as a whole).
    #[arg(long, default_value = "khulasa.v1.Analyzer")]
    service: String,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

/// Checks the server's health; an error unless it is SERVING.
pub fn run(args: HealthArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let status = runtime.block_on(async {
        tokio::time::timeout(timeout, async {
            let channel = tonic::transport::Endpoint::from_shared(args.addr.clone())
                .with_context(|| format!("--addr {}", args.addr))?
                .connect_timeout(timeout)
                .connect()
                .await
                .with_context(|| format!("connecting to {}", args.addr))?;
            let answer = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: args.service.clone(),
                })
                .await
                .with_context(|| format!("asking {} about {:?}", args.addr, args.service))?;
            anyhow::Ok(answer.into_inner().status())
        })
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {} within {timeout:?}", args.addr))?
    })?;
    println!("{}", status.as_str_name());
    anyhow::ensure!(
        status == tonic_health::pb::health_check_response::ServingStatus::Serving,
        "{} is not serving",
        args.addr
    );
    Ok(())
}
