//! The `ingot` binary: parse the command line, run it, print the error as
//! one line (and, with `--json`, as JSON on stdout) and exit with its code
//! (0 ok, 1 failure, 2 usage or recipe).

use clap::Parser;

fn main() {
    let cli = match ingot::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            if let Some(json) = ingot::cli::usage_error_json(&err, std::env::args_os()) {
                println!("{json}");
            }
            err.exit();
        }
    };
    if let Err(err) = ingot::cli::run(cli, &mut std::io::stdout().lock()) {
        eprintln!("error: {err}");
        std::process::exit(err.exit_code());
    }
}
