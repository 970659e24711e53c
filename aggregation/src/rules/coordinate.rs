//! Coordinate-wise rules: the median and the trimmed mean (Yin et al. 2018),
//! and the trimmed-mean stage of Bulyan. All three are unweighted.
//!
//! # How
//! Each coordinate's `m` values are sorted by a fixed sorting network
//! (Batcher's odd-even merge sort, `O(m log^2 m)` comparators) run on
//! [`LANES`] neighbouring coordinates at once: every comparator is a lane-wise
//! min/max over a block of `m x LANES` values in L1, which the compiler
//! vectorizes. Nothing branches on the data and nothing is allocated per
//! coordinate (each thread keeps its buffers). At `n = 100` this is about 3x
//! faster than `select_nth_unstable` per coordinate, whose partitions
//! mispredict branches; the network's min/max instructions are most of the
//! time, so the rules run well below memory bandwidth (see the benchmarks).
//!
//! # Verdicts
//! With `k` values trimmed at each end of a coordinate's `m` sorted values,
//! an input is *trimmed* there when its value is among the `k` lowest or `k`
//! highest. When the cut falls inside a run of equal values (say every input
//! sends exactly 0 for a frozen parameter), the equal values share the cut:
//! if `t` of `e` equal values must go, each counts as `t / e` trimmed. That is
//! deterministic and does not depend on the order of the inputs, and it
//! charges no input more than the others for values it shares with them.
//! An input's verdict reports the fraction of coordinates where it was
//! trimmed:
//! - fraction 0: [`Verdict::KEPT`];
//! - otherwise weight `1 - fraction` with [`Reason::Trimmed`], and weight 0
//!   (rejected) when the fraction exceeds `(2 + 2k/m) / 3`: two thirds of the
//!   way from what an input is trimmed on average (each coordinate trims `2k`
//!   of `m` values; `2k/m` is `2 * trim` when `trim * m` is whole) to always.
//!   Rejection is slashing evidence, so the bar sits well above the midpoint:
//!   on `examples/robustness.toml` the midpoint made label-skewed honest
//!   clients outliers often enough to be slashed.
//!
//! The median's verdict uses the same rule with `k = floor(m / 4)`: an input is
//! counted out where it lies outside the central half, and rejected when that
//! happens in more than about 83% of coordinates. Below 4 inputs nothing is
//! trimmed and every input is kept.

use std::cell::RefCell;

use ndarray::{Array1, ArrayView2};
use rayon::prelude::*;

use super::kernels::Rows;
use crate::{Aggregate, AggregationError, Reason, Verdict};

/// Coordinates sorted together: the sorted block, `m x 128` bytes, stays in
/// L1 for `m` up to a few hundred.
const LANES: usize = 32;

/// Coordinates per parallel task. The task's slice of every member row is
/// first copied into a tile (`m x 8 KiB`, in L2 for `m` up to ~200): reading
/// one row at a time streams from memory, where gathering each block straight
/// from `m` rows would jump between more streams than the prefetcher follows
/// (about 12% slower at `n = 100`).
const TASK: usize = 64 * LANES;

/// One input's values in the block's coordinates.
type Lanes = [f32; LANES];

/// The coordinate-wise median; verdicts as described in the module docs.
pub(crate) fn median(updates: ArrayView2<f32>) -> Result<Aggregate, AggregationError> {
    let rows = Rows::new(updates);
    let everyone: Vec<usize> = (0..rows.count()).collect();
    let (update, verdicts) = aggregate(&rows, &everyone, rows.count() / 4, Statistic::Median);
    Ok(Aggregate { update, verdicts })
}

/// The coordinate-wise mean after dropping the `floor(trim_fraction * n)`
/// smallest and largest values of each coordinate.
pub(crate) fn trimmed_mean(
    updates: ArrayView2<f32>,
    trim_fraction: f32,
) -> Result<Aggregate, AggregationError> {
    let rows = Rows::new(updates);
    let n = rows.count();
    // In f32 so that a fraction like 0.35 gives 7 of 20 (in f64 the f32 value
    // 0.35 is 0.34999999, which would floor to 6); capped so one value is left.
    let trim = ((trim_fraction * n as f32).floor() as usize).min((n - 1) / 2);
    let everyone: Vec<usize> = (0..n).collect();
    let (update, verdicts) = aggregate(&rows, &everyone, trim, Statistic::TrimmedMean);
    Ok(Aggregate { update, verdicts })
}

/// The trimmed mean of the `members` rows with `trim` values dropped at each
/// end, and one verdict per member. Bulyan's second stage.
pub(crate) fn trimmed_mean_of(
    rows: &Rows,
    members: &[usize],
    trim: usize,
) -> (Array1<f32>, Vec<Verdict>) {
    aggregate(rows, members, trim, Statistic::TrimmedMean)
}

/// What is taken of each coordinate's sorted values.
#[derive(Clone, Copy)]
enum Statistic {
    /// The middle value, or the mean of the two middle values.
    Median,
    /// The mean of the values left after trimming.
    TrimmedMean,
}

/// Sorts every coordinate of the `members` rows, takes `statistic` and counts,
/// per member, the coordinates where it was among the `trim` lowest or
/// highest ranks.
fn aggregate(
    rows: &Rows,
    members: &[usize],
    trim: usize,
    statistic: Statistic,
) -> (Array1<f32>, Vec<Verdict>) {
    let m = members.len();
    let network = odd_even_merge_sort(m);
    let mut update = vec![0.0f32; rows.dim()];
    // Per task counts, added in task order so that the fractional tie shares
    // sum the same way on every run.
    let per_task: Vec<Vec<f64>> = update
        .par_chunks_mut(TASK)
        .enumerate()
        .map(|(task, out)| {
            SCRATCH.with_borrow_mut(|block| {
                block.prepare(m);
                block.load_tile(rows, members, task * TASK, out.len());
                for (b, out) in out.chunks_mut(LANES).enumerate() {
                    block.sort(b * LANES, &network);
                    block.write(statistic, trim, out);
                    if trim > 0 {
                        block.count_trimmed(b * LANES, trim, out.len());
                    }
                }
                block.trimmed_counts()
            })
        })
        .collect();
    let trimmed = per_task
        .into_iter()
        .reduce(|mut total, part| {
            total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
            total
        })
        .unwrap_or_else(|| vec![0.0; m]);
    let verdicts = trimmed_verdicts(&trimmed, rows.dim(), trim);
    (Array1::from(update), verdicts)
}

/// Verdicts from the number of coordinates (out of `dim`, tie shares
/// included) where each of the `trimmed.len()` members was trimmed, `trim` at
/// each end (module docs).
fn trimmed_verdicts(trimmed: &[f64], dim: usize, trim: usize) -> Vec<Verdict> {
    let expected = 2.0 * trim as f64 / trimmed.len() as f64;
    let threshold = (2.0 + expected) / 3.0; // module docs: two thirds of the way
    trimmed
        .iter()
        .map(|&count| {
            if count == 0.0 {
                return Verdict::KEPT;
            }
            let fraction = count / dim as f64;
            Verdict {
                weight: if fraction > threshold {
                    0.0
                } else {
                    (1.0 - fraction) as f32
                },
                reason: Reason::Trimmed {
                    fraction: fraction as f32,
                },
            }
        })
        .collect()
}

thread_local! {
    /// Each thread's scratch space, kept between calls: allocating the tile
    /// per task would cost more in page faults than the copy into it.
    static SCRATCH: RefCell<Block> = RefCell::new(Block::default());
}

/// A thread's scratch space, reused for every block of coordinates.
#[derive(Default)]
struct Block {
    /// The task's coordinates of every member, `TASK` values per member.
    tile: Vec<f32>,
    /// One block of the tile's coordinates, sorted lane by lane.
    sorted: Vec<Lanes>,
    /// Per member and lane, the coordinates where it was trimmed outright.
    trimmed: Vec<[u32; LANES]>,
    /// Per member, its shares of cuts that fell among equal values.
    shared: Vec<f64>,
}

impl Block {
    /// Sizes the buffers for `members` inputs, with zero counts.
    fn prepare(&mut self, members: usize) {
        self.tile.resize(members * TASK, 0.0);
        self.sorted.resize(members, [0.0; LANES]);
        self.trimmed.clear();
        self.trimmed.resize(members, [0; LANES]);
        self.shared.clear();
        self.shared.resize(members, 0.0);
    }

    /// Copies coordinates `start..start + len` of the members into the tile.
    fn load_tile(&mut self, rows: &Rows, members: &[usize], start: usize, len: usize) {
        for (tile, &i) in self.tile.chunks_exact_mut(TASK).zip(members) {
            tile[..len].copy_from_slice(&rows.row(i)[start..start + len]);
        }
    }

    /// Sorts the block of coordinates at `offset` in the tile. Always whole
    /// blocks: past the task's last coordinate the tile holds stale but
    /// finite values, in lanes whose results nothing reads.
    fn sort(&mut self, offset: usize, network: &[(usize, usize)]) {
        for (lanes, tile) in self.sorted.iter_mut().zip(self.tile.chunks_exact(TASK)) {
            lanes.copy_from_slice(&tile[offset..offset + LANES]);
        }
        for &(low, high) in network {
            let (below, above) = self.sorted.split_at_mut(high);
            // By value, so the compiler need not check whether the two rows
            // overlap. Selects rather than f32::min/max, whose NaN handling
            // (the inputs are checked finite) would keep this from compiling
            // to plain vector min/max instructions.
            let (a, b) = (below[low], above[0]);
            below[low] = std::array::from_fn(|l| if a[l] < b[l] { a[l] } else { b[l] });
            above[0] = std::array::from_fn(|l| if a[l] > b[l] { a[l] } else { b[l] });
        }
    }

    /// Writes the statistic of the first `out.len()` lanes.
    fn write(&self, statistic: Statistic, trim: usize, out: &mut [f32]) {
        let m = self.sorted.len();
        match statistic {
            Statistic::Median => {
                let (lower, upper) = (&self.sorted[(m - 1) / 2], &self.sorted[m / 2]);
                for ((o, &a), &b) in out.iter_mut().zip(lower).zip(upper) {
                    // Halves first: a + b could overflow.
                    *o = 0.5 * a + 0.5 * b;
                }
            }
            Statistic::TrimmedMean => {
                let kept = &self.sorted[trim..m - trim];
                let mut sums = [0.0f32; LANES];
                for lanes in kept {
                    sums.iter_mut().zip(lanes).for_each(|(s, &v)| *s += v);
                }
                for (o, &s) in out.iter_mut().zip(&sums) {
                    *o = s / kept.len() as f32;
                }
            }
        }
    }

    /// Counts, for the first `len` lanes of the block at `offset`, which
    /// members have rank `< trim` or `>= m - trim`.
    fn count_trimmed(&mut self, offset: usize, trim: usize, len: usize) {
        let Block {
            tile,
            sorted,
            trimmed,
            shared,
        } = self;
        let m = sorted.len();
        let (lowest_kept, highest_kept) = (&sorted[trim], &sorted[m - trim - 1]);
        let (low_cut, high_cut) = (&sorted[trim - 1], &sorted[m - trim]);
        // When the cut values differ from their kept neighbours, exactly the
        // values <= low_cut and >= high_cut are trimmed, ties or not.
        let cuts_are_clean = len == LANES
            && (0..LANES).all(|l| low_cut[l] < lowest_kept[l] && highest_kept[l] < high_cut[l]);
        if cuts_are_clean {
            for (counts, tile) in trimmed.iter_mut().zip(tile.chunks_exact(TASK)) {
                let values = &tile[offset..offset + LANES];
                let cuts = low_cut.iter().zip(high_cut);
                for ((count, &v), (&low, &high)) in counts.iter_mut().zip(values).zip(cuts) {
                    *count += u32::from((v <= low) | (v >= high));
                }
            }
        } else {
            for lane in 0..len {
                count_trimmed_with_ties(tile, offset + lane, sorted, trimmed, shared, trim, lane);
            }
        }
    }

    /// Per member, the coordinates where it was trimmed since `prepare`.
    fn trimmed_counts(&self) -> Vec<f64> {
        self.trimmed
            .iter()
            .zip(&self.shared)
            .map(|(lanes, &shared)| lanes.iter().map(|&c| f64::from(c)).sum::<f64>() + shared)
            .collect()
    }
}

/// Counts the trimmed members of one coordinate (`column` of the tile,
/// `lane` of the sorted block) when a cut value is shared with a kept value:
/// the values equal to a cut share what must be trimmed of them.
fn count_trimmed_with_ties(
    tile: &[f32],
    column: usize,
    sorted: &[Lanes],
    trimmed: &mut [[u32; LANES]],
    shared: &mut [f64],
    trim: usize,
    lane: usize,
) {
    let m = sorted.len();
    let (low_cut, high_cut) = (sorted[trim - 1][lane], sorted[m - trim][lane]);
    let below = sorted.partition_point(|s| s[lane] < low_cut);
    let up_to_low = sorted.partition_point(|s| s[lane] <= low_cut);
    let below_high = sorted.partition_point(|s| s[lane] < high_cut);
    let up_to_high = sorted.partition_point(|s| s[lane] <= high_cut);
    let low_share = (trim - below) as f64 / (up_to_low - below) as f64;
    let high_share = (trim - (m - up_to_high)) as f64 / (up_to_high - below_high) as f64;
    let members = trimmed.iter_mut().zip(shared).zip(tile.chunks_exact(TASK));
    for ((counts, shared), values) in members {
        let v = values[column];
        if v < low_cut || v > high_cut {
            counts[lane] += 1;
        } else {
            // Both when the two cuts fall in the same run of equal values.
            if v == low_cut {
                *shared += low_share;
            }
            if v == high_cut {
                *shared += high_share;
            }
        }
    }
}

/// The comparators `(low, high)` of Batcher's odd-even merge sort on `m`
/// wires: applied in order, each moving the smaller of two values to wire
/// `low`, they sort any input. This is the network for the next power of two
/// without the comparators that touch wires `>= m`: padded with +inf, those
/// would never move a value.
fn odd_even_merge_sort(m: usize) -> Vec<(usize, usize)> {
    let mut comparators = Vec::new();
    let mut p = 1;
    while p < m {
        let mut k = p;
        while k >= 1 {
            let mut j = k % p;
            while j + k < m {
                for i in 0..k.min(m - j - k) {
                    if (i + j) / (2 * p) == (i + j + k) / (2 * p) {
                        comparators.push((i + j, i + j + k));
                    }
                }
                j += 2 * k;
            }
            k /= 2;
        }
        p *= 2;
    }
    comparators
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(network: &[(usize, usize)], values: &mut [u32]) {
        for &(low, high) in network {
            if values[low] > values[high] {
                values.swap(low, high);
            }
        }
    }

    #[test]
    fn network_sorts_every_zero_one_input_for_small_sizes() {
        // The 0-1 principle: a comparator network that sorts all 0-1 inputs
        // sorts every input.
        for m in 1..=14 {
            let network = odd_even_merge_sort(m);
            for bits in 0u32..(1 << m) {
                let mut values: Vec<u32> = (0..m).map(|i| (bits >> i) & 1).collect();
                apply(&network, &mut values);
                assert!(values.is_sorted(), "m = {m}, input {bits:b}");
            }
        }
    }

    #[test]
    fn network_sorts_larger_inputs() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for m in [15, 31, 33, 64, 100, 127, 129, 200] {
            let network = odd_even_merge_sort(m);
            for _ in 0..50 {
                let mut values: Vec<u32> = (0..m)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state % 7) as u32
                    })
                    .collect();
                apply(&network, &mut values);
                assert!(values.is_sorted(), "m = {m}");
            }
        }
    }
}
