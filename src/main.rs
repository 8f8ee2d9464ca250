//! The `ingot` binary: parse the command line, run it, print the error as
//! one line and exit with its code (0 ok, 1 failure, 2 usage or recipe).

use clap::Parser;

fn main() {
    let cli = ingot::cli::Cli::parse();
    if let Err(err) = ingot::cli::run(cli, &mut std::io::stdout().lock()) {
        eprintln!("error: {err}");
        std::process::exit(err.exit_code());
    }
}
