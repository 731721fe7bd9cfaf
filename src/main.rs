//! `expc`, the command-line interface: a thin layer over the library.
//!
//! Exit status: 0 success, 1 a user error (bad spec, bad data, failed check), 2 an internal
//! error (a bug in expc: please report it).

mod cli;

fn main() {
    restore_sigpipe();
    let code = match std::panic::catch_unwind(cli::main) {
        Ok(code) => code,
        Err(_) => {
            eprintln!("error: internal error in expc (this is a bug; please report it with the input that caused it)");
            2
        }
    };
    std::process::exit(code);
}

/// Rust ignores SIGPIPE, so `expc dump graph … | head -1` would turn the closed pipe into a
/// failed `println!` and a panic. Like other Unix tools, expc dies quietly of SIGPIPE instead.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
