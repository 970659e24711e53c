//! Writing an experiment's run folder: `rounds.csv`, `summary.json`,
//! `report.md` and PNG plots.
//!
//! Everything is derived from the runs' records in grid order and printed
//! with fixed precision, so the same experiment and seeds give byte-identical
//! files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::SimError;
use crate::experiment::Experiment;
use crate::runner::RunResult;

/// Seed-averaged outcome of one grid cell (aggregator, attack, fraction,
/// partition, privacy, dropouts).
#[derive(Debug, Clone, Serialize)]
pub struct CellSummary {
    /// Aggregator label.
    pub aggregator: String,
    /// Attack label.
    pub attack: String,
    /// Attacker fraction.
    pub attacker_fraction: f64,
    /// Partition label.
    pub partition: String,
    /// Privacy mode label.
    pub privacy: String,
    /// Dropout rates label.
    pub dropouts: String,
    /// Table row label: the aggregator, with the privacy mode and dropout
    /// rates when the experiment sweeps them.
    pub row: String,
    /// Seeds run.
    pub seeds: usize,
    /// Mean final validation accuracy over seeds.
    pub final_accuracy_mean: f64,
    /// Lowest final validation accuracy over seeds.
    pub final_accuracy_min: f64,
    /// Mean final backdoor success rate (backdoor attacks only).
    pub backdoor_success_mean: Option<f64>,
    /// Share of all rewards paid to honest clients.
    pub honest_reward_share: f64,
    /// Honest clients slashed, summed over seeds.
    pub honest_slashed: usize,
    /// Attackers slashed, summed over seeds.
    pub attackers_slashed: usize,
    /// Attackers, summed over seeds.
    pub attackers: usize,
    /// Whether the attack poisons (counts for slashing recall).
    pub poisoning: bool,
    /// Mean share of cohort members per round whose update reached no
    /// aggregated sum.
    pub dropped_share: f64,
    /// Groups that failed, summed over rounds and seeds.
    pub failed_groups: usize,
}

impl CellSummary {
    /// Slashing precision: slashed attackers over all slashed clients (1 when
    /// nobody was slashed).
    pub fn slashing_precision(&self) -> f64 {
        let slashed = self.honest_slashed + self.attackers_slashed;
        if slashed == 0 {
            1.0
        } else {
            self.attackers_slashed as f64 / slashed as f64
        }
    }

    /// Slashing recall over attackers (1 when there were none).
    pub fn slashing_recall(&self) -> f64 {
        if self.attackers == 0 {
            1.0
        } else {
            self.attackers_slashed as f64 / self.attackers as f64
        }
    }
}

/// The row label of a run in the report's tables.
fn row_label(experiment: &Experiment, run: &RunResult) -> String {
    let mut row = run.labels.aggregator.clone();
    if experiment.privacy.len() > 1 {
        row = format!("{row}, {}", run.labels.privacy);
    }
    if experiment.dropouts.len() > 1 {
        row = format!("{row}, dropouts {}", run.labels.dropouts);
    }
    row
}

/// Groups runs into cells, in grid order.
pub fn summarize(experiment: &Experiment, runs: &[RunResult]) -> Vec<CellSummary> {
    type Key = (usize, usize, usize, usize, usize, usize);
    let mut cells: BTreeMap<Key, Vec<&RunResult>> = BTreeMap::new();
    for run in runs {
        let p = run.point;
        cells
            .entry((
                p.aggregator,
                p.attack,
                p.fraction,
                p.partition,
                p.privacy,
                p.dropouts,
            ))
            .or_default()
            .push(run);
    }
    cells
        .into_values()
        .map(|runs| {
            let first = runs[0];
            let finals: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.rounds.last())
                .map(|r| r.accuracy)
                .collect();
            let backdoor: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.rounds.last().and_then(|r| r.backdoor_success))
                .collect();
            let honest: u128 = runs
                .iter()
                .flat_map(|r| &r.rounds)
                .map(|r| r.rewards_honest)
                .sum();
            let attackers: u128 = runs
                .iter()
                .flat_map(|r| &r.rounds)
                .map(|r| r.rewards_attackers)
                .sum();
            let paid = honest + attackers;
            let dropped: Vec<f64> = runs
                .iter()
                .flat_map(|r| &r.rounds)
                .map(|r| {
                    let cohort = r.accepted + r.rejected + r.dropped;
                    if cohort == 0 {
                        0.0
                    } else {
                        r.dropped as f64 / cohort as f64
                    }
                })
                .collect();
            CellSummary {
                aggregator: first.labels.aggregator.clone(),
                attack: first.labels.attack.clone(),
                attacker_fraction: experiment.attacker_fractions[first.point.fraction],
                partition: first.labels.partition.clone(),
                privacy: first.labels.privacy.clone(),
                dropouts: first.labels.dropouts.clone(),
                row: row_label(experiment, first),
                seeds: runs.len(),
                final_accuracy_mean: mean(&finals),
                final_accuracy_min: finals.iter().copied().fold(f64::INFINITY, f64::min),
                backdoor_success_mean: (!backdoor.is_empty()).then(|| mean(&backdoor)),
                honest_reward_share: if paid == 0 {
                    1.0
                } else {
                    honest as f64 / paid as f64
                },
                honest_slashed: runs.iter().map(|r| r.honest_slashed).sum(),
                attackers_slashed: runs.iter().map(|r| r.attackers_slashed).sum(),
                attackers: runs.iter().map(|r| r.attackers).sum(),
                poisoning: first.poisoning,
                dropped_share: if dropped.is_empty() {
                    0.0
                } else {
                    mean(&dropped)
                },
                failed_groups: runs
                    .iter()
                    .flat_map(|r| &r.rounds)
                    .map(|r| r.failed_groups)
                    .sum(),
            }
        })
        .collect()
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Writes the run folder.
pub fn write_run_folder(
    dir: &Path,
    experiment: &Experiment,
    runs: &[RunResult],
) -> Result<Vec<CellSummary>, SimError> {
    let io = |what: &str, e: &dyn std::fmt::Display| {
        SimError::Config(format!("writing {}: {e}", dir.join(what).display()))
    };
    std::fs::create_dir_all(dir.join("plots")).map_err(|e| io("plots", &e))?;
    write_rounds_csv(&dir.join("rounds.csv"), runs).map_err(|e| io("rounds.csv", &e))?;
    let cells = summarize(experiment, runs);
    let json = serde_json::to_string_pretty(&SummaryFile {
        experiment: &experiment.name,
        cells: &cells,
    })
    .map_err(|e| io("summary.json", &e))?;
    std::fs::write(dir.join("summary.json"), json + "\n").map_err(|e| io("summary.json", &e))?;
    std::fs::write(dir.join("report.md"), markdown(experiment, &cells))
        .map_err(|e| io("report.md", &e))?;
    plot_accuracy_per_round(&dir.join("plots"), experiment, runs)?;
    plot_heatmap(
        &dir.join("plots").join("final-accuracy-heatmap.png"),
        experiment,
        &cells,
    )?;
    Ok(cells)
}

#[derive(Serialize)]
struct SummaryFile<'a> {
    experiment: &'a str,
    cells: &'a [CellSummary],
}

fn write_rounds_csv(path: &Path, runs: &[RunResult]) -> Result<(), csv::Error> {
    let mut out = csv::Writer::from_path(path)?;
    out.write_record([
        "aggregator",
        "attack",
        "attacker_fraction",
        "partition",
        "privacy",
        "dropouts",
        "seed",
        "round",
        "accuracy",
        "loss",
        "backdoor_success",
        "accepted",
        "rejected",
        "dropped",
        "aggregator_inputs",
        "failed_groups",
        "rewards_honest",
        "rewards_attackers",
        "dust",
        "slashed_honest",
        "slashed_attackers",
    ])?;
    for run in runs {
        for r in &run.rounds {
            out.write_record([
                run.labels.aggregator.clone(),
                run.labels.attack.clone(),
                format!("{:.4}", run.labels.fraction),
                run.labels.partition.clone(),
                run.labels.privacy.clone(),
                run.labels.dropouts.clone(),
                run.point.seed.to_string(),
                r.round.to_string(),
                format!("{:.6}", r.accuracy),
                format!("{:.6}", r.loss),
                r.backdoor_success
                    .map(|b| format!("{b:.6}"))
                    .unwrap_or_default(),
                r.accepted.to_string(),
                r.rejected.to_string(),
                r.dropped.to_string(),
                r.aggregator_inputs.to_string(),
                r.failed_groups.to_string(),
                r.rewards_honest.to_string(),
                r.rewards_attackers.to_string(),
                r.dust.to_string(),
                r.slashed_honest.to_string(),
                r.slashed_attackers.to_string(),
            ])?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Labels of the table rows and attacks in experiment order.
fn axis_labels(cells: &[CellSummary]) -> (Vec<String>, Vec<String>) {
    let mut rows: Vec<String> = Vec::new();
    let mut attacks: Vec<String> = Vec::new();
    for cell in cells {
        if !rows.contains(&cell.row) {
            rows.push(cell.row.clone());
        }
        if !attacks.contains(&cell.attack) {
            attacks.push(cell.attack.clone());
        }
    }
    (rows, attacks)
}

/// One markdown table: a row per aggregator (and privacy mode and dropout
/// rates, when swept), a column per attack, for every (fraction, partition)
/// pair; `value` formats a cell.
fn table(
    cells: &[CellSummary],
    title: &str,
    value: impl Fn(&CellSummary) -> Option<String>,
) -> String {
    let (aggregators, attacks) = axis_labels(cells);
    let mut settings: Vec<(String, String)> = Vec::new();
    for cell in cells {
        let key = (
            format!("{:.2}", cell.attacker_fraction),
            cell.partition.clone(),
        );
        if !settings.contains(&key) {
            settings.push(key);
        }
    }
    let mut out = String::new();
    for (fraction, partition) in &settings {
        let _ = writeln!(out, "### {title} (attackers {fraction}, {partition})\n");
        let _ = writeln!(out, "| aggregator | {} |", attacks.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(attacks.len()));
        for aggregator in &aggregators {
            let row: Vec<String> = attacks
                .iter()
                .map(|attack| {
                    cells
                        .iter()
                        .find(|c| {
                            &c.row == aggregator
                                && &c.attack == attack
                                && &format!("{:.2}", c.attacker_fraction) == fraction
                                && &c.partition == partition
                        })
                        .and_then(&value)
                        .unwrap_or_else(|| "-".into())
                })
                .collect();
            let _ = writeln!(out, "| {aggregator} | {} |", row.join(" | "));
        }
        out.push('\n');
    }
    out
}

fn markdown(experiment: &Experiment, cells: &[CellSummary]) -> String {
    let mut out = format!("# Experiment: {}\n\n", experiment.name);
    let _ = writeln!(
        out,
        "{} clients ({} per round), {} rounds, seeds {:?}; every cell is the mean over seeds \
         (minimum in parentheses where shown).\n",
        experiment.clients, experiment.clients_per_round, experiment.rounds, experiment.seeds
    );
    if let Some(recommended) = &experiment.recommended {
        // Per privacy mode, at the first dropout setting.
        let dropouts = experiment.dropouts[0].label();
        for privacy in &experiment.privacy {
            let privacy = privacy.label();
            let mode: Vec<CellSummary> = cells
                .iter()
                .filter(|c| c.privacy == privacy && c.dropouts == dropouts)
                .cloned()
                .collect();
            let title = if experiment.privacy.len() > 1 {
                format!("`{recommended}` under {privacy}")
            } else {
                format!("`{recommended}`")
            };
            out.push_str(&goals(recommended, &title, cells, &mode));
        }
    }
    if experiment.privacy.len() > 1 {
        out.push_str(&price_of_privacy(experiment, cells));
    }
    out.push_str("## Final accuracy\n\n");
    out.push_str(&table(
        cells,
        "Final validation accuracy, mean (min)",
        |c| {
            Some(format!(
                "{:.3} ({:.3})",
                c.final_accuracy_mean, c.final_accuracy_min
            ))
        },
    ));
    out.push_str("## Backdoor success\n\n");
    out.push_str(&table(cells, "Backdoor success rate", |c| {
        c.backdoor_success_mean.map(|b| format!("{b:.3}"))
    }));
    out.push_str("## Reward share of honest clients\n\n");
    out.push_str(&table(
        cells,
        "Share of rewards paid to honest clients",
        |c| Some(format!("{:.3}", c.honest_reward_share)),
    ));
    out.push_str("## Slashing against the ground truth\n\n");
    out.push_str(&table(
        cells,
        "Slashing precision / recall (honest slashed)",
        |c| {
            Some(if c.poisoning {
                format!(
                    "{:.2} / {:.2} ({})",
                    c.slashing_precision(),
                    c.slashing_recall(),
                    c.honest_slashed
                )
            } else {
                format!("- / - ({})", c.honest_slashed)
            })
        },
    ));
    out.push_str("Plots: `plots/accuracy-<attack>.png` (accuracy per round, one line per table row, mean over seeds) and `plots/final-accuracy-heatmap.png`.\n");
    out
}

/// The robustness goals checked for the recommended aggregator over the cells
/// of `mode`, against the best attack-free FedAvg of all `cells`.
fn goals(recommended: &str, title: &str, cells: &[CellSummary], mode: &[CellSummary]) -> String {
    let mut out = format!("## Goals for the recommended aggregator {title}\n\n");
    let baseline = cells
        .iter()
        .filter(|c| c.aggregator.starts_with("fedavg") && c.attack == "none")
        .map(|c| c.final_accuracy_mean)
        .fold(f64::NAN, f64::max);
    // Everything below is about this mode's cells.
    let cells = mode;
    let mine: Vec<&CellSummary> = cells
        .iter()
        .filter(|c| c.aggregator == recommended)
        .collect();
    if mine.is_empty() {
        return out + "The recommended aggregator is not in the grid.\n\n";
    }
    let worst = mine
        .iter()
        .min_by(|a, b| a.final_accuracy_mean.total_cmp(&b.final_accuracy_mean))
        .map(|c| (c.attack.as_str(), c.final_accuracy_mean));
    let honest_share = mine
        .iter()
        .filter(|c| c.attack != "none" && c.attack != "free-rider")
        .map(|c| c.honest_reward_share)
        .fold(f64::INFINITY, f64::min);
    let free_rider_share = mine
        .iter()
        .filter(|c| c.attack == "free-rider")
        .map(|c| 1.0 - c.honest_reward_share)
        .fold(0.0, f64::max);
    let honest_slashed: usize = cells.iter().map(|c| c.honest_slashed).sum();
    let (caught, poisoners) = mine
        .iter()
        .filter(|c| c.poisoning)
        .fold((0, 0), |(a, b), c| {
            (a + c.attackers_slashed, b + c.attackers)
        });
    let check = |ok: bool| if ok { "yes" } else { "**no**" };
    if let Some((attack, accuracy)) = worst {
        let ratio = accuracy / baseline;
        let _ = writeln!(
            out,
            "- Worst final accuracy {accuracy:.3} (under `{attack}`) is {:.1}% of attack-free FedAvg's {baseline:.3} (goal >= 95%): {}",
            ratio * 100.0,
            check(ratio >= 0.95)
        );
    }
    let _ = writeln!(
        out,
        "- Lowest honest reward share under an attack: {honest_share:.3} (goal >= 0.95): {}",
        check(honest_share >= 0.95)
    );
    let _ = writeln!(
        out,
        "- Largest free-rider reward share: {free_rider_share:.3} (goal <= 0.05): {}",
        check(free_rider_share <= 0.05)
    );
    let _ = writeln!(
        out,
        "- Honest clients slashed in any grid point and seed: {honest_slashed} (goal 0): {}",
        check(honest_slashed == 0)
    );
    let recall = if poisoners == 0 {
        1.0
    } else {
        caught as f64 / poisoners as f64
    };
    let _ = writeln!(
        out,
        "- Persistent poisoners slashed: {caught} of {poisoners} ({:.1}%, goal >= 90%): {}\n",
        recall * 100.0,
        check(recall >= 0.9)
    );
    out
}

/// Plain robust aggregation against grouped secure aggregation: per
/// aggregator and privacy mode, over the attacks of each (fraction,
/// partition, dropouts) setting.
fn price_of_privacy(experiment: &Experiment, cells: &[CellSummary]) -> String {
    let mut out = String::from(
        "## Price of privacy\n\nPer aggregator and privacy mode, over the attacks: final accuracy \
         without attack, mean over attacks and the worst attack; the lowest honest reward share \
         under an attack; poisoners slashed; honest clients slashed; share of cohort members \
         whose update reached no sum (dropouts and failed groups).\n\n",
    );
    let mut settings: Vec<(String, String, String)> = Vec::new();
    for cell in cells {
        let key = (
            format!("{:.2}", cell.attacker_fraction),
            cell.partition.clone(),
            cell.dropouts.clone(),
        );
        if !settings.contains(&key) {
            settings.push(key);
        }
    }
    for (fraction, partition, dropouts) in &settings {
        let _ = writeln!(
            out,
            "### Attackers {fraction}, {partition}, dropouts {dropouts}\n\n\
             | aggregator | privacy | no attack | mean over attacks | worst attack | honest reward share | poisoners slashed | honest slashed | updates lost |\n\
             |---|---|---|---|---|---|---|---|---|"
        );
        for spec in &experiment.aggregators {
            let Ok(aggregator) = fedstake_aggregation::Aggregator::try_from(spec) else {
                continue;
            };
            let aggregator = aggregator.to_string();
            for privacy in experiment.privacy.iter().map(|p| p.label()) {
                let mine: Vec<&CellSummary> = cells
                    .iter()
                    .filter(|c| {
                        c.aggregator == aggregator
                            && c.privacy == privacy
                            && &format!("{:.2}", c.attacker_fraction) == fraction
                            && &c.partition == partition
                            && &c.dropouts == dropouts
                    })
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let clean = mine
                    .iter()
                    .find(|c| c.attack == "none")
                    .map_or("-".into(), |c| format!("{:.3}", c.final_accuracy_mean));
                let attacked: Vec<&&CellSummary> =
                    mine.iter().filter(|c| c.attack != "none").collect();
                let accuracies: Vec<f64> = attacked.iter().map(|c| c.final_accuracy_mean).collect();
                let worst = attacked
                    .iter()
                    .min_by(|a, b| a.final_accuracy_mean.total_cmp(&b.final_accuracy_mean))
                    .map_or("-".into(), |c| {
                        format!("{:.3} ({})", c.final_accuracy_mean, c.attack)
                    });
                let share = attacked
                    .iter()
                    .filter(|c| c.attack != "free-rider")
                    .map(|c| c.honest_reward_share)
                    .fold(f64::INFINITY, f64::min);
                let (caught, poisoners) = attacked
                    .iter()
                    .filter(|c| c.poisoning)
                    .fold((0, 0), |(a, b), c| {
                        (a + c.attackers_slashed, b + c.attackers)
                    });
                let honest_slashed: usize = mine.iter().map(|c| c.honest_slashed).sum();
                let lost = mean(&mine.iter().map(|c| c.dropped_share).collect::<Vec<_>>());
                let _ = writeln!(
                    out,
                    "| {aggregator} | {privacy} | {clean} | {} | {worst} | {} | {} | {honest_slashed} | {:.1}% |",
                    if accuracies.is_empty() {
                        "-".into()
                    } else {
                        format!("{:.3}", mean(&accuracies))
                    },
                    if share.is_finite() {
                        format!("{share:.3}")
                    } else {
                        "-".into()
                    },
                    if poisoners == 0 {
                        "-".into()
                    } else {
                        format!("{caught} of {poisoners}")
                    },
                    lost * 100.0
                );
            }
        }
        out.push('\n');
    }
    out
}

fn plot_error(e: impl std::fmt::Display) -> SimError {
    SimError::Config(format!("plotting: {e}"))
}

/// Registers the embedded DejaVu font once, so plots need no system fonts.
fn ensure_font() -> Result<(), SimError> {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *FONT.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(plot_error("the embedded font could not be loaded"))
    }
}

/// One PNG per attack: accuracy per round, a line per table row (mean over
/// seeds, first fraction and partition).
fn plot_accuracy_per_round(
    dir: &Path,
    experiment: &Experiment,
    runs: &[RunResult],
) -> Result<(), SimError> {
    ensure_font()?;
    for (attack_index, attack) in experiment.attacks.iter().enumerate() {
        let path = dir.join(format!("accuracy-{}.png", attack.name()));
        let root = BitMapBackend::new(&path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Validation accuracy per round under {}", attack.name()),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .right_y_label_area_size(0)
            .build_cartesian_2d(0u32..experiment.rounds, 0f64..1f64)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("round")
            .y_desc("accuracy")
            .draw()
            .map_err(plot_error)?;
        // One line per (aggregator, privacy, dropouts), in grid order.
        let (privacies, dropout_settings) = (experiment.privacy.len(), experiment.dropouts.len());
        for line in 0..experiment.aggregators.len() * privacies * dropout_settings {
            let aggregator = line / (privacies * dropout_settings);
            let privacy = line / dropout_settings % privacies;
            let dropouts = line % dropout_settings;
            let matching: Vec<&RunResult> = runs
                .iter()
                .filter(|r| {
                    r.point.attack == attack_index
                        && r.point.aggregator == aggregator
                        && r.point.privacy == privacy
                        && r.point.dropouts == dropouts
                        && r.point.fraction == 0
                        && r.point.partition == 0
                })
                .collect();
            let Some(first) = matching.first() else {
                continue;
            };
            // A run can end early (every client slashed), so rounds are
            // averaged over the runs that reached them.
            let series: Vec<(u32, f64)> = (0..first.rounds.len())
                .map(|i| {
                    let accuracies: Vec<f64> = matching
                        .iter()
                        .filter_map(|r| r.rounds.get(i))
                        .map(|r| r.accuracy)
                        .collect();
                    (first.rounds[i].round, mean(&accuracies))
                })
                .collect();
            let color = Palette99::pick(line).to_rgba();
            chart
                .draw_series(LineSeries::new(series, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(row_label(experiment, first))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(())
}

/// Heat map of mean final accuracy, aggregators (rows) x attacks (columns),
/// for the first fraction and partition.
fn plot_heatmap(
    path: &Path,
    experiment: &Experiment,
    cells: &[CellSummary],
) -> Result<(), SimError> {
    ensure_font()?;
    let (aggregators, attacks) = axis_labels(cells);
    let fraction = experiment.attacker_fractions[0];
    let first_partition = cells
        .first()
        .map(|c| c.partition.clone())
        .unwrap_or_default();
    let cell_w = 110;
    let cell_h = 34;
    // About 8 pixels per character of the longest row label.
    let left = 20 + 8 * aggregators.iter().map(String::len).max().unwrap_or(10) as u32;
    let top = 110;
    let width = left + cell_w * attacks.len() as u32 + 20;
    let height = top + cell_h * aggregators.len() as u32 + 20;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let text = |s: &str, x: i32, y: i32, size: i32| {
        root.draw(&Text::new(
            s.to_string(),
            (x, y),
            ("sans-serif", size).into_font().color(&BLACK),
        ))
    };
    let shown: Vec<f64> = cells
        .iter()
        .filter(|c| c.attacker_fraction == fraction && c.partition == first_partition)
        .map(|c| c.final_accuracy_mean)
        .collect();
    let low = shown.iter().copied().fold(f64::INFINITY, f64::min);
    let high = shown.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    text(
        &format!("Final accuracy (mean over seeds; colours from {low:.3} red to {high:.3} green)"),
        12,
        10,
        20,
    )
    .map_err(plot_error)?;
    for (j, attack) in attacks.iter().enumerate() {
        text(
            attack,
            left as i32 + j as i32 * cell_w as i32 + 6,
            top as i32 - 30,
            15,
        )
        .map_err(plot_error)?;
    }
    for (i, aggregator) in aggregators.iter().enumerate() {
        let y = top as i32 + i as i32 * cell_h as i32;
        text(aggregator, 8, y + 9, 15).map_err(plot_error)?;
        for (j, attack) in attacks.iter().enumerate() {
            let Some(cell) = cells.iter().find(|c| {
                &c.row == aggregator
                    && &c.attack == attack
                    && c.attacker_fraction == fraction
                    && c.partition == first_partition
            }) else {
                continue;
            };
            let x = left as i32 + j as i32 * cell_w as i32;
            let value = cell.final_accuracy_mean;
            // Red (the table's worst) through yellow to green (its best).
            let t = if high > low {
                ((value - low) / (high - low)).clamp(0.0, 1.0)
            } else {
                1.0
            };
            let color = RGBColor(
                (255.0 * ((1.0 - t) * 2.0).min(1.0)) as u8,
                (255.0 * (t * 2.0).min(1.0)) as u8,
                60,
            );
            root.draw(&Rectangle::new(
                [(x, y), (x + cell_w as i32 - 2, y + cell_h as i32 - 2)],
                color.filled(),
            ))
            .map_err(plot_error)?;
            text(&format!("{value:.3}"), x + 30, y + 9, 15).map_err(plot_error)?;
        }
    }
    root.present().map_err(plot_error)?;
    Ok(())
}
