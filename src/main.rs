//! `expc`, the command-line interface: a thin layer over the library.
//!
//! Exit status: 0 success, 1 a user error (bad spec, bad data, failed check), 2 an internal
//! error (a bug in expc: please report it).

mod cli;

fn main() {
    let code = match std::panic::catch_unwind(cli::main) {
        Ok(code) => code,
        Err(_) => {
            eprintln!("error: internal error in expc (this is a bug; please report it with the input that caused it)");
            2
        }
    };
    std::process::exit(code);
}
