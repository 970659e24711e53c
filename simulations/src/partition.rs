//! Splitting one dataset among simulated clients, IID or label-skewed.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

use crate::SimError;

/// How examples are dealt to clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Partition {
    /// Shuffled and dealt evenly.
    Iid,
    /// Per class, client shares drawn from Dirichlet(`alpha`) (Hsu et al. 2019):
    /// small `alpha` gives each client few dominant classes.
    Dirichlet {
        /// Concentration, > 0.
        alpha: f64,
    },
}

/// Draws of the Dirichlet shares before giving up on giving every client
/// `min_examples`.
const MAX_DIRICHLET_DRAWS: usize = 1000;

/// Indices of the examples each of `clients` clients gets; every client gets at
/// least `min_examples`. Deterministic for `seed`.
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
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match scheme {
        Partition::Iid => {
            let mut order: Vec<usize> = (0..labels.len()).collect();
            order.shuffle(&mut rng);
            let mut shards = vec![Vec::new(); clients];
            for (i, example) in order.into_iter().enumerate() {
                shards[i % clients].push(example);
            }
            Ok(shards)
        }
        Partition::Dirichlet { alpha } => {
            if !(alpha.is_finite() && alpha > 0.0) {
                return Err(SimError::Config(format!(
                    "partition: Dirichlet alpha must be finite and > 0, got {alpha}"
                )));
            }
            let gamma = Gamma::new(alpha, 1.0).map_err(|e| {
                SimError::Config(format!("partition: Dirichlet alpha {alpha}: {e}"))
            })?;
            let mut by_class = vec![Vec::new(); classes];
            for (i, &label) in labels.iter().enumerate() {
                by_class[label as usize].push(i);
            }
            for _ in 0..MAX_DIRICHLET_DRAWS {
                let mut shards = vec![Vec::new(); clients];
                for members in &by_class {
                    let mut members = members.clone();
                    members.shuffle(&mut rng);
                    let draws: Vec<f64> = (0..clients).map(|_| gamma.sample(&mut rng)).collect();
                    let total: f64 = draws.iter().sum();
                    let mut start = 0;
                    let mut cumulative = 0.0;
                    for (shard, draw) in shards.iter_mut().zip(&draws) {
                        cumulative += draw / total;
                        let end = ((cumulative * members.len() as f64).round() as usize)
                            .min(members.len());
                        shard.extend_from_slice(&members[start..end.max(start)]);
                        start = end.max(start);
                    }
                    if let Some(last) = shards.last_mut() {
                        last.extend_from_slice(&members[start..]);
                    }
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
    }
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
    }
}
