//! `fedstake sim ...`.

use std::path::PathBuf;

use anyhow::Context;
use fedstake_simulations::experiment::Experiment;
use fedstake_simulations::report::write_run_folder;
use fedstake_simulations::runner::run_experiment;
use indicatif::{ProgressBar, ProgressStyle};

/// Options of `fedstake sim run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The experiment file (TOML).
    experiment: PathBuf,
    /// The run folder to write; files in it are replaced (default:
    /// `./<experiment file stem>-run`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Grid points simulated at once (threads); default: every core.
    #[arg(long)]
    jobs: Option<usize>,
}

/// Runs an experiment grid and writes its run folder.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let experiment = Experiment::load(&args.experiment)?;
    let base_dir = args
        .experiment
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .experiment
            .file_stem()
            .map_or("experiment".into(), |s| s.to_string_lossy());
        PathBuf::from(format!("{stem}-run"))
    });
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let progress = ProgressBar::new(experiment.grid_size() as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} runs, eta {eta} {msg}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let runs = run_experiment(&experiment, &base_dir, jobs, &|run| {
        progress.set_message(format!(
            "{} / {} / {}",
            run.labels.aggregator, run.labels.privacy, run.labels.attack
        ));
        progress.inc(1);
    })?;
    progress.finish_with_message("done");
    write_run_folder(&out, &experiment, &runs)?;
    println!("{} runs written to {}", runs.len(), out.display());
    println!("  {}", out.join("report.md").display());
    Ok(())
}
