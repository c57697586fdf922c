//! The `sealos` binary: a shim over [`sealos::run_from_iter`].

fn main() -> std::process::ExitCode {
    registry::allocator::tune_for_streaming();
    sealos::run_from_iter(std::env::args_os())
}
