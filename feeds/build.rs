//! Sets the `keel_avx512` cfg when the build targets every AVX-512 extension the SIMD parsers use
//! (`target-cpu=native` on Zen 4/5, see `.cargo/config.toml`), so that their `#[cfg]`s name one
//! condition instead of repeating the list. Without it the scalar and SWAR paths are compiled.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(keel_avx512)");
    println!("cargo::rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let have: Vec<&str> = features.split(',').collect();
    let need = [
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512dq",
        "avx512cd",
        "avx512bitalg",
        "avx512vbmi",
    ];
    if arch == "x86_64" && need.iter().all(|f| have.contains(f)) {
        println!("cargo::rustc-cfg=keel_avx512");
    }
}
