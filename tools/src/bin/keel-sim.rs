//! `keel-sim`: the simulated venue (Deribit and Binance WebSocket protocols over a simulated
//! market, with fault injection). Everything lives in `keel_tools::sim`; see `keel-sim --help`.

fn main() -> std::process::ExitCode {
    keel_tools::sim::cli::main()
}
