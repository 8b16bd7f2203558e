fn main() {
    // A reader that stops early (`crosstalk plan ... | head`) ends the
    // process quietly with SIGPIPE, as every Unix tool does; Rust ignores
    // SIGPIPE by default, which turns the next `println!` into a panic with
    // a backtrace.
    #[cfg(unix)]
    // SAFETY: restores the signal's default disposition before any other
    // thread exists; no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(crosstalk_sim::cli::main());
}
