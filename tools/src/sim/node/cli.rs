//! `keel-sim`'s flags for the mock JSON-RPC node and builders ([`NodeArgs`], flattened into
//! [`SimArgs`](crate::sim::cli::SimArgs)) → [`NodeConfig`].
//!
//! Owns argument parsing only; every behaviour lives in [`super`].

use std::net::SocketAddr;
use std::time::Duration;

use super::{EndpointBehaviour, EndpointStats, LatencyDist, NodeConfig};

/// The mock JSON-RPC node and builders (started only with `--node-port`).
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Start the mock Ethereum JSON-RPC node on this port of --listen's IP (0 picks a free
    /// one); builders listen on free ports of the same IP. URLs are printed on start.
    #[arg(long, value_name = "PORT", help_heading = "JSON-RPC node and builders")]
    pub node_port: Option<u16>,
    /// Number of block builders (eth_sendBundle with X-Flashbots-Signature).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        help_heading = "JSON-RPC node and builders"
    )]
    pub builders: usize,
    /// Chain id the node accepts.
    #[arg(
        long,
        value_name = "ID",
        default_value_t = 1,
        help_heading = "JSON-RPC node and builders"
    )]
    pub chain_id: u64,
    /// Milliseconds between blocks (accepted transactions are included in the next one).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 12_000,
        help_heading = "JSON-RPC node and builders"
    )]
    pub block_time_ms: u64,
    /// Base fee per gas, gwei (decimal); a fee cap below it is refused.
    #[arg(
        long,
        value_name = "GWEI",
        default_value = "10",
        help_heading = "JSON-RPC node and builders"
    )]
    pub base_fee_gwei: String,
    /// Reply latency of every endpoint, µs: fixed:US, uniform:LO..HI or lognormal:MEDIAN_US,SIGMA.
    #[arg(long, value_name = "DIST", help_heading = "JSON-RPC node and builders")]
    pub rpc_latency_us: Option<String>,
    /// Fault: fraction of requests answered HTTP 503 with JSON-RPC error -32603 (every endpoint).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.0,
        help_heading = "JSON-RPC node and builders"
    )]
    pub rpc_error_rate: f64,
    /// Fault: fraction of requests never answered; the connection stalls (every endpoint).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.0,
        help_heading = "JSON-RPC node and builders"
    )]
    pub rpc_timeout_rate: f64,
    /// Fault: fraction of requests answered by a TCP reset (every endpoint).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.0,
        help_heading = "JSON-RPC node and builders"
    )]
    pub rpc_reset_rate: f64,
    /// Fault: fraction of requests answered malformed: a bad status line or cut JSON (every
    /// endpoint).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.0,
        help_heading = "JSON-RPC node and builders"
    )]
    pub rpc_malformed_rate: f64,
    /// Per-endpoint override, repeatable: NAME:KEY=VALUE[,KEY=VALUE...] with NAME node or
    /// builderK and KEY latency, error, timeout, reset, malformed or lost (a builder's
    /// fraction of valid bundles answered with their hash and then never included)
    /// (e.g. builder2:latency=uniform:200..900,reset=0.05 or builder1:lost=1).
    #[arg(long, value_name = "SPEC", help_heading = "JSON-RPC node and builders")]
    pub rpc_endpoint: Vec<String>,
    /// Only this sender has funds (repeatable; default: every sender): a transaction whose
    /// signature recovers to anyone else is refused with geth's "insufficient funds".
    #[arg(long, value_name = "ADDR", help_heading = "JSON-RPC node and builders")]
    pub funded: Vec<String>,
}

impl NodeArgs {
    /// The node configuration these flags describe (None without `--node-port`).
    pub fn config(&self, ip: std::net::IpAddr, seed: u64) -> anyhow::Result<Option<NodeConfig>> {
        let Some(port) = self.node_port else {
            return Ok(None);
        };
        let mut all = EndpointBehaviour {
            error_rate: self.rpc_error_rate,
            timeout_rate: self.rpc_timeout_rate,
            reset_rate: self.rpc_reset_rate,
            malformed_rate: self.rpc_malformed_rate,
            ..Default::default()
        };
        if let Some(d) = &self.rpc_latency_us {
            all.latency =
                LatencyDist::parse(d).map_err(|e| anyhow::anyhow!("--rpc-latency-us: {e}"))?;
        }
        let mut cfg = NodeConfig {
            listen: SocketAddr::new(ip, port),
            builders: self.builders,
            chain_id: self.chain_id,
            block_time: Duration::from_millis(self.block_time_ms),
            base_fee: keel_engine::exec::evm::parse::gwei("--base-fee-gwei", &self.base_fee_gwei)?,
            seed,
            funded: self
                .funded
                .iter()
                .map(|a| keel_engine::exec::evm::parse::address("--funded", a))
                .collect::<Result<_, _>>()?,
            ..NodeConfig::default()
        };
        cfg.set_all(all);
        for spec in &self.rpc_endpoint {
            let bad = |why: String| anyhow::anyhow!("--rpc-endpoint {spec:?}: {why}");
            let (name, settings) = spec
                .split_once(':')
                .ok_or_else(|| bad("expected NAME:KEY=VALUE[,KEY=VALUE...]".into()))?;
            let behaviour = if name == "node" {
                &mut cfg.node
            } else {
                let k: usize = name
                    .strip_prefix("builder")
                    .and_then(|k| k.parse().ok())
                    .filter(|&k| k >= 1 && k <= self.builders)
                    .ok_or_else(|| {
                        bad(format!(
                            "unknown endpoint {name:?} (node, builder1..builder{})",
                            self.builders
                        ))
                    })?;
                &mut cfg.builder[k - 1]
            };
            behaviour.apply(settings).map_err(bad)?;
        }
        cfg.validate()?;
        Ok(Some(cfg))
    }
}

/// One line of node counters for keel-sim's standard error.
pub fn node_line(s: &EndpointStats) -> String {
    format!(
        "keel-sim node: connections {}, requests {}, accepted {}, duplicate {}, rejected {}, \
         unauthorized {}, bad requests {}, faults: errors {}, timeouts {}, resets {}, malformed {}",
        s.connections,
        s.requests,
        s.accepted,
        s.duplicate,
        s.rejected,
        s.unauthorized,
        s.bad_requests,
        s.fault_errors,
        s.fault_timeouts,
        s.fault_resets,
        s.fault_malformed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::cli::SimArgs;
    use clap::Parser;

    #[test]
    fn node_flags_map_to_node_config() {
        let ip = "127.0.0.1".parse().unwrap();
        let a = SimArgs::parse_from(["keel-sim"]);
        assert!(
            a.node.config(ip, 1).unwrap().is_none(),
            "no node without --node-port"
        );
        let a = SimArgs::parse_from([
            "keel-sim",
            "--node-port",
            "0",
            "--builders",
            "3",
            "--chain-id",
            "11155111",
            "--block-time-ms",
            "500",
            "--base-fee-gwei",
            "2.5",
            "--rpc-latency-us",
            "uniform:20..200",
            "--rpc-error-rate",
            "0.1",
            "--rpc-endpoint",
            "builder2:latency=fixed:900,reset=0.05",
            "--rpc-endpoint",
            "node:error=0",
            "--rpc-endpoint",
            "builder3:lost=0.25",
        ]);
        let c = a.node.config(ip, 9).unwrap().unwrap();
        assert_eq!((c.builders, c.chain_id, c.seed), (3, 11_155_111, 9));
        assert_eq!(c.block_time, Duration::from_millis(500));
        assert_eq!(c.base_fee, 2_500_000_000);
        assert_eq!(c.node.error_rate, 0.0);
        assert_eq!(c.node.latency, LatencyDist::Uniform(20, 200));
        assert_eq!(c.builder[0].error_rate, 0.1);
        assert_eq!(c.builder[1].latency, LatencyDist::Fixed(900));
        assert_eq!(c.builder[1].reset_rate, 0.05);
        assert_eq!(
            (c.builder[1].lost_rate, c.builder[2].lost_rate),
            (0.0, 0.25)
        );
        for (flag, value, needle) in [
            ("--rpc-endpoint", "builder4:error=0.1", "builder4"),
            ("--rpc-endpoint", "node:bogus=1", "bogus"),
            ("--rpc-endpoint", "builder1:lost=2", "lost rate"),
            ("--rpc-latency-us", "gauss:5", "gauss:5"),
            ("--rpc-error-rate", "1.5", "rpc-error-rate"),
            ("--base-fee-gwei", "ten", "ten"),
            ("--funded", "0x12", "0x12"),
        ] {
            let a = SimArgs::parse_from(["keel-sim", "--node-port", "0", flag, value]);
            let e = format!("{:#}", a.node.config(ip, 1).unwrap_err());
            assert!(e.contains(needle), "{flag} {value}: {e}");
        }
    }
}
