//! Experiment files, grid runs and run folders.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;

use fedstake_simulations::experiment::Experiment;
use fedstake_simulations::report::write_run_folder;
use fedstake_simulations::runner::run_experiment;

const SMALL: &str = r#"
name = "small"
seeds = [1, 2]
rounds = 4
clients = 8
clients_per_round = 8
attacker_fractions = [0.25]
clip_norm = 5.0
partitions = [{ kind = "dirichlet", alpha = 1.0 }]
aggregators = [{ rule = "fedavg" }, { rule = "median" }]
attacks = [{ kind = "none" }, { kind = "sign-flip" }, { kind = "backdoor" }, { kind = "ipm" }]
recommended = "median"

[data]
kind = "synthetic"
classes = 4
features = 12
examples = 2400
root_examples = 100

[model]
kind = "mlp"
hidden = [16]

[training]
epochs = 1
batch_size = 32
learning_rate = 0.05
max_examples = 250

[training.optimizer]
kind = "sgd"
momentum = 0.9

[rewards]
round_budget = "1_000_000_000_000_000_000"
stake = "10_000_000_000_000_000_000"

[slashing]
window = 3
min_flags = 2
fraction = 0.5
"#;

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

#[test]
fn the_robustness_example_parses_and_spans_the_whole_grid() {
    let experiment = Experiment::load(&examples().join("robustness.toml")).unwrap();
    assert_eq!(experiment.clients, 25);
    assert_eq!(experiment.attacker_fractions, vec![0.2]);
    assert_eq!(experiment.seeds.len(), 3);
    // Every attack and every aggregator rule of the issue is in the grid.
    let attacks: Vec<&str> = experiment.attacks.iter().map(|a| a.name()).collect();
    for name in [
        "none",
        "sign-flip",
        "label-flip",
        "gaussian-noise",
        "backdoor",
        "alie",
        "ipm",
        "free-rider",
        "sybil",
    ] {
        assert!(attacks.contains(&name), "{name} missing");
    }
    let rules: Vec<String> = experiment
        .aggregators
        .iter()
        .map(|a| {
            fedstake_aggregation::Aggregator::try_from(a)
                .unwrap()
                .to_string()
        })
        .collect();
    for prefix in [
        "fedavg",
        "median",
        "trimmed-mean",
        "krum",
        "multi-krum",
        "bulyan",
        "geometric-median",
        "centered-clipping",
        "norm-bounding",
        "fltrust",
    ] {
        assert!(
            rules.iter().any(|r| r.starts_with(prefix)),
            "{prefix} missing"
        );
    }
    assert!(rules.iter().any(|r| r.contains("+bucketing(")));
    assert_eq!(experiment.grid_size(), 12 * 9 * 3);
}

#[test]
fn the_secagg_example_compares_groups_of_5_and_10_under_the_robustness_attacks() {
    use fedstake_simulations::experiment::PrivacyConfig;
    let secagg = Experiment::load(&examples().join("secagg.toml")).unwrap();
    let robustness = Experiment::load(&examples().join("robustness.toml")).unwrap();
    assert_eq!(secagg.attacks, robustness.attacks);
    assert_eq!(secagg.attacker_fractions, robustness.attacker_fractions);
    let sizes: Vec<Option<u32>> = secagg
        .privacy
        .iter()
        .map(|p| match p {
            PrivacyConfig::Plain {} => None,
            PrivacyConfig::Secagg { group_size, .. } => Some(*group_size),
        })
        .collect();
    assert_eq!(sizes, vec![None, Some(5), Some(10)]);
}

#[test]
fn invalid_experiments_name_the_field() {
    for (from, to, field) in [
        ("rounds = 4", "rounds = 0", "rounds"),
        (
            "clients_per_round = 8",
            "clients_per_round = 9",
            "clients_per_round",
        ),
        (
            "attacker_fractions = [0.25]",
            "attacker_fractions = [0.5]",
            "attacker_fractions",
        ),
        ("clip_norm = 5.0", "clip_norm = -1.0", "clip_norm"),
        ("min_flags = 2", "min_flags = 4", "slashing.min_flags"),
        (
            "{ rule = \"median\" }",
            "{ rule = \"trimmed-mean\", trim_fraction = 0.6 }",
            "aggregators[1]",
        ),
        (
            "{ kind = \"ipm\" }",
            "{ kind = \"ipm\", epsilon = -1.0 }",
            "attacks[3]",
        ),
        ("seeds = [1, 2]", "seeds = []", "seeds"),
        (
            "recommended = \"median\"",
            "recommended = \"median\"\nprivacy = [{ mode = \"plain\" }, { mode = \"secagg\", group_size = 9 }]",
            "with privacy[1]: invalid task spec: privacy.group_size",
        ),
        (
            "recommended = \"median\"",
            "recommended = \"median\"\nprivacy = [{ mode = \"secagg\", group_size = 4, fractional_bits = 30 }]",
            "with privacy[0]: invalid task spec: update.fractional_bits",
        ),
        (
            "recommended = \"median\"",
            "recommended = \"median\"\ndropouts = [{ share_keys = 1.0 }]",
            "dropouts[0].share_keys",
        ),
    ] {
        let text = SMALL.replace(from, to);
        assert_ne!(text, SMALL, "{from}");
        let err = Experiment::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
    let err = Experiment::from_toml_str(&SMALL.replace("rounds = 4", "rounds = 4\nround = 3"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn runs_are_deterministic_whatever_the_thread_count() {
    let experiment = Experiment::from_toml_str(SMALL).unwrap();
    let one = run_experiment(&experiment, Path::new("."), 1, &|_| {}).unwrap();
    let two = run_experiment(&experiment, Path::new("."), 2, &|_| {}).unwrap();
    assert_eq!(one, two);
    assert_eq!(one.len(), experiment.grid_size());

    let dir = tempfile::tempdir().unwrap();
    write_run_folder(&dir.path().join("a"), &experiment, &one).unwrap();
    write_run_folder(&dir.path().join("b"), &experiment, &two).unwrap();
    for file in ["rounds.csv", "summary.json", "report.md"] {
        let a = std::fs::read(dir.path().join("a").join(file)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(file)).unwrap();
        assert!(!a.is_empty() && a == b, "{file} differs");
    }
}

#[test]
fn a_run_folder_has_every_output_and_the_attacks_show() {
    let experiment = Experiment::from_toml_str(SMALL).unwrap();
    let runs = run_experiment(&experiment, Path::new("."), 2, &|_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cells = write_run_folder(dir.path(), &experiment, &runs).unwrap();

    let csv = std::fs::read_to_string(dir.path().join("rounds.csv")).unwrap();
    // A header and one row per grid point per round.
    assert_eq!(csv.lines().count(), 1 + experiment.grid_size() * 4);
    assert!(csv.starts_with(
        "aggregator,attack,attacker_fraction,partition,privacy,dropouts,seed,round,accuracy"
    ));
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for section in [
        "## Goals",
        "## Final accuracy",
        "## Backdoor success",
        "## Reward share",
        "## Slashing",
    ] {
        assert!(report.contains(section), "{section} missing");
    }
    for plot in [
        "plots/final-accuracy-heatmap.png",
        "plots/accuracy-none.png",
        "plots/accuracy-sign-flip.png",
    ] {
        let bytes = std::fs::read(dir.path().join(plot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{plot} is not a PNG");
    }

    let cell = |aggregator: &str, attack: &str| {
        cells
            .iter()
            .find(|c| c.aggregator == aggregator && c.attack == attack)
            .unwrap()
    };
    // Without attackers everybody honest is paid, nobody is slashed.
    let clean = cell("fedavg", "none");
    assert_eq!(clean.honest_reward_share, 1.0);
    assert_eq!(clean.honest_slashed + clean.attackers_slashed, 0);
    // The backdoor succeeds against plain FedAvg, and its success is reported
    // for backdoor runs only.
    assert!(cell("fedavg", "backdoor").backdoor_success_mean.unwrap() > 0.5);
    assert!(cell("fedavg", "none").backdoor_success_mean.is_none());
    // IPM attackers send identical vectors: near-duplicates, paid nothing and
    // slashed, whatever the aggregator.
    for aggregator in ["fedavg", "median"] {
        let ipm = cell(aggregator, "ipm");
        assert_eq!(ipm.honest_reward_share, 1.0, "{aggregator}");
        assert_eq!(ipm.attackers_slashed, ipm.attackers, "{aggregator}");
        assert_eq!(ipm.honest_slashed, 0, "{aggregator}");
    }
}

#[test]
fn experiments_read_data_files_relative_to_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let data = fedstake_training::data::synthetic(&fedstake_training::data::SyntheticSpec {
        classes: 4,
        dim: 12,
        examples: 1200,
        separation: 3.0,
        noise: 1.0,
        seed: 5,
    })
    .unwrap();
    let images = data
        .features()
        .mapv(|v| (v * 20.0 + 128.0).clamp(0.0, 255.0) as u8);
    let labels: Vec<u8> = data.labels().iter().map(|&l| l as u8).collect();
    fedstake_training::data::write_idx(
        dir.path().join("x.idx.gz"),
        dir.path().join("y.idx"),
        images.view(),
        3,
        4,
        &labels,
        true,
    )
    .unwrap();
    let text = SMALL
        .replace(
            "kind = \"synthetic\"\nclasses = 4\nfeatures = 12\nexamples = 2400",
            "kind = \"files\"\nsource = \"idx:x.idx.gz,y.idx\"\nclasses = 4\nfeatures = 12\nfeature_scale = 0.05",
        )
        .replace("seeds = [1, 2]", "seeds = [1]")
        .replace("rounds = 4", "rounds = 12")
        .replace("attacks = [{ kind = \"none\" }, { kind = \"sign-flip\" }, { kind = \"backdoor\" }, { kind = \"ipm\" }]", "attacks = [{ kind = \"none\" }]");
    let path = dir.path().join("files.toml");
    std::fs::write(&path, text).unwrap();
    let experiment = Experiment::load(&path).unwrap();
    let runs = run_experiment(&experiment, dir.path(), 1, &|_| {}).unwrap();
    assert_eq!(runs.len(), 2);
    // The clusters survive the 8-bit encoding (scaled back to unit noise):
    // FedAvg learns from the file data, well above chance (0.25).
    let fedavg = runs
        .iter()
        .find(|r| r.labels.aggregator == "fedavg")
        .unwrap();
    let accuracy = fedavg.rounds.last().unwrap().accuracy;
    assert!(accuracy > 0.5, "{accuracy}");

    let missing = path.with_file_name("missing.toml");
    std::fs::write(
        &missing,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("x.idx.gz", "nope.idx"),
    )
    .unwrap();
    let experiment = Experiment::load(&missing).unwrap();
    let err = run_experiment(&experiment, dir.path(), 1, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.idx"), "{err}");
}

#[test]
fn secure_aggregation_runs_real_groups_and_reports_the_price_of_privacy() {
    let text = SMALL
        .replace("seeds = [1, 2]", "seeds = [3]")
        .replace(
            "attacks = [{ kind = \"none\" }, { kind = \"sign-flip\" }, { kind = \"backdoor\" }, { kind = \"ipm\" }]",
            "attacks = [{ kind = \"none\" }, { kind = \"sign-flip\" }]\n\
             privacy = [{ mode = \"plain\" }, { mode = \"secagg\", group_size = 4 }]\n\
             dropouts = [{}, { share_keys = 0.1, masked_input = 0.1, unmasking = 0.1 }]",
        );
    let experiment = Experiment::from_toml_str(&text).unwrap();
    assert_eq!(experiment.grid_size(), 2 * 2 * 2 * 2);
    let one = run_experiment(&experiment, Path::new("."), 1, &|_| {}).unwrap();
    let two = run_experiment(&experiment, Path::new("."), 2, &|_| {}).unwrap();
    assert_eq!(one, two);
    let run = |aggregator: &str, attack: &str, privacy: &str, dropouts: &str| {
        one.iter()
            .find(|r| {
                r.labels.aggregator == aggregator
                    && r.labels.attack == attack
                    && r.labels.privacy == privacy
                    && r.labels.dropouts == dropouts
            })
            .unwrap()
    };
    // 8 clients in groups of 4: the aggregator sees two group means a round.
    let secure = run("fedavg", "none", "secagg(g=4)", "none");
    assert!(secure.rounds.iter().all(|r| r.aggregator_inputs == 2));
    assert!(
        secure
            .rounds
            .iter()
            .all(|r| r.accepted == 8 && r.dropped == 0)
    );
    // FedAvg of group means weighted by the groups' summed weights is FedAvg
    // of all updates, up to the 2^-f quantization.
    let plain = run("fedavg", "none", "plain", "none");
    for (s, p) in secure.rounds.iter().zip(&plain.rounds) {
        assert!(
            (s.accuracy - p.accuracy).abs() < 0.02,
            "{} vs {}",
            s.accuracy,
            p.accuracy
        );
    }
    // Dropouts cost updates in both modes; secure aggregation has more
    // phases to drop in.
    let dropping = run(
        "median",
        "none",
        "secagg(g=4)",
        "share_keys=0.1 masked_input=0.1 unmasking=0.1",
    );
    assert!(dropping.rounds.iter().map(|r| r.dropped).sum::<usize>() > 0);
    assert_eq!(secure.honest_slashed + dropping.honest_slashed, 0);

    let dir = tempfile::tempdir().unwrap();
    write_run_folder(dir.path(), &experiment, &one).unwrap();
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for text in [
        "## Goals for the recommended aggregator `median` under plain",
        "## Goals for the recommended aggregator `median` under secagg(g=4)",
        "## Price of privacy",
        "| median | secagg(g=4) |",
        "| fedavg, secagg(g=4), dropouts none |",
    ] {
        assert!(report.contains(text), "{text} missing");
    }
}
