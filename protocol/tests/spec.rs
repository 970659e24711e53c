//! Task spec: the example files, canonical form and hash, strict parsing, and every validation
//! rule (each rejected with the right dotted field).

use std::path::{Path, PathBuf};
use std::time::Duration;

use fedstake_protocol::spec::{
    AggregationRule, Bucketing, ChainEndpoint, ModelSpec, OptimizerSpec, Phase, PrivacySpec,
    QUANTIZED_SUM_LIMIT, Reference, SlashingSpec, SpecError, TaskSpec,
};

const EXAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

/// A valid spec with every section: secagg groups of 4 out of a 12..20 cohort (3..5 group means),
/// rewards and slashing on a JSON-RPC chain, a coordinator.
const BASE: &str = r#"
name = "base"
rounds = 5

[model]
kind = "mlp"
hidden = [16, 8]

[data]
features = 10
classes = 3

[cohort]
size = 20
min = 12

[training]
epochs = 1
batch_size = 8
learning_rate = 0.1
max_examples = 100

[update]
clip_norm = 1.0
fractional_bits = 16

[privacy]
mode = "secagg"
group_size = 4
threshold = 3

[aggregation]
rule = "trimmed-mean"
trim_fraction = 0.2

[rewards]
pool = 1000
round_budget = 100
min_stake = 10
token = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

[slashing]
window = 5
min_flags = 2
fraction = 0.5

[chain]
endpoint = "http://127.0.0.1:8545"
contract = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
chain_id = 31337

[coordinator]
address = "127.0.0.1:4433"
tls_fingerprint = "0000000000000000000000000000000000000000000000000000000000000000"
"#;

fn base() -> TaskSpec {
    TaskSpec::from_toml_str(BASE).expect("BASE is valid")
}

fn plain(spec: &mut TaskSpec) {
    spec.privacy = PrivacySpec::Plain {};
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(EXAMPLES_DIR)
        .expect("examples directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            name.starts_with("task-") && name.ends_with(".toml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_task_parses_and_validates() {
    let files = example_files();
    assert!(
        files.len() >= 3,
        "expected at least 3 examples/task-*.toml, found {files:?}"
    );
    for path in &files {
        let spec = TaskSpec::load(path).unwrap_or_else(|e| panic!("{e}"));
        spec.validate().expect("loaded specs are valid");
    }
}

#[test]
fn examples_round_trip_through_canonical_form() {
    for path in example_files() {
        let spec = TaskSpec::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let canonical = spec.to_toml_string();
        let again = TaskSpec::from_toml_str(&canonical)
            .unwrap_or_else(|e| panic!("{}: canonical form does not parse: {e}", path.display()));
        assert_eq!(spec, again, "{}", path.display());
        assert_eq!(spec.spec_hash(), again.spec_hash(), "{}", path.display());
        assert_eq!(
            canonical,
            again.to_toml_string(),
            "canonical form is a fixed point"
        );
    }
}

#[test]
fn named_examples_have_the_promised_shape() {
    let load = |name: &str| {
        TaskSpec::load(&Path::new(EXAMPLES_DIR).join(name)).unwrap_or_else(|e| panic!("{e}"))
    };
    let demo = load("task-demo.toml");
    assert_eq!((demo.data.features, demo.data.classes), (20, 4));
    assert_eq!(demo.model, ModelSpec::Mlp { hidden: vec![32] });
    assert_eq!(demo.cohort.size, 8);
    assert!(matches!(
        demo.privacy,
        PrivacySpec::Secagg { group_size: 4, .. }
    ));
    assert_eq!(
        demo.chain.parsed_endpoint().expect("valid endpoint"),
        ChainEndpoint::Embedded { path: None }
    );

    let mnist = load("task-mnist-mlp.toml");
    assert_eq!(mnist.model, ModelSpec::Mlp { hidden: vec![128] });
    assert_eq!((mnist.data.features, mnist.data.classes), (784, 10));
    assert_eq!(
        mnist.parameter_count(),
        Some(784 * 128 + 128 + 128 * 10 + 10)
    );
    assert!(mnist.privacy.is_secagg());
    assert!(matches!(
        mnist.aggregation.rule,
        AggregationRule::TrimmedMean { .. }
    ));

    let logreg = load("task-plain-logreg.toml");
    assert_eq!(logreg.model, ModelSpec::Logreg {});
    assert_eq!(logreg.privacy, PrivacySpec::Plain {});
    assert_eq!(logreg.parameter_count(), Some(54 * 7 + 7));
}

#[test]
fn hash_ignores_layout_and_implicit_defaults() {
    let original = base();
    let reformatted = format!(
        "# a comment at the top\n\n{}",
        BASE.replace("rounds = 5", "rounds   =   5   # trailing comment")
            .replace("learning_rate = 0.1", "learning_rate = 1e-1")
            .replace("pool = 1000", "pool = \"1_000\"")
            // key order within a table
            .replace(
                "epochs = 1\nbatch_size = 8",
                "batch_size = 8\n\n# comment\nepochs = 1"
            )
    );
    let reformatted = TaskSpec::from_toml_str(&reformatted).expect("reformatted base");
    assert_eq!(original, reformatted);
    assert_eq!(original.spec_hash(), reformatted.spec_hash());

    // Defaults written out explicitly hash like defaults left implicit.
    let explicit = format!(
        "{BASE}\n[deadlines]\njoin = 60\ntrain = 600\n\n[scoring]\nreference = \"aggregate\"\n"
    );
    let explicit = TaskSpec::from_toml_str(&explicit).expect("explicit defaults");
    assert_eq!(original.spec_hash(), explicit.spec_hash());

    // Any value change changes the hash.
    let changed = TaskSpec::from_toml_str(&BASE.replace("rounds = 5", "rounds = 6")).expect("ok");
    assert_ne!(original.spec_hash(), changed.spec_hash());
    let mut tweaked = base();
    tweaked.training.learning_rate = 0.1000001;
    assert_ne!(original.spec_hash(), tweaked.spec_hash());
    assert_eq!(original.spec_hash_hex(), hex::encode(original.spec_hash()));
}

/// The canonical form and hash of a fixed spec. If this fails, every task's on-chain hash
/// changed (a field was added, renamed or reordered, or the TOML serializer formats differently):
/// make sure that is intended, then update the expectations.
#[test]
fn canonical_form_and_hash_are_pinned() {
    let spec = TaskSpec::from_toml_str(
        r#"
        name = "pinned"
        rounds = 3
        model = { kind = "logreg" }
        data = { features = 4, classes = 2 }
        cohort = { size = 4, min = 3 }
        training = { epochs = 1, batch_size = 2, learning_rate = 0.5, max_examples = 10 }
        update = { clip_norm = 1.0, fractional_bits = 8 }
        privacy = { mode = "plain" }
        aggregation = { rule = "median" }
        "#,
    )
    .expect("valid");
    let expected = r#"name = "pinned"
rounds = 3

[model]
kind = "logreg"

[data]
features = 4
classes = 2

[cohort]
size = 4
min = 3
selection = "uniform"

[deadlines]
join = 60
train = 600
advertise_keys = 30
share_keys = 30
masked_input = 120
consistency = 30
unmasking = 60

[training]
epochs = 1
batch_size = 2
learning_rate = 0.5
max_examples = 10

[training.optimizer]
kind = "sgd"
momentum = 0.0
weight_decay = 0.0

[update]
clip_norm = 1.0
fractional_bits = 8

[privacy]
mode = "plain"

[aggregation]
rule = "median"

[scoring]
reference = "aggregate"
validation_loss = false
reputation_decay = 0.9

[chain]
endpoint = "embedded"
chain_id = 31337
"#;
    assert_eq!(spec.to_toml_string(), expected);
    assert_eq!(spec.spec_hash_hex(), sha256_hex(expected));
    assert_eq!(spec.spec_hash_hex(), PINNED_HASH);
}

const PINNED_HASH: &str = "8224a2daf9b84c6dde83a8cad6c7db42ee66698dfcdd96fde134ce464798defe";

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[test]
fn token_amounts_accept_integers_and_strings_and_serialize_as_strings() {
    let huge = BASE
        .replace(
            "pool = 1000",
            "pool = \"5192296858534827628530496329220095\"",
        )
        .replace(
            "round_budget = 100",
            "round_budget = \"1_000_000_000_000_000_000_000\"",
        );
    let spec = TaskSpec::from_toml_str(&huge).expect("huge amounts");
    let rewards = spec.rewards.as_ref().expect("rewards");
    assert_eq!(rewards.pool, (1u128 << 112) - 1);
    assert_eq!(rewards.round_budget, 10u128.pow(21));
    assert_eq!(rewards.min_stake, 10);
    let canonical = spec.to_toml_string();
    assert!(canonical.contains("pool = \"5192296858534827628530496329220095\""));
    // u128::MAX parses, but the contract takes at most 2^112 - 1.
    let too_big = BASE.replace(
        "pool = 1000",
        "pool = \"340282366920938463463374607431768211455\"",
    );
    let error = TaskSpec::from_toml_str(&too_big).expect_err("above 2^112 - 1");
    assert!(error.to_string().contains("rewards.pool"), "{error}");
    assert!(canonical.contains("min_stake = \"10\""));

    for bad in [
        "-5",
        "\"-5\"",
        "\"1e18\"",
        "\"12abc\"",
        "1.5",
        "\"340282366920938463463374607431768211456\"",
    ] {
        let text = BASE.replace("min_stake = 10", &format!("min_stake = {bad}"));
        let err = TaskSpec::from_toml_str(&text).expect_err(bad);
        assert!(matches!(err, SpecError::Parse { .. }), "{bad}: {err}");
    }
}

#[test]
fn serialization_never_fails_even_for_unvalidated_extremes() {
    let mut spec = base();
    spec.rounds = u32::MAX;
    spec.chain.chain_id = u64::MAX;
    spec.update.clip_norm = f64::NAN;
    spec.training.learning_rate = f64::INFINITY;
    spec.name = "quote \" backslash \\ newline \n tab \t".to_owned();
    if let Some(rewards) = spec.rewards.as_mut() {
        rewards.pool = u128::MAX;
    }
    let text = spec.to_toml_string();
    let back: TaskSpec = toml::from_str(&text).expect("canonical text parses");
    assert_eq!(back.chain.chain_id, u64::MAX);
    assert_eq!(back.rounds, u32::MAX);
    assert!(back.update.clip_norm.is_nan());
    assert_eq!(back.name, spec.name);
    assert!(spec.validate().is_err());
}

#[test]
fn unknown_fields_are_rejected() {
    let cases = [
        ("rounds = 5", "rounds = 5\nround = 6", "round"),
        ("min = 12", "min = 12\nmn = 3", "mn"),
        (
            "trim_fraction = 0.2",
            "trim_fraction = 0.2\ntrim = 0.1",
            "trim",
        ),
        (
            "threshold = 3",
            "threshold = 3\nthreshhold = 3",
            "threshhold",
        ),
        ("kind = \"mlp\"", "kind = \"mlp\"\nlayers = 2", "layers"),
        (
            "chain_id = 31337",
            "chain_id = 31337\nchainid = 1",
            "chainid",
        ),
    ];
    for (from, to, key) in cases {
        assert!(BASE.contains(from), "{from}");
        let err = TaskSpec::from_toml_str(&BASE.replace(from, to)).expect_err(key);
        let SpecError::Parse { message } = &err else {
            panic!("{key}: expected a parse error, got {err}");
        };
        assert!(message.contains(key), "{key}: {message}");
        assert!(
            message.contains("line"),
            "parse errors carry the position: {message}"
        );
    }
    // A whole unknown section.
    let err = TaskSpec::from_toml_str(&format!("{BASE}\n[extras]\nx = 1\n")).expect_err("extras");
    assert!(err.to_string().contains("extras"), "{err}");
}

#[test]
fn stray_keys_next_to_parameterless_variants_are_rejected() {
    // serde ignores extra keys next to the tag of a unit variant; these must not be ignored.
    let plain = BASE.replace("mode = \"secagg\"", "mode = \"plain\"");
    let err = TaskSpec::from_toml_str(&plain).expect_err("plain with group_size");
    assert!(err.to_string().contains("group_size"), "{err}");

    let logreg = BASE.replace("kind = \"mlp\"", "kind = \"logreg\"");
    let err = TaskSpec::from_toml_str(&logreg).expect_err("logreg with hidden");
    assert!(err.to_string().contains("hidden"), "{err}");

    let median = BASE.replace("rule = \"trimmed-mean\"", "rule = \"median\"");
    let err = TaskSpec::from_toml_str(&median).expect_err("median with trim_fraction");
    assert!(
        err.to_string()
            .contains("aggregation.trim_fraction is not a parameter of rule \"median\""),
        "{err}"
    );
}

#[test]
fn aggregation_rules_parse_with_parameters_and_defaults() {
    let with = |table: &str| {
        let text = BASE.replace(
            "[aggregation]\nrule = \"trimmed-mean\"\ntrim_fraction = 0.2",
            &format!("[aggregation]\n{table}"),
        );
        let text = text.replace(
            "mode = \"secagg\"\ngroup_size = 4\nthreshold = 3",
            "mode = \"plain\"",
        );
        TaskSpec::from_toml_str(&text)
    };
    let rule = |table: &str| {
        with(table)
            .unwrap_or_else(|e| panic!("{table}: {e}"))
            .aggregation
    };

    assert_eq!(rule("rule = \"fedavg\"").rule, AggregationRule::FedAvg);
    assert_eq!(rule("rule = \"fltrust\"").rule, AggregationRule::FlTrust);
    assert_eq!(
        rule("rule = \"krum\"\nf = 2").rule,
        AggregationRule::Krum { f: 2 }
    );
    assert_eq!(
        rule("rule = \"multi-krum\"\nf = 2\nm = 5").rule,
        AggregationRule::MultiKrum { f: 2, m: 5 }
    );
    assert_eq!(
        rule("rule = \"bulyan\"\nf = 2").rule,
        AggregationRule::Bulyan { f: 2 }
    );
    assert_eq!(
        rule("rule = \"geometric-median\"").rule,
        AggregationRule::GeometricMedian {
            max_iters: 100,
            tolerance: 1e-6,
            smoothing: 1e-6
        }
    );
    assert_eq!(
        rule("rule = \"centered-clipping\"\nradius = 0.5").rule,
        AggregationRule::CenteredClipping {
            radius: 0.5,
            iterations: 1
        }
    );
    assert_eq!(
        rule("rule = \"norm-bounding\"\nbound = 2.5").rule,
        AggregationRule::NormBounding { bound: 2.5 }
    );
    let bucketed = rule("rule = \"median\"\nbucketing = { size = 2 }");
    assert_eq!(bucketed.bucketing, Some(Bucketing { size: 2 }));
    assert_eq!(bucketed.rule.to_string(), "median");

    for (table, needle) in [
        ("rule = \"krum\"", "rule \"krum\" needs aggregation.f"),
        ("rule = \"multi-krum\"\nf = 1", "needs aggregation.m"),
        (
            "rule = \"krum\"\nf = 1\nm = 2",
            "aggregation.m is not a parameter of rule \"krum\"",
        ),
        ("rule = \"mean\"", "unknown variant `mean`"),
        (
            "rule = \"median\"\nbucketing = { size = 2, shuffle = true }",
            "shuffle",
        ),
    ] {
        let err = with(table).expect_err(table);
        assert!(err.to_string().contains(needle), "{table}: {err}");
    }
}

#[test]
fn optimizer_defaults() {
    let text = BASE.replace(
        "max_examples = 100",
        "max_examples = 100\noptimizer = { kind = \"adam\" }",
    );
    let spec = TaskSpec::from_toml_str(&text).expect("adam");
    assert_eq!(
        spec.training.optimizer,
        OptimizerSpec::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0
        }
    );
    assert_eq!(
        base().training.optimizer,
        OptimizerSpec::Sgd {
            momentum: 0.0,
            weight_decay: 0.0
        }
    );
}

#[test]
fn derived_getters() {
    let spec = base();
    assert_eq!(spec.summands(), 4);
    assert_eq!(spec.min_aggregator_inputs(), 3); // floor(12 / 4)
    assert_eq!(spec.max_aggregator_inputs(), 5); // floor(20 / 4)
    assert_eq!(spec.aggregator_inputs(15), 3);
    assert_eq!(
        spec.parameter_count(),
        Some(10 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3)
    );
    assert_eq!(spec.fixed_point_scale(), 65536.0);
    assert_eq!(
        spec.max_abs_quantized_sum(),
        4.0 * (100.0 * 1.0 * 65536.0 + 1.0)
    );
    assert_eq!(spec.deadline(Phase::Train), Duration::from_secs(600));
    assert_eq!(spec.deadline(Phase::Join), Duration::from_secs(60));
    assert_eq!(spec.scoring.reference, Reference::Aggregate);
    assert_eq!(
        spec.chain.contract_address().expect("valid").map(|a| a[0]),
        Some(0xe7)
    );
    assert_eq!(
        spec.coordinator
            .as_ref()
            .expect("coordinator")
            .host_port()
            .expect("valid"),
        ("127.0.0.1".to_owned(), 4433)
    );

    let mut plain_spec = base();
    plain(&mut plain_spec);
    assert_eq!(plain_spec.summands(), 20);
    assert_eq!(plain_spec.min_aggregator_inputs(), 12);
    assert_eq!(plain_spec.max_aggregator_inputs(), 20);

    let mut torch = base();
    torch.model = ModelSpec::Torchscript {
        path: "model.pt".into(),
        sha256: None,
    };
    assert_eq!(torch.parameter_count(), None);
    torch.validate().expect("torchscript spec is valid");
}

#[test]
fn invalid_message_names_field_and_values() {
    let mut spec = base();
    spec.cohort.min = 25;
    let err = spec.validate().expect_err("min above size");
    assert_eq!(
        err.to_string(),
        "invalid task spec: cohort.min: 25 is above cohort.size 20"
    );
    assert_eq!(err.field(), Some("cohort.min"));
}

#[test]
fn quantization_overflow_boundary() {
    // Plain mode with a one-client cohort: n = 1, W = 1, f = 24, so the bound is B * 2^24 + 1.
    let mut spec = base();
    plain(&mut spec);
    spec.cohort.size = 1;
    spec.cohort.min = 1;
    spec.aggregation.rule = AggregationRule::FedAvg;
    spec.training.max_examples = 1;
    spec.update.fractional_bits = 24;
    // (2^31 - 2) / 2^24: B * 2^24 + 1 = 2^31 - 1 < 2^31.
    spec.update.clip_norm = (QUANTIZED_SUM_LIMIT - 2) as f64 / f64::from(1u32 << 24);
    spec.validate().expect("just below the limit");
    // B = 128: 2^31 + 1 is not below 2^31.
    spec.update.clip_norm = 128.0;
    let err = spec.validate().expect_err("at the limit");
    assert_eq!(err.field(), Some("update.fractional_bits"));
    let text = err.to_string();
    assert!(text.contains("2^31 = 2147483648"), "{text}");
    assert!(text.contains("fractional_bits = 23 would fit"), "{text}");
    // B = (2^31 - 1) / 2^24: B * 2^24 + 1 is exactly 2^31, not below it.
    spec.update.clip_norm = (QUANTIZED_SUM_LIMIT - 1) as f64 / f64::from(1u32 << 24);
    assert_eq!(
        spec.validate().expect_err("+1 reaches 2^31").field(),
        Some("update.fractional_bits")
    );

    // Secure aggregation: the group size is the number of summands, not the cohort.
    let mut spec = base(); // n = 4, W = 100, B = 1
    spec.update.fractional_bits = 22; // 4 * (100 * 2^22 + 1) = 1_677_721_604 < 2^31
    spec.validate().expect("fits in groups of 4");
    spec.update.fractional_bits = 23; // 4 * (100 * 2^23 + 1) > 2^31
    let err = spec.validate().expect_err("overflows");
    assert_eq!(err.field(), Some("update.fractional_bits"));
    assert!(
        err.to_string().contains("fractional_bits = 22 would fit"),
        "{err}"
    );
    // The same numbers in plain mode sum 20 updates and overflow sooner.
    let mut spec = base();
    plain(&mut spec);
    spec.update.fractional_bits = 21; // 20 * (100 * 2^21 + 1) > 2^31
    assert_eq!(
        spec.validate().expect_err("plain").field(),
        Some("update.fractional_bits")
    );

    // No fractional_bits fits at all.
    let mut spec = base();
    spec.update.clip_norm = 1e7;
    let err = spec.validate().expect_err("nothing fits");
    assert!(
        err.to_string().contains("no fractional_bits >= 1 fits"),
        "{err}"
    );

    // The weight coordinate: n * W < 2^31.
    let mut spec = base();
    spec.update.clip_norm = 1e-9;
    spec.training.max_examples = (1 << 29) - 1; // 4 * (2^29 - 1) < 2^31
    spec.validate().expect("weights fit");
    spec.training.max_examples = 1 << 29; // 4 * 2^29 = 2^31
    assert_eq!(
        spec.validate().expect_err("weights").field(),
        Some("training.max_examples")
    );
}

type Mutate = fn(&mut TaskSpec);
type Mutation = (&'static str, &'static str, Mutate);

/// Each mutation of the valid base spec must be rejected with exactly this field.
const REJECTED: &[Mutation] = &[
    ("empty name", "name", |s| s.name = "  ".into()),
    ("control character in name", "name", |s| {
        s.name = "a\nb".into()
    }),
    ("long name", "name", |s| s.name = "x".repeat(129)),
    ("rounds = 0", "rounds", |s| s.rounds = 0),
    ("mlp without layers", "model.hidden", |s| {
        s.model = ModelSpec::Mlp { hidden: vec![] }
    }),
    ("mlp layer of 0", "model.hidden", |s| {
        s.model = ModelSpec::Mlp { hidden: vec![8, 0] }
    }),
    ("empty torchscript path", "model.path", |s| {
        s.model = ModelSpec::Torchscript {
            path: " ".into(),
            sha256: None,
        }
    }),
    ("bad torchscript digest", "model.sha256", |s| {
        s.model = ModelSpec::Torchscript {
            path: "m.pt".into(),
            sha256: Some("abc".into()),
        }
    }),
    ("parameter count overflow", "model", |s| {
        s.data.features = u32::MAX;
        s.model = ModelSpec::Mlp {
            hidden: vec![u32::MAX, u32::MAX],
        };
    }),
    ("features = 0", "data.features", |s| s.data.features = 0),
    ("classes = 1", "data.classes", |s| s.data.classes = 1),
    ("feature_scale = 0", "data.feature_scale", |s| {
        s.data.feature_scale = Some(0.0)
    }),
    ("feature_scale = NaN", "data.feature_scale", |s| {
        s.data.feature_scale = Some(f64::NAN)
    }),
    ("cohort.size = 0", "cohort.size", |s| {
        s.cohort.size = 0;
        s.cohort.min = 0;
    }),
    ("cohort.min = 0", "cohort.min", |s| s.cohort.min = 0),
    ("cohort.min > size", "cohort.min", |s| s.cohort.min = 21),
    ("join = 0", "deadlines.join", |s| s.deadlines.join = 0),
    ("train = 0", "deadlines.train", |s| s.deadlines.train = 0),
    ("advertise_keys = 0", "deadlines.advertise_keys", |s| {
        s.deadlines.advertise_keys = 0
    }),
    ("share_keys = 0", "deadlines.share_keys", |s| {
        s.deadlines.share_keys = 0
    }),
    ("masked_input = 0", "deadlines.masked_input", |s| {
        s.deadlines.masked_input = 0
    }),
    ("consistency = 0", "deadlines.consistency", |s| {
        s.deadlines.consistency = 0
    }),
    ("unmasking = 0", "deadlines.unmasking", |s| {
        s.deadlines.unmasking = 0
    }),
    ("train deadline above 30 days", "deadlines.train", |s| {
        s.deadlines.train = 2_592_001
    }),
    ("epochs = 0", "training.epochs", |s| s.training.epochs = 0),
    ("batch_size = 0", "training.batch_size", |s| {
        s.training.batch_size = 0
    }),
    ("learning_rate = 0", "training.learning_rate", |s| {
        s.training.learning_rate = 0.0
    }),
    ("learning_rate < 0", "training.learning_rate", |s| {
        s.training.learning_rate = -0.1
    }),
    ("learning_rate NaN", "training.learning_rate", |s| {
        s.training.learning_rate = f64::NAN
    }),
    ("learning_rate inf", "training.learning_rate", |s| {
        s.training.learning_rate = f64::INFINITY
    }),
    ("max_examples = 0", "training.max_examples", |s| {
        s.training.max_examples = 0
    }),
    ("momentum = 1", "training.optimizer.momentum", |s| {
        s.training.optimizer = OptimizerSpec::Sgd {
            momentum: 1.0,
            weight_decay: 0.0,
        }
    }),
    ("momentum < 0", "training.optimizer.momentum", |s| {
        s.training.optimizer = OptimizerSpec::Sgd {
            momentum: -0.1,
            weight_decay: 0.0,
        }
    }),
    ("momentum NaN", "training.optimizer.momentum", |s| {
        s.training.optimizer = OptimizerSpec::Sgd {
            momentum: f64::NAN,
            weight_decay: 0.0,
        }
    }),
    (
        "sgd weight_decay < 0",
        "training.optimizer.weight_decay",
        |s| {
            s.training.optimizer = OptimizerSpec::Sgd {
                momentum: 0.0,
                weight_decay: -1e-4,
            }
        },
    ),
    ("beta1 = 1", "training.optimizer.beta1", |s| {
        s.training.optimizer = adam(1.0, 0.999, 1e-8, 0.0)
    }),
    ("beta2 < 0", "training.optimizer.beta2", |s| {
        s.training.optimizer = adam(0.9, -0.1, 1e-8, 0.0)
    }),
    ("epsilon = 0", "training.optimizer.epsilon", |s| {
        s.training.optimizer = adam(0.9, 0.999, 0.0, 0.0)
    }),
    (
        "adam weight_decay < 0",
        "training.optimizer.weight_decay",
        |s| s.training.optimizer = adam(0.9, 0.999, 1e-8, -1.0),
    ),
    ("clip_norm = 0", "update.clip_norm", |s| {
        s.update.clip_norm = 0.0
    }),
    ("clip_norm < 0", "update.clip_norm", |s| {
        s.update.clip_norm = -1.0
    }),
    ("clip_norm NaN", "update.clip_norm", |s| {
        s.update.clip_norm = f64::NAN
    }),
    ("clip_norm inf", "update.clip_norm", |s| {
        s.update.clip_norm = f64::INFINITY
    }),
    ("fractional_bits = 0", "update.fractional_bits", |s| {
        s.update.fractional_bits = 0
    }),
    ("fractional_bits = 25", "update.fractional_bits", |s| {
        s.update.fractional_bits = 25
    }),
    ("sum overflow", "update.fractional_bits", |s| {
        s.update.fractional_bits = 24
    }),
    ("weight overflow", "training.max_examples", |s| {
        s.update.clip_norm = 1e-9;
        s.training.max_examples = 1 << 29;
    }),
    ("group_size = 2", "privacy.group_size", |s| secagg(s, 2, 1)),
    ("group_size > cohort.size", "privacy.group_size", |s| {
        secagg(s, 21, 12)
    }),
    ("group_size > cohort.min", "privacy.group_size", |s| {
        secagg(s, 13, 12)
    }),
    ("threshold = 0", "privacy.threshold", |s| secagg(s, 4, 0)),
    ("threshold <= k/2", "privacy.threshold", |s| secagg(s, 4, 1)),
    // The split view of a coordinator with one colluder unmasks here.
    (
        "threshold at the semi-honest bound",
        "privacy.threshold",
        |s| secagg(s, 4, 2),
    ),
    (
        "threshold <= (k + c)/2 (even k)",
        "privacy.threshold",
        |s| secagg(s, 5, 2),
    ),
    (
        "threshold <= (k + c)/2 with c = 2",
        "privacy.threshold",
        |s| secagg_against(s, 5, 3, 2),
    ),
    (
        "corrupt_per_group fills a group of 3",
        "privacy.threshold",
        |s| secagg_against(s, 3, 2, 2),
    ),
    ("threshold > k", "privacy.threshold", |s| secagg(s, 4, 4)),
    ("trim_fraction = 0.5", "aggregation.trim_fraction", |s| {
        trimmed(s, 0.5)
    }),
    ("trim_fraction < 0", "aggregation.trim_fraction", |s| {
        trimmed(s, -0.1)
    }),
    ("trim_fraction NaN", "aggregation.trim_fraction", |s| {
        trimmed(s, f64::NAN)
    }),
    // Secagg: 12 / 4 = 3 group means at least; krum f = 1 needs more than 4.
    ("krum with too few groups", "aggregation.f", |s| {
        s.aggregation.rule = AggregationRule::Krum { f: 1 }
    }),
    // Plain: 12 updates at least; f = 5 needs more than 12.
    ("krum with too few clients", "aggregation.f", |s| {
        plain(s);
        s.aggregation.rule = AggregationRule::Krum { f: 5 };
    }),
    ("multi-krum f too large", "aggregation.f", |s| {
        plain(s);
        s.aggregation.rule = AggregationRule::MultiKrum { f: 5, m: 1 };
    }),
    ("multi-krum m = 0", "aggregation.m", |s| {
        plain(s);
        s.aggregation.rule = AggregationRule::MultiKrum { f: 2, m: 0 };
    }),
    ("multi-krum m > n - f", "aggregation.m", |s| {
        plain(s);
        s.aggregation.rule = AggregationRule::MultiKrum { f: 2, m: 11 };
    }),
    // Plain: 12 updates; bulyan f = 3 needs 15.
    ("bulyan n < 4f + 3", "aggregation.f", |s| {
        plain(s);
        s.aggregation.rule = AggregationRule::Bulyan { f: 3 };
    }),
    (
        "geometric median max_iters = 0",
        "aggregation.max_iters",
        |s| geomed(s, 0, 1e-6, 0.0),
    ),
    (
        "geometric median tolerance = 0",
        "aggregation.tolerance",
        |s| geomed(s, 10, 0.0, 0.0),
    ),
    (
        "geometric median smoothing < 0",
        "aggregation.smoothing",
        |s| geomed(s, 10, 1e-6, -1.0),
    ),
    (
        // Weiszfeld's weights divide by max(distance, smoothing).
        "geometric median without smoothing",
        "aggregation.smoothing",
        |s| geomed(s, 10, 1e-6, 0.0),
    ),
    ("centered clipping radius = 0", "aggregation.radius", |s| {
        s.aggregation.rule = AggregationRule::CenteredClipping {
            radius: 0.0,
            iterations: 1,
        }
    }),
    (
        "centered clipping iterations = 0",
        "aggregation.iterations",
        |s| {
            s.aggregation.rule = AggregationRule::CenteredClipping {
                radius: 1.0,
                iterations: 0,
            }
        },
    ),
    ("norm bound = 0", "aggregation.bound", |s| {
        s.aggregation.rule = AggregationRule::NormBounding { bound: 0.0 }
    }),
    ("bucket size = 0", "aggregation.bucketing.size", |s| {
        s.aggregation.bucketing = Some(Bucketing { size: 0 })
    }),
    ("bucket size > n", "aggregation.bucketing.size", |s| {
        s.aggregation.bucketing = Some(Bucketing { size: 4 }) // only 3 group means
    }),
    // Plain: 12 updates, krum f = 2 fits (12 > 6), but 6 buckets of 2 do not.
    ("krum after bucketing", "aggregation.f", |s| {
        plain(s);
        s.aggregation.rule = AggregationRule::Krum { f: 2 };
        s.aggregation.bucketing = Some(Bucketing { size: 2 });
    }),
    ("reputation_decay = 0", "scoring.reputation_decay", |s| {
        s.scoring.reputation_decay = 0.0
    }),
    ("reputation_decay = 1", "scoring.reputation_decay", |s| {
        s.scoring.reputation_decay = 1.0
    }),
    ("reputation_decay NaN", "scoring.reputation_decay", |s| {
        s.scoring.reputation_decay = f64::NAN
    }),
    ("pool = 0", "rewards.pool", |s| {
        let r = s.rewards.as_mut().expect("rewards");
        r.pool = 0;
        r.round_budget = 0;
    }),
    ("round_budget = 0", "rewards.round_budget", |s| {
        s.rewards.as_mut().expect("rewards").round_budget = 0
    }),
    ("round_budget > pool", "rewards.round_budget", |s| {
        s.rewards.as_mut().expect("rewards").round_budget = 1001
    }),
    ("min_stake = 0", "rewards.min_stake", |s| {
        s.rewards.as_mut().expect("rewards").min_stake = 0
    }),
    ("token not hex", "rewards.token", |s| {
        s.rewards.as_mut().expect("rewards").token =
            Some("0x5FbDB2315678afecb367f032d93F642f64180aZZ".into())
    }),
    ("token missing on JSON-RPC", "rewards.token", |s| {
        s.rewards.as_mut().expect("rewards").token = None
    }),
    ("slashing without rewards", "slashing", |s| s.rewards = None),
    ("slashing window = 0", "slashing.window", |s| {
        s.slashing = Some(slash(0, 0, 0.5))
    }),
    ("slashing min_flags = 0", "slashing.min_flags", |s| {
        s.slashing = Some(slash(3, 0, 0.5))
    }),
    ("slashing min_flags > window", "slashing.min_flags", |s| {
        s.slashing = Some(slash(3, 4, 0.5))
    }),
    ("slashing fraction = 0", "slashing.fraction", |s| {
        s.slashing = Some(slash(3, 2, 0.0))
    }),
    ("slashing fraction > 1", "slashing.fraction", |s| {
        s.slashing = Some(slash(3, 2, 1.5))
    }),
    ("slashing fraction NaN", "slashing.fraction", |s| {
        s.slashing = Some(slash(3, 2, f64::NAN))
    }),
    ("bad endpoint", "chain.endpoint", |s| {
        s.chain.endpoint = "ftp://x".into()
    }),
    ("embedded without path", "chain.endpoint", |s| {
        s.chain.endpoint = "embedded:".into()
    }),
    ("contract too short", "chain.contract", |s| {
        s.chain.contract = Some("0xe7f1725E7734CE288F8367e1Bb143E90bb3F05".into())
    }),
    ("contract without 0x", "chain.contract", |s| {
        s.chain.contract = Some("e7f1725E7734CE288F8367e1Bb143E90bb3F0512".into())
    }),
    ("contract missing on JSON-RPC", "chain.contract", |s| {
        s.chain.contract = None
    }),
    ("chain_id = 0", "chain.chain_id", |s| s.chain.chain_id = 0),
    ("coordinator without port", "coordinator.address", |s| {
        coordinator(s).address = "localhost".into()
    }),
    ("coordinator port 0", "coordinator.address", |s| {
        coordinator(s).address = "localhost:0".into()
    }),
    ("coordinator URL", "coordinator.address", |s| {
        coordinator(s).address = "quic://localhost:4433".into()
    }),
    (
        "fingerprint 63 digits",
        "coordinator.tls_fingerprint",
        |s| coordinator(s).tls_fingerprint = "0".repeat(63),
    ),
    ("fingerprint not hex", "coordinator.tls_fingerprint", |s| {
        coordinator(s).tls_fingerprint = "g".repeat(64)
    }),
    (
        "fingerprint with colons",
        "coordinator.tls_fingerprint",
        |s| coordinator(s).tls_fingerprint = vec!["00"; 32].join(":"),
    ),
];

/// Mutations at the edge of each range that must still be accepted.
const ACCEPTED: &[(&str, Mutate)] = &[
    ("cohort.min = size", |s| s.cohort.min = 20),
    ("group_size = cohort.min", |s| secagg(s, 12, 7)),
    ("group_size = 3, t = 2", |s| secagg(s, 3, 2)),
    ("threshold = k", |s| secagg(s, 4, 3)),
    ("even k: t = (k + c)/2 + 1", |s| secagg(s, 5, 3)),
    ("corrupt_per_group = 0: the semi-honest bound", |s| {
        secagg_against(s, 4, 2, 0)
    }),
    ("two colluders in a group of 4", |s| {
        secagg_against(s, 4, 3, 2)
    }),
    ("momentum = 0", |s| {
        s.training.optimizer = OptimizerSpec::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }),
    ("adam betas = 0", |s| {
        s.training.optimizer = adam(0.0, 0.0, 1e-8, 0.0)
    }),
    ("trim_fraction = 0", |s| trimmed(s, 0.0)),
    ("trim_fraction = 0.49", |s| trimmed(s, 0.49)),
    ("fractional_bits = 1", |s| s.update.fractional_bits = 1),
    ("deadline = 30 days", |s| s.deadlines.train = 2_592_000),
    ("krum n = 2f + 3", |s| {
        plain(s);
        s.aggregation.rule = AggregationRule::Krum { f: 4 }; // 12 > 10
    }),
    ("multi-krum m = n - f", |s| {
        plain(s);
        s.aggregation.rule = AggregationRule::MultiKrum { f: 2, m: 10 };
    }),
    ("bulyan n = 4f + 3", |s| {
        plain(s);
        s.cohort.min = 11;
        s.aggregation.rule = AggregationRule::Bulyan { f: 2 };
    }),
    ("bucket size = n", |s| {
        s.aggregation.bucketing = Some(Bucketing { size: 3 })
    }),
    ("geometric median with the least smoothing", |s| {
        geomed(s, 1, 1e-9, 1e-30)
    }),
    ("round_budget = pool", |s| {
        s.rewards.as_mut().expect("rewards").round_budget = 1000
    }),
    ("slashing min_flags = window, fraction = 1", |s| {
        s.slashing = Some(slash(4, 4, 1.0))
    }),
    ("no slashing, no rewards", |s| {
        s.slashing = None;
        s.rewards = None;
    }),
    ("no coordinator", |s| s.coordinator = None),
    ("embedded chain without contract or token", |s| {
        s.chain.endpoint = "embedded:./chain.db".into();
        s.chain.contract = None;
        s.rewards.as_mut().expect("rewards").token = None;
    }),
    ("https endpoint", |s| {
        s.chain.endpoint = "https://rpc.example.org/v1".into()
    }),
    ("IPv6 coordinator", |s| {
        coordinator(s).address = "[::1]:4433".into()
    }),
    ("DNS coordinator", |s| {
        coordinator(s).address = "coord.example.org:443".into()
    }),
    ("upper-case fingerprint", |s| {
        coordinator(s).tls_fingerprint = "AB".repeat(32)
    }),
];

fn adam(beta1: f64, beta2: f64, epsilon: f64, weight_decay: f64) -> OptimizerSpec {
    OptimizerSpec::Adam {
        beta1,
        beta2,
        epsilon,
        weight_decay,
    }
}

/// Secure aggregation against the default one corrupt member per group.
fn secagg(spec: &mut TaskSpec, group_size: u32, threshold: u32) {
    secagg_against(spec, group_size, threshold, 1);
}

fn secagg_against(spec: &mut TaskSpec, group_size: u32, threshold: u32, corrupt_per_group: u32) {
    spec.privacy = PrivacySpec::Secagg {
        group_size,
        threshold,
        corrupt_per_group,
    };
    // Keep the aggregation rule valid for any group count.
    spec.aggregation.rule = AggregationRule::FedAvg;
}

fn trimmed(spec: &mut TaskSpec, trim_fraction: f64) {
    spec.aggregation.rule = AggregationRule::TrimmedMean { trim_fraction };
}

fn geomed(spec: &mut TaskSpec, max_iters: u32, tolerance: f64, smoothing: f64) {
    spec.aggregation.rule = AggregationRule::GeometricMedian {
        max_iters,
        tolerance,
        smoothing,
    };
}

fn slash(window: u32, min_flags: u32, fraction: f64) -> SlashingSpec {
    SlashingSpec {
        window,
        min_flags,
        fraction,
    }
}

fn coordinator(spec: &mut TaskSpec) -> &mut fedstake_protocol::spec::CoordinatorSpec {
    spec.coordinator.as_mut().expect("base has a coordinator")
}

#[test]
fn unsafe_settings_are_rejected_naming_the_field() {
    for (what, field, mutate) in REJECTED {
        let mut spec = base();
        mutate(&mut spec);
        match spec.validate() {
            Ok(()) => panic!("{what}: accepted"),
            Err(err) => {
                assert_eq!(err.field(), Some(*field), "{what}: {err}");
                assert!(
                    err.to_string()
                        .starts_with(&format!("invalid task spec: {field}: ")),
                    "{what}: {err}"
                );
            }
        }
        // The same spec written out and parsed back is refused the same way (NaN and
        // infinities survive the TOML round trip too).
        let err = TaskSpec::from_toml_str(&spec.to_toml_string()).expect_err(what);
        assert_eq!(err.field(), Some(*field), "{what} (from TOML): {err}");
    }
}

#[test]
fn edge_settings_are_accepted() {
    for (what, mutate) in ACCEPTED {
        let mut spec = base();
        mutate(&mut spec);
        if let Err(err) = spec.validate() {
            panic!("{what}: {err}");
        }
    }
}

#[test]
fn wrong_types_and_missing_keys_are_parse_errors_with_position() {
    for (from, to, needle) in [
        ("rounds = 5", "rounds = \"5\"", "rounds"),
        ("rounds = 5", "rounds = -5", "rounds"),
        ("epochs = 1", "epochs = 1.5", "epochs"),
        ("rounds = 5\n", "", "rounds"),
        ("mode = \"secagg\"", "mode = \"secure\"", "secure"),
        ("kind = \"mlp\"", "kind = \"cnn\"", "cnn"),
        (
            "[coordinator]\naddress = \"127.0.0.1:4433\"\n",
            "[coordinator]\n",
            "address",
        ),
        ("name = \"base\"", "name = \"base", "line 2"),
    ] {
        assert!(BASE.contains(from), "{from}");
        let err = TaskSpec::from_toml_str(&BASE.replacen(from, to, 1)).expect_err(to);
        let SpecError::Parse { message } = &err else {
            panic!("{to}: expected a parse error, got {err}");
        };
        assert!(message.contains(needle), "{to}: {message}");
        assert!(message.contains("line"), "{to}: {message}");
    }
}

#[test]
fn load_names_the_file() {
    let missing = Path::new(EXAMPLES_DIR).join("no-such-task.toml");
    let err = TaskSpec::load(&missing).expect_err("missing");
    assert!(matches!(err, SpecError::Read { .. }), "{err}");
    assert!(err.to_string().contains("no-such-task.toml"), "{err}");

    let dir = std::env::temp_dir().join(format!("fedstake-spec-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let invalid = dir.join("task-bad.toml");
    std::fs::write(&invalid, BASE.replace("min = 12", "min = 25")).expect("write");
    let err = TaskSpec::load(&invalid).expect_err("invalid");
    assert_eq!(err.field(), Some("cohort.min"));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: invalid task spec: cohort.min: 25 is above cohort.size 20",
            invalid.display()
        )
    );
    assert!(matches!(err.innermost(), SpecError::Invalid { .. }));

    let unparsable = dir.join("task-unparsable.toml");
    std::fs::write(&unparsable, "rounds = = 1").expect("write");
    let err = TaskSpec::load(&unparsable).expect_err("unparsable");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot parse", unparsable.display())),
        "{err}"
    );

    let huge = dir.join("task-huge.toml");
    std::fs::write(&huge, format!("{BASE}\n{}", "#".repeat(1 << 20))).expect("write");
    let err = TaskSpec::load(&huge).expect_err("huge");
    assert!(
        matches!(err.innermost(), SpecError::TooLarge { .. }),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn documented_example_matches_the_example_file() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/task-spec.md"))
        .expect("docs/task-spec.md");
    let annotated = doc
        .split("## Annotated example")
        .nth(1)
        .and_then(|tail| tail.split("```toml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("annotated toml block");
    let documented = TaskSpec::from_toml_str(annotated).unwrap_or_else(|e| panic!("{e}"));
    let file = TaskSpec::load(&Path::new(EXAMPLES_DIR).join("task-mnist-mlp.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(documented, file);
    assert_eq!(documented.spec_hash(), file.spec_hash());
}
