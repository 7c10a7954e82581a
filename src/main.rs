//! `recagent` command line (see [`cli`]).

mod cli;

// mimalloc rather than the system allocator: a large run's rounds allocate and free gigabytes
// of short-lived vectors, for which glibc's malloc mapped and zeroed fresh pages every step
// (docs/PERFORMANCE.md, "Allocator").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
