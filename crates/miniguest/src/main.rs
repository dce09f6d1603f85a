use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    // A shell asking for completions (COMPLETE=bash …) gets them and no more.
    clap_complete::CompleteEnv::with_factory(miniguest::cli::command).complete();
    let cli = miniguest::cli::Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "miniguest=debug",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    if let Err(e) = miniguest::commands::run(cli) {
        if let Some(miniguest::commands::ExitStatus(code)) = e.downcast_ref() {
            std::process::exit(*code);
        }
        // One line: the chain of causes, outermost first.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
