//! `keel`, Keel's command line. Everything lives in the `keel_tools` library.

fn main() -> std::process::ExitCode {
    keel_tools::main()
}
