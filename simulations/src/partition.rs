//! Splitting one dataset among simulated clients: IID, label-skewed
//! (Dirichlet or label shards) or quantity-skewed.

use std::fmt;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

use crate::SimError;

/// How examples are dealt to clients. Experiment files write it as
/// `{ kind = "iid" }`, `{ kind = "dirichlet", alpha = 0.5 }`,
/// `{ kind = "label-shards", classes_per_client = 2 }` or
/// `{ kind = "quantity-skew", alpha = 0.5 }`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Partition {
    /// Shuffled and dealt evenly.
    Iid,
    /// Per class, client shares drawn from Dirichlet(`alpha`) (Hsu et al. 2019):
    /// small `alpha` gives each client few dominant classes.
    Dirichlet {
        /// Concentration, > 0.
        alpha: f64,
    },
    /// Examples sorted by label and cut into `clients * classes_per_client`
    /// equal shards; each client gets `classes_per_client` shards, of distinct
    /// labels where possible (McMahan et al. 2017).
    LabelShards {
        /// Shards (so, mostly, classes) per client, >= 1.
        classes_per_client: usize,
    },
    /// Client dataset sizes in Dirichlet(`alpha`) proportions, examples IID
    /// within each client (quantity skew, Li et al. 2022).
    QuantitySkew {
        /// Concentration, > 0: small `alpha` gives a few large clients.
        alpha: f64,
    },
}

impl fmt::Display for Partition {
    /// The scheme as reports name it: `iid`, `dirichlet(0.5)`,
    /// `label-shards(2)`, `quantity-skew(0.5)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Iid => write!(f, "iid"),
            Partition::Dirichlet { alpha } => write!(f, "dirichlet({alpha})"),
            Partition::LabelShards { classes_per_client } => {
                write!(f, "label-shards({classes_per_client})")
            }
            Partition::QuantitySkew { alpha } => write!(f, "quantity-skew({alpha})"),
        }
    }
}

/// Draws of the Dirichlet shares before giving up on giving every client
/// `min_examples`.
const MAX_DIRICHLET_DRAWS: usize = 1000;

/// Indices of the examples each of `clients` clients gets; every client gets at
/// least `min_examples`. Deterministic for `seed`.
///
/// Labels must be below `classes`.
pub fn partition(
    labels: &[u32],
    classes: usize,
    clients: usize,
    scheme: Partition,
    min_examples: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, SimError> {
    if clients == 0 {
        return Err(SimError::Config(
            "partition: clients must be at least 1".into(),
        ));
    }
    if labels.len() < clients * min_examples {
        return Err(SimError::Config(format!(
            "partition: {} examples cannot give {clients} clients {min_examples} each",
            labels.len()
        )));
    }
    if let Some((example, label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &label)| label as usize >= classes)
    {
        return Err(SimError::Config(format!(
            "partition: example {example} has label {label}, but there are {classes} classes"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shards = match scheme {
        Partition::Iid => {
            let mut order: Vec<usize> = (0..labels.len()).collect();
            order.shuffle(&mut rng);
            let mut shards = vec![Vec::new(); clients];
            for (i, example) in order.into_iter().enumerate() {
                shards[i % clients].push(example);
            }
            shards
        }
        Partition::Dirichlet { alpha } => {
            return dirichlet_label_skew(labels, classes, clients, alpha, min_examples, &mut rng);
        }
        Partition::LabelShards { classes_per_client } => {
            label_shards(labels, classes, clients, classes_per_client, &mut rng)?
        }
        Partition::QuantitySkew { alpha } => {
            quantity_skew(labels.len(), clients, alpha, min_examples, &mut rng)?
        }
    };
    match shards.iter().position(|s| s.len() < min_examples) {
        Some(client) => Err(SimError::Config(format!(
            "partition: {scheme:?} gives client {client} only {} examples, fewer than \
             {min_examples}; use fewer clients or shards",
            shards[client].len()
        ))),
        None => Ok(shards),
    }
}

/// The Gamma(`alpha`, 1) distribution whose normalized draws are
/// Dirichlet(`alpha`) shares.
fn dirichlet_shares(alpha: f64) -> Result<Gamma<f64>, SimError> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(SimError::Config(format!(
            "partition: Dirichlet alpha must be finite and > 0, got {alpha}"
        )));
    }
    Gamma::new(alpha, 1.0)
        .map_err(|e| SimError::Config(format!("partition: Dirichlet alpha {alpha}: {e}")))
}

/// Appends to each shard its share of `members` in proportion to `draws`
/// (one per shard), by rounding cumulative shares so the pieces add up to
/// all of `members`.
fn split_proportionally(members: &[usize], draws: &[f64], shards: &mut [Vec<usize>]) {
    let total: f64 = draws.iter().sum();
    let mut start = 0;
    let mut cumulative = 0.0;
    for (shard, draw) in shards.iter_mut().zip(draws) {
        cumulative += draw / total;
        let end = ((cumulative * members.len() as f64).round() as usize).min(members.len());
        shard.extend_from_slice(&members[start..end.max(start)]);
        start = end.max(start);
    }
    if let Some(last) = shards.last_mut() {
        last.extend_from_slice(&members[start..]);
    }
}

/// Per class, Dirichlet(`alpha`) shares of its examples; redrawn until every
/// client has `min_examples`.
fn dirichlet_label_skew(
    labels: &[u32],
    classes: usize,
    clients: usize,
    alpha: f64,
    min_examples: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<usize>>, SimError> {
    let gamma = dirichlet_shares(alpha)?;
    let mut by_class = vec![Vec::new(); classes];
    for (i, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(i);
    }
    for _ in 0..MAX_DIRICHLET_DRAWS {
        let mut shards = vec![Vec::new(); clients];
        for members in &by_class {
            let mut members = members.clone();
            members.shuffle(rng);
            let draws: Vec<f64> = (0..clients).map(|_| gamma.sample(rng)).collect();
            split_proportionally(&members, &draws, &mut shards);
        }
        if shards.iter().all(|s| s.len() >= min_examples) {
            return Ok(shards);
        }
    }
    Err(SimError::Config(format!(
        "partition: Dirichlet({alpha}) left some client with fewer than {min_examples} \
         examples in {MAX_DIRICHLET_DRAWS} draws; raise alpha or the example count"
    )))
}

/// McMahan et al.'s pathological non-IID split: sort by label, cut into
/// `clients * classes_per_client` shards of (nearly) equal size, give each
/// client `classes_per_client` shards.
///
/// Shards are dealt client by client; each pick prefers a label the client
/// does not hold yet and, among those, the label with the most shards left
/// (ties in shuffled order), so labels run out evenly and the last clients
/// are not left with shards of one label only.
fn label_shards(
    labels: &[u32],
    classes: usize,
    clients: usize,
    classes_per_client: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<usize>>, SimError> {
    let shard_count = clients
        .checked_mul(classes_per_client)
        .filter(|&count| count > 0 && count <= labels.len())
        .ok_or_else(|| {
            SimError::Config(format!(
                "partition: label shards need 1 <= clients * classes_per_client <= {} \
                 examples, got {clients} * {classes_per_client}",
                labels.len()
            ))
        })?;
    // Shuffled first, then a stable sort: classes in order, random within.
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.shuffle(rng);
    order.sort_by_key(|&i| labels[i]);
    // In u128 so `shard * len` cannot overflow.
    let bound = |shard: usize| (shard as u128 * order.len() as u128 / shard_count as u128) as usize;
    let shards: Vec<&[usize]> = (0..shard_count)
        .map(|shard| &order[bound(shard)..bound(shard + 1)])
        .collect();
    let shard_labels: Vec<u32> = shards
        .iter()
        .map(|shard| majority_label(shard, labels))
        .collect();

    let mut pool: Vec<usize> = (0..shard_count).collect();
    pool.shuffle(rng);
    let mut left_per_label = vec![0usize; classes];
    for &label in &shard_labels {
        left_per_label[label as usize] += 1;
    }
    let mut assignment = vec![Vec::new(); clients];
    for examples in &mut assignment {
        let mut held: Vec<u32> = Vec::with_capacity(classes_per_client);
        for _ in 0..classes_per_client {
            // Labels the client lacks first, then the label with most shards left.
            let preference = |position: &usize| {
                let label = shard_labels[pool[*position]];
                (!held.contains(&label), left_per_label[label as usize])
            };
            // Reversed so that max_by_key keeps the first of equals.
            let pick = (0..pool.len()).rev().max_by_key(preference).unwrap_or(0);
            let shard = pool.remove(pick);
            let label = shard_labels[shard];
            held.push(label);
            left_per_label[label as usize] -= 1;
            examples.extend_from_slice(shards[shard]);
        }
    }
    Ok(assignment)
}

/// The most frequent label of a shard of label-sorted examples (the first on
/// ties): labels come in runs, so the longest run wins.
fn majority_label(shard: &[usize], labels: &[u32]) -> u32 {
    shard
        .chunk_by(|&a, &b| labels[a] == labels[b])
        .rev()
        .max_by_key(|run| run.len())
        .and_then(|run| run.first())
        .map_or(0, |&example| labels[example])
}

/// Client sizes in Dirichlet(`alpha`) proportions over a random permutation:
/// every client first gets `min_examples`, the rest is split by the shares,
/// so the minimum holds without redrawing.
fn quantity_skew(
    examples: usize,
    clients: usize,
    alpha: f64,
    min_examples: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<usize>>, SimError> {
    let gamma = dirichlet_shares(alpha)?;
    let mut order: Vec<usize> = (0..examples).collect();
    order.shuffle(rng);
    let (guaranteed, rest) = order.split_at(clients * min_examples);
    let mut shards: Vec<Vec<usize>> = if min_examples == 0 {
        vec![Vec::new(); clients]
    } else {
        guaranteed
            .chunks_exact(min_examples)
            .map(<[usize]>::to_vec)
            .collect()
    };
    let draws: Vec<f64> = (0..clients).map(|_| gamma.sample(rng)).collect();
    split_proportionally(rest, &draws, &mut shards);
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<u32> {
        (0..4000).map(|i| (i % 4) as u32).collect()
    }

    fn check_disjoint_cover(shards: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = shards.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn iid_is_even_and_covers_everything() {
        let shards = partition(&labels(), 4, 7, Partition::Iid, 1, 1).unwrap();
        check_disjoint_cover(&shards, 4000);
        assert!(shards.iter().all(|s| s.len() == 571 || s.len() == 572));
    }

    #[test]
    fn dirichlet_skews_labels_and_is_deterministic() {
        let labels = labels();
        let shards = partition(&labels, 4, 8, Partition::Dirichlet { alpha: 0.1 }, 10, 3).unwrap();
        check_disjoint_cover(&shards, 4000);
        assert!(shards.iter().all(|s| s.len() >= 10));
        // With alpha = 0.1 most clients are dominated by one class.
        let dominated = shards
            .iter()
            .filter(|s| {
                let mut counts = [0usize; 4];
                s.iter().for_each(|&i| counts[labels[i] as usize] += 1);
                *counts.iter().max().unwrap() * 2 > s.len()
            })
            .count();
        assert!(
            dominated >= 5,
            "only {dominated} of 8 clients dominated by one class"
        );
        assert_eq!(
            shards,
            partition(&labels, 4, 8, Partition::Dirichlet { alpha: 0.1 }, 10, 3).unwrap()
        );
        assert_ne!(
            shards,
            partition(&labels, 4, 8, Partition::Dirichlet { alpha: 0.1 }, 10, 4).unwrap()
        );
    }

    #[test]
    fn impossible_partitions_are_refused() {
        assert!(partition(&labels(), 4, 0, Partition::Iid, 1, 1).is_err());
        assert!(partition(&labels(), 4, 10, Partition::Iid, 500, 1).is_err());
        assert!(partition(&labels(), 4, 3, Partition::Dirichlet { alpha: 0.0 }, 1, 1).is_err());
        assert!(partition(&labels(), 3, 3, Partition::Iid, 1, 1).is_err());
        let shards = |classes_per_client| Partition::LabelShards { classes_per_client };
        assert!(partition(&labels(), 4, 3, shards(0), 0, 1).is_err());
        assert!(partition(&labels(), 4, 2001, shards(2), 0, 1).is_err());
        // 4000 examples in 30 shards of 133: two shards are fewer than 300.
        assert!(partition(&labels(), 4, 15, shards(2), 300, 1).is_err());
        for alpha in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(partition(&labels(), 4, 3, Partition::QuantitySkew { alpha }, 1, 1).is_err());
        }
    }

    fn label_counts(shard: &[usize], labels: &[u32], classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        shard.iter().for_each(|&i| counts[labels[i] as usize] += 1);
        counts
    }

    #[test]
    fn label_shards_give_each_client_distinct_classes() {
        // 10 classes, 25 clients with 2 shards each, as in examples/robustness.toml.
        let labels: Vec<u32> = (0..5000).map(|i| (i * 7 % 10) as u32).collect();
        let scheme = Partition::LabelShards {
            classes_per_client: 2,
        };
        let shards = partition(&labels, 10, 25, scheme, 150, 5).unwrap();
        check_disjoint_cover(&shards, 5000);
        for shard in &shards {
            assert_eq!(shard.len(), 200);
            let present = label_counts(shard, &labels, 10)
                .into_iter()
                .filter(|&count| count > 0)
                .count();
            assert_eq!(present, 2, "a client holds {present} classes");
        }
        assert_eq!(shards, partition(&labels, 10, 25, scheme, 150, 5).unwrap());
        assert_ne!(shards, partition(&labels, 10, 25, scheme, 150, 6).unwrap());
    }

    #[test]
    fn experiment_files_name_every_scheme() {
        #[derive(serde::Deserialize)]
        struct File {
            partitions: Vec<Partition>,
        }
        let file: File = toml::from_str(
            r#"partitions = [
                { kind = "iid" },
                { kind = "dirichlet", alpha = 0.5 },
                { kind = "label-shards", classes_per_client = 2 },
                { kind = "quantity-skew", alpha = 1.0 },
            ]"#,
        )
        .unwrap();
        assert_eq!(
            file.partitions,
            vec![
                Partition::Iid,
                Partition::Dirichlet { alpha: 0.5 },
                Partition::LabelShards {
                    classes_per_client: 2
                },
                Partition::QuantitySkew { alpha: 1.0 },
            ]
        );
        assert!(toml::from_str::<File>(r#"partitions = [{ kind = "shards" }]"#).is_err());
        let names: Vec<String> = file.partitions.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            names,
            [
                "iid",
                "dirichlet(0.5)",
                "label-shards(2)",
                "quantity-skew(1)"
            ]
        );
    }

    #[test]
    fn label_shards_beyond_the_class_count_repeat_classes() {
        let labels = labels();
        let scheme = Partition::LabelShards {
            classes_per_client: 6,
        };
        let shards = partition(&labels, 4, 3, scheme, 1, 2).unwrap();
        check_disjoint_cover(&shards, 4000);
        for shard in &shards {
            assert!(
                label_counts(shard, &labels, 4)
                    .iter()
                    .all(|&count| count > 0)
            );
        }
    }

    #[test]
    fn quantity_skew_varies_sizes_not_labels() {
        let labels = labels();
        let scheme = Partition::QuantitySkew { alpha: 0.5 };
        let shards = partition(&labels, 4, 10, scheme, 20, 9).unwrap();
        check_disjoint_cover(&shards, 4000);
        let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
        assert!(sizes.iter().all(|&size| size >= 20));
        let (smallest, largest) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(largest >= &(4 * smallest), "sizes barely skewed: {sizes:?}");
        // Labels stay IID: every large client sees each class about equally.
        for shard in shards.iter().filter(|s| s.len() >= 400) {
            for count in label_counts(shard, &labels, 4) {
                let share = count as f64 / shard.len() as f64;
                assert!((share - 0.25).abs() < 0.1, "class share {share}");
            }
        }
        assert_eq!(shards, partition(&labels, 4, 10, scheme, 20, 9).unwrap());
    }
}
