//! Coordinate-wise rules: the median and the trimmed mean (Yin et al. 2018),
//! and the trimmed-mean stage of Bulyan. All three are unweighted.
//!
//! # How
//! Coordinates are processed in blocks of [`LANES`] neighbours, each block's
//! `m x LANES` values contiguous in a per-thread tile. Nothing branches on the
//! data (but the rare ties below) and nothing is allocated per coordinate
//! (each thread keeps its buffers). The copy into the tile also checks that
//! every value is finite, so these rules skip the separate finiteness pass
//! the other rules make over the whole input (a sixth of the trimmed mean's
//! time at `n = 100, d = 1e6`); the error is the same, naming the first
//! NaN or infinite value.
//!
//! The median, and a trimmed mean that drops more than [`MAX_BUFFER`] values
//! at each end, sort each coordinate's `m` values with a fixed sorting network
//! (Batcher's odd-even merge sort, `O(m log^2 m)` comparators): every
//! comparator is a lane-wise min/max over the block in L1, in vector
//! registers. At `n = 100` this is about 3x faster than `select_nth_unstable`
//! per coordinate, whose partitions mispredict branches.
//!
//! The trimmed mean otherwise needs no sort, only its two cuts: the `k`-th
//! lowest value `lo` and the `k`-th highest `hi`. For `W` coordinates at a
//! time (one vector register, see [`Buffer`]), two sorted buffers of `k`
//! values keep the lowest and highest values seen: runs of `k` values are
//! sorted by a written-out network, and each run is merged into both buffers
//! by comparing run and buffer head to tail (which leaves the `k` lowest,
//! respectively highest, as a bitonic sequence) and a bitonic merge; the last
//! `m mod k` values are inserted one by one. A run's sort serves both ends.
//! At `m = 100, k = 10` that is about 1,400 min/max operations per
//! coordinate, fewer than the sorting network's 2,200 and on registers: the
//! network works on the block in L1, a load and a store per operand, and
//! that traffic was most of its time. One pass
//! over the block then sums, per coordinate, the values strictly between
//! `lo` and `hi` and counts the inputs at or beyond a cut. When exactly `k`
//! values are `<= lo` and `k` are `>= hi` (always, unless a cut value is
//! shared with a kept value), that is the kept sum and the trimmed inputs;
//! otherwise the coordinate is recounted with the tie sharing below and the
//! kept copies of `lo` and `hi` are added to its sum. The mean is that sum
//! divided by `m - 2k`, summed in input order rather than sorted order (it
//! differs from the sorted sum by rounding only).
//!
//! Everything a task runs is compiled for SSE2 (which every x86-64 processor
//! has), AVX2 and AVX-512, and [`pulp`] picks the best the processor has at
//! run time. The comparators use `pulp`'s vector types explicitly: left to
//! the compiler, 16-lane arrays were split into 4- and 8-lane pieces. With
//! AVX-512's 32 registers of 16 lanes, both buffers and a run stay in
//! registers for `k <= 10`.
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
use pulp::{Arch, Scalar128b, Simd, WithSimd};
use rayon::prelude::*;

use super::kernels::{Rows, non_finite_seen};
use crate::{Aggregate, AggregationError, Reason, Verdict};

/// Coordinates processed together: a block of them, `m x 128` bytes, stays in
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

/// The largest selection buffer: a trimmed mean that drops more values at each
/// end sorts instead.
const MAX_BUFFER: usize = 16;

/// The coordinate-wise median; verdicts as described in the module docs.
/// The inputs need not have been checked for NaN or infinite values: the
/// tile copy checks them (module docs).
pub(crate) fn median(updates: ArrayView2<f32>) -> Result<Aggregate, AggregationError> {
    let rows = Rows::new(updates);
    let everyone: Vec<usize> = (0..rows.count()).collect();
    let (update, verdicts) = aggregate(&rows, &everyone, rows.count() / 4, Statistic::Median)
        .ok_or_else(|| non_finite_seen(&rows))?;
    Ok(Aggregate { update, verdicts })
}

/// The coordinate-wise mean after dropping the `floor(trim_fraction * n)`
/// smallest and largest values of each coordinate. Like [`median`], it
/// checks for NaN and infinite values itself.
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
    let (update, verdicts) = aggregate(&rows, &everyone, trim, Statistic::TrimmedMean)
        .ok_or_else(|| non_finite_seen(&rows))?;
    Ok(Aggregate { update, verdicts })
}

/// The trimmed mean of the `members` rows with `trim` values dropped at each
/// end, and one verdict per member. Bulyan's second stage.
pub(crate) fn trimmed_mean_of(
    rows: &Rows,
    members: &[usize],
    trim: usize,
) -> Result<(Array1<f32>, Vec<Verdict>), AggregationError> {
    aggregate(rows, members, trim, Statistic::TrimmedMean).ok_or_else(|| non_finite_seen(rows))
}

/// What is taken of each coordinate's sorted values.
#[derive(Clone, Copy)]
enum Statistic {
    /// The middle value, or the mean of the two middle values.
    Median,
    /// The mean of the values left after trimming.
    TrimmedMean,
}

/// How a block of coordinates is reduced.
enum Method {
    /// Sort every coordinate with this network (comparators `(low, high)`).
    Sort(Vec<(usize, usize)>),
    /// Select the two cuts of a trimmed mean, `trim` at most [`MAX_BUFFER`].
    Select,
    /// Nothing is trimmed: the plain mean.
    Mean,
}

/// Takes `statistic` of every coordinate of the `members` rows and counts,
/// per member, the coordinates where it was among the `trim` lowest or
/// highest ranks; `None` if a value is NaN or infinite.
fn aggregate(
    rows: &Rows,
    members: &[usize],
    trim: usize,
    statistic: Statistic,
) -> Option<(Array1<f32>, Vec<Verdict>)> {
    let method = match statistic {
        Statistic::TrimmedMean if trim == 0 => Method::Mean,
        Statistic::TrimmedMean if trim <= MAX_BUFFER => Method::Select,
        _ => Method::Sort(odd_even_merge_sort(members.len())),
    };
    aggregate_by(rows, members, trim, statistic, &method, Arch::new())
}

/// [`aggregate`] by `method`, compiled for the instruction set `arch`.
fn aggregate_by(
    rows: &Rows,
    members: &[usize],
    trim: usize,
    statistic: Statistic,
    method: &Method,
    arch: Arch,
) -> Option<(Array1<f32>, Vec<Verdict>)> {
    let m = members.len();
    let mut update = vec![0.0f32; rows.dim()];
    // Per task counts, added in task order so that the fractional tie shares
    // sum the same way on every run.
    let per_task: Vec<Option<Vec<f64>>> = update
        .par_chunks_mut(TASK)
        .enumerate()
        .map(|(task, out)| {
            SCRATCH.with_borrow_mut(|block| {
                block.prepare(m);
                let finite = arch.dispatch(Task {
                    block: &mut *block,
                    rows,
                    members,
                    start: task * TASK,
                    out,
                    trim,
                    statistic,
                    method,
                });
                finite.then(|| block.trimmed_counts())
            })
        })
        .collect();
    let trimmed = per_task
        .into_iter()
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .reduce(|mut total, part| {
            total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
            total
        })
        .unwrap_or_else(|| vec![0.0; m]);
    let verdicts = trimmed_verdicts(&trimmed, rows.dim(), trim);
    Some((Array1::from(update), verdicts))
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

/// One parallel task: `out.len()` coordinates from `start`, reduced by
/// `method`. A [`WithSimd`] operation, so that [`Arch::dispatch`] compiles it
/// (everything it calls is inlined) for each instruction set and runs the
/// best the processor has.
struct Task<'a> {
    block: &'a mut Block,
    rows: &'a Rows<'a>,
    members: &'a [usize],
    start: usize,
    out: &'a mut [f32],
    trim: usize,
    statistic: Statistic,
    method: &'a Method,
}

impl WithSimd for Task<'_> {
    /// Whether every value was finite.
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> bool {
        if S::F32_LANES == 1 {
            // No vector extension detected: SSE2's four lanes, which every
            // x86-64 processor has.
            self.run(Scalar128b)
        } else {
            self.run(simd)
        }
    }
}

impl Task<'_> {
    /// The task, the selection in registers of `simd`.
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> bool {
        let Task {
            block,
            rows,
            members,
            start,
            out,
            trim,
            statistic,
            method,
        } = self;
        if !block.load_tile(rows, members, start, out.len()) {
            return false;
        }
        for (b, out) in out.chunks_mut(LANES).enumerate() {
            match method {
                Method::Sort(network) => {
                    block.sort(simd, b, network);
                    block.write(statistic, trim, out);
                    if trim > 0 {
                        block.count_trimmed(b, trim, out);
                    }
                }
                // Buffers exactly `trim` long: a longer one would do more
                // work and hold more registers.
                Method::Select => match trim {
                    1 => block.trimmed_mean::<S, 1>(simd, b, out),
                    2 => block.trimmed_mean::<S, 2>(simd, b, out),
                    3 => block.trimmed_mean::<S, 3>(simd, b, out),
                    4 => block.trimmed_mean::<S, 4>(simd, b, out),
                    5 => block.trimmed_mean::<S, 5>(simd, b, out),
                    6 => block.trimmed_mean::<S, 6>(simd, b, out),
                    7 => block.trimmed_mean::<S, 7>(simd, b, out),
                    8 => block.trimmed_mean::<S, 8>(simd, b, out),
                    9 => block.trimmed_mean::<S, 9>(simd, b, out),
                    10 => block.trimmed_mean::<S, 10>(simd, b, out),
                    11 => block.trimmed_mean::<S, 11>(simd, b, out),
                    12 => block.trimmed_mean::<S, 12>(simd, b, out),
                    13 => block.trimmed_mean::<S, 13>(simd, b, out),
                    14 => block.trimmed_mean::<S, 14>(simd, b, out),
                    15 => block.trimmed_mean::<S, 15>(simd, b, out),
                    _ => block.trimmed_mean::<S, MAX_BUFFER>(simd, b, out),
                },
                Method::Mean => block.mean(b, out),
            }
        }
        true
    }
}

thread_local! {
    /// Each thread's scratch space, kept between calls: allocating the tile
    /// per task would cost more in page faults than the copy into it.
    static SCRATCH: RefCell<Block> = RefCell::new(Block::default());
}

/// A thread's scratch space, reused for every block of coordinates.
#[derive(Default)]
struct Block {
    /// The task's coordinates of every member, block by block: block `b`
    /// holds the `m` members' values of its `LANES` coordinates in rows
    /// `b * m..(b + 1) * m`.
    tile: Vec<Lanes>,
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
        self.tile.resize(members * (TASK / LANES), [0.0; LANES]);
        self.sorted.resize(members, [0.0; LANES]);
        self.trimmed.clear();
        self.trimmed.resize(members, [0; LANES]);
        self.shared.clear();
        self.shared.resize(members, 0.0);
    }

    /// Copies coordinates `start..start + len` of the members into the tile
    /// and tells whether every value copied is finite: checking here saves
    /// the rules a separate pass over the whole input. A last block that is
    /// not whole keeps stale but finite values in its last lanes, whose
    /// results nothing reads.
    #[inline(always)]
    fn load_tile(&mut self, rows: &Rows, members: &[usize], start: usize, len: usize) -> bool {
        let m = members.len();
        // A fold without an early exit vectorizes.
        let finite = |values: &[f32]| values.iter().fold(true, |ok, v| ok & v.is_finite());
        let mut all_finite = true;
        for (i, &member) in members.iter().enumerate() {
            let (whole, rest) = rows.row(member)[start..start + len].as_chunks::<LANES>();
            for (b, values) in whole.iter().enumerate() {
                all_finite &= finite(values);
                self.tile[b * m + i] = *values;
            }
            if !rest.is_empty() {
                all_finite &= finite(rest);
                self.tile[whole.len() * m + i][..rest.len()].copy_from_slice(rest);
            }
        }
        all_finite
    }

    /// The members' values in the coordinates of block `b`.
    fn column(&self, b: usize) -> &[Lanes] {
        let m = self.trimmed.len();
        &self.tile[b * m..(b + 1) * m]
    }

    /// Sorts block `b`, always whole, in registers of `simd`.
    #[inline(always)]
    fn sort<S: Simd>(&mut self, simd: S, b: usize, network: &[(usize, usize)]) {
        let m = self.trimmed.len();
        self.sorted.copy_from_slice(&self.tile[b * m..(b + 1) * m]);
        for &(low, high) in network {
            let (below, above) = self.sorted.split_at_mut(high);
            let lows = S::as_mut_simd_f32s(&mut below[low]).0;
            let highs = S::as_mut_simd_f32s(&mut above[0]).0;
            for (a, b) in lows.iter_mut().zip(highs) {
                (*a, *b) = (simd.min_f32s(*a, *b), simd.max_f32s(*a, *b));
            }
        }
    }

    /// Writes the statistic of the sorted block's first `out.len()` lanes.
    #[inline(always)]
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

    /// Counts, for the first `out.len()` lanes of the sorted block `b`, which
    /// members have rank `< trim` or `>= m - trim`.
    #[inline(always)]
    fn count_trimmed(&mut self, b: usize, trim: usize, out: &[f32]) {
        let m = self.sorted.len();
        let Block {
            tile,
            sorted,
            trimmed,
            shared,
        } = self;
        let column = &tile[b * m..(b + 1) * m];
        let (lowest_kept, highest_kept) = (&sorted[trim], &sorted[m - trim - 1]);
        let (low_cut, high_cut) = (&sorted[trim - 1], &sorted[m - trim]);
        // When the cut values differ from their kept neighbours, exactly the
        // values <= low_cut and >= high_cut are trimmed, ties or not.
        let cuts_are_clean = out.len() == LANES
            && (0..LANES).all(|l| low_cut[l] < lowest_kept[l] && highest_kept[l] < high_cut[l]);
        if cuts_are_clean {
            for (counts, values) in trimmed.iter_mut().zip(column) {
                let cuts = low_cut.iter().zip(high_cut);
                for ((count, &v), (&low, &high)) in counts.iter_mut().zip(values).zip(cuts) {
                    *count += u32::from((v <= low) | (v >= high));
                }
            }
        } else {
            for lane in 0..out.len() {
                let cuts = (low_cut[lane], high_cut[lane]);
                count_ties(column, lane, cuts, trim, trimmed, shared);
            }
        }
    }

    /// The trimmed mean of block `b`, `TRIM` values dropped at each end,
    /// with the trimmed members counted: the two cuts of every coordinate are
    /// selected with buffers of `TRIM` values, then one pass over the block
    /// sums the values between them and counts the values outside.
    #[inline(always)]
    fn trimmed_mean<S: Simd, const TRIM: usize>(&mut self, simd: S, b: usize, out: &mut [f32])
    where
        Buffer<S, TRIM>: Network<S>,
    {
        let (m, trim) = (self.trimmed.len(), TRIM);
        let Block {
            tile,
            trimmed,
            shared,
            ..
        } = self;
        let column = &tile[b * m..(b + 1) * m];
        let mut low_cut = [0.0f32; LANES];
        let mut high_cut = [0.0f32; LANES];
        let cuts = S::as_mut_simd_f32s(&mut low_cut).0.iter_mut();
        let cuts = cuts.zip(S::as_mut_simd_f32s(&mut high_cut).0);
        for (part, (low, high)) in cuts.enumerate() {
            (*low, *high) = select_cuts::<S, TRIM>(simd, column, part);
        }
        // Optimistically counted as if no value equalled a cut but the cuts
        // themselves (exact when the cuts are clean, see `count_trimmed`).
        let mut sums = [0.0f32; LANES];
        let mut at_most_low = [0u32; LANES];
        let mut below_high = [0u32; LANES];
        for (values, counts) in column.iter().zip(trimmed.iter_mut()) {
            for l in 0..LANES {
                let v = values[l];
                let (low, high) = (v <= low_cut[l], v >= high_cut[l]);
                at_most_low[l] += u32::from(low);
                below_high[l] += u32::from(!high);
                counts[l] += u32::from(low | high);
                sums[l] += if low | high { 0.0 } else { v };
            }
        }
        let kept = m - 2 * trim;
        for lane in 0..LANES {
            let clean = at_most_low[lane] as usize == trim && below_high[lane] as usize == m - trim;
            if clean && lane < out.len() {
                out[lane] = sums[lane] / kept as f32;
                continue;
            }
            // Take back the optimistic counts.
            for (values, counts) in column.iter().zip(trimmed.iter_mut()) {
                let v = values[lane];
                counts[lane] -= u32::from((v <= low_cut[lane]) | (v >= high_cut[lane]));
            }
            if lane >= out.len() {
                continue;
            }
            let (low, high) = (low_cut[lane], high_cut[lane]);
            let (at_most_low, below_high) =
                count_ties(column, lane, (low, high), trim, trimmed, shared);
            out[lane] = if low == high {
                low
            } else {
                // The kept values equal to a cut, which the sum left out.
                let sum = sums[lane]
                    + (at_most_low - trim) as f32 * low
                    + (m - trim - below_high) as f32 * high;
                sum / kept as f32
            };
        }
    }

    /// The plain mean of block `b`.
    #[inline(always)]
    fn mean(&self, b: usize, out: &mut [f32]) {
        let column = self.column(b);
        let mut sums = [0.0f32; LANES];
        for values in column {
            sums.iter_mut().zip(values).for_each(|(s, &v)| *s += v);
        }
        for (o, &s) in out.iter_mut().zip(&sums) {
            *o = s / column.len() as f32;
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

/// Counts the trimmed members of one coordinate (`lane` of the block
/// `column`) whose `trim`-th lowest and highest values are `cuts`, when a cut
/// value may be shared with a kept value: the values equal to a cut share what
/// must be trimmed of them. Returns the number of values `<=` the low cut and
/// `<` the high cut.
fn count_ties(
    column: &[Lanes],
    lane: usize,
    (low_cut, high_cut): (f32, f32),
    trim: usize,
    trimmed: &mut [[u32; LANES]],
    shared: &mut [f64],
) -> (usize, usize) {
    let m = column.len();
    let count = |keep: &dyn Fn(f32) -> bool| column.iter().filter(|v| keep(v[lane])).count();
    let below = count(&|v| v < low_cut);
    let up_to_low = count(&|v| v <= low_cut);
    let below_high = count(&|v| v < high_cut);
    let up_to_high = count(&|v| v <= high_cut);
    let low_share = (trim - below) as f64 / (up_to_low - below) as f64;
    let high_share = (trim - (m - up_to_high)) as f64 / (up_to_high - below_high) as f64;
    for ((counts, shared), values) in trimmed.iter_mut().zip(shared).zip(column) {
        let v = values[lane];
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
    (up_to_low, below_high)
}

/// The `BUFFER`-th lowest and highest values of each coordinate in `part`
/// (the `part`-th vector of `S`'s lanes) of the block `column`. Two sorted
/// buffers keep the `BUFFER` lowest and highest values seen; the values come
/// in runs of `BUFFER`, each sorted and merged into both buffers, then the
/// last few one by one ([`Network`]).
#[inline(always)]
fn select_cuts<S: Simd, const BUFFER: usize>(
    simd: S,
    column: &[Lanes],
    part: usize,
) -> (S::f32s, S::f32s)
where
    Buffer<S, BUFFER>: Network<S>,
{
    let (runs, rest) = column.as_chunks::<BUFFER>();
    let (mut low, mut high) = match runs.split_first() {
        Some((first, runs)) => {
            let mut run = Buffer::load(simd, first, part);
            run.sort();
            let (mut low, mut high) = (run, run);
            for values in runs {
                let mut run = Buffer::load(simd, values, part);
                run.sort();
                low.keep_lowest(&run);
                high.keep_highest(&run);
            }
            (low, high)
        }
        None => (
            Buffer::splat(simd, f32::INFINITY),
            Buffer::splat(simd, f32::NEG_INFINITY),
        ),
    };
    for values in rest {
        let x = S::as_simd_f32s(values).0[part];
        low.insert_lowest(x);
        high.insert_highest(x);
    }
    (low.wires[BUFFER - 1], high.wires[0])
}

/// A sorted buffer of the selection: `N` vectors of `S`'s lanes, each lane
/// sorted ascending over the vectors. Every operation is written out wire by
/// wire (by [`buffer!`]), so that the vectors stay in registers.
#[derive(Clone, Copy)]
struct Buffer<S: Simd, const N: usize> {
    simd: S,
    wires: [S::f32s; N],
}

impl<S: Simd, const N: usize> Buffer<S, N> {
    /// Every wire `value`.
    #[inline(always)]
    fn splat(simd: S, value: f32) -> Self {
        let wires = [simd.splat_f32s(value); N];
        Buffer { simd, wires }
    }

    /// The `part`-th vector of the first `N` rows of a block.
    #[inline(always)]
    fn load(simd: S, rows: &[Lanes], part: usize) -> Self {
        let wires = std::array::from_fn(|i| S::as_simd_f32s(&rows[i]).0[part]);
        Buffer { simd, wires }
    }

    /// Orders wires `i < j`.
    #[inline(always)]
    fn exchange(&mut self, i: usize, j: usize) {
        let (a, b) = (self.wires[i], self.wires[j]);
        self.wires[i] = self.simd.min_f32s(a, b);
        self.wires[j] = self.simd.max_f32s(a, b);
    }
}

/// The networks of a [`Buffer`].
trait Network<S: Simd>: Copy {
    /// Sorts the vectors lane by lane (Batcher's odd-even merge sort).
    fn sort(&mut self);
    /// Keeps the lowest `N` values of the buffer and the sorted `run`:
    /// compared head to tail, the lower ones form a bitonic sequence, which
    /// the bitonic merge sorts.
    fn keep_lowest(&mut self, run: &Self);
    /// Keeps the highest `N` values of the buffer and the sorted `run`.
    fn keep_highest(&mut self, run: &Self);
    /// Inserts `x`, dropping the highest value.
    fn insert_lowest(&mut self, x: S::f32s);
    /// Inserts `x`, dropping the lowest value.
    fn insert_highest(&mut self, x: S::f32s);
}

/// Implements [`Network`] for `Buffer<S, N>`, given the wires `0..N` in both
/// orders and the comparators `(i, j)` (the smaller value to wire `i`) of the
/// sorting network and of the two bitonic merges (the tests check them).
///
/// The networks are Batcher's for the next power of two `P >= N`, less the
/// comparators that padding makes no-ops: the sort's padding is `+inf` on the
/// last wires, as in [`odd_even_merge_sort`]. Keeping the lowest values leaves
/// an ascending-then-descending sequence; padded with `-inf` on the *first*
/// `P - N` wires it stays bitonic, and the bitonic merge never moves those
/// `-inf`s (every comparator keeps the minimum on its lower wire), so the
/// comparators touching them go and the other wires shift down by `P - N`.
/// Keeping the highest leaves a descending-then-ascending sequence, padded
/// with `+inf` on the last wires, which likewise never move.
macro_rules! buffer {
    (
        $n:literal;
        wires: [$($w:literal),*];
        reversed: [$($r:literal),*];
        sort: [$(($a:literal, $b:literal)),*];
        merge_low: [$(($c:literal, $d:literal)),*];
        merge_high: [$(($e:literal, $f:literal)),*]
    ) => {
        impl<S: Simd> Network<S> for Buffer<S, $n> {
            #[inline(always)]
            fn sort(&mut self) {
                $(self.exchange($a, $b);)*
            }
            #[inline(always)]
            fn keep_lowest(&mut self, run: &Self) {
                $(self.wires[$w] = self.simd.min_f32s(self.wires[$w], run.wires[$r]);)*
                $(self.exchange($c, $d);)*
            }
            #[inline(always)]
            fn keep_highest(&mut self, run: &Self) {
                $(self.wires[$w] = self.simd.max_f32s(self.wires[$w], run.wires[$r]);)*
                $(self.exchange($e, $f);)*
            }
            #[inline(always)]
            fn insert_lowest(&mut self, x: S::f32s) {
                let mut x = x;
                $(
                    let a = self.wires[$w];
                    self.wires[$w] = self.simd.min_f32s(a, x);
                    x = self.simd.max_f32s(a, x);
                )*
                let _ = x;
            }
            #[inline(always)]
            fn insert_highest(&mut self, x: S::f32s) {
                let mut x = x;
                $(
                    let a = self.wires[$r];
                    self.wires[$r] = self.simd.max_f32s(a, x);
                    x = self.simd.min_f32s(a, x);
                )*
                let _ = x;
            }
        }
    };
}

#[rustfmt::skip]
mod buffers {
    use super::{Buffer, Network, Simd};
    buffer!(1; wires: [0]; reversed: [0]; sort: []; merge_low: []; merge_high: []);
    buffer!(2; wires: [0, 1]; reversed: [1, 0]; sort: [(0, 1)]; merge_low: [(0, 1)]; merge_high: [(0, 1)]);
    buffer!(3; wires: [0, 1, 2]; reversed: [2, 1, 0]; sort: [(0, 1), (0, 2), (1, 2)]; merge_low: [(0, 2), (1, 2)]; merge_high: [(0, 2), (0, 1)]);
    buffer!(4; wires: [0, 1, 2, 3]; reversed: [3, 2, 1, 0]; sort: [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)]; merge_low: [(0, 2), (1, 3), (0, 1), (2, 3)]; merge_high: [(0, 2), (1, 3), (0, 1), (2, 3)]);
    buffer!(5; wires: [0, 1, 2, 3, 4]; reversed: [4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2), (0, 4), (2, 4), (1, 2), (3, 4)]; merge_low: [(0, 4), (1, 3), (2, 4), (1, 2), (3, 4)]; merge_high: [(0, 4), (0, 2), (1, 3), (0, 1), (2, 3)]);
    buffer!(6; wires: [0, 1, 2, 3, 4, 5]; reversed: [5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (0, 2), (1, 3), (1, 2), (0, 4), (1, 5), (2, 4), (3, 5), (1, 2), (3, 4)]; merge_low: [(0, 4), (1, 5), (2, 4), (3, 5), (0, 1), (2, 3), (4, 5)]; merge_high: [(0, 4), (1, 5), (0, 2), (1, 3), (0, 1), (2, 3), (4, 5)]);
    buffer!(7; wires: [0, 1, 2, 3, 4, 5, 6]; reversed: [6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (0, 2), (1, 3), (4, 6), (1, 2), (5, 6), (0, 4), (1, 5), (2, 6), (2, 4), (3, 5), (1, 2), (3, 4), (5, 6)]; merge_low: [(0, 4), (1, 5), (2, 6), (0, 2), (3, 5), (4, 6), (1, 2), (3, 4), (5, 6)]; merge_high: [(0, 4), (1, 5), (2, 6), (0, 2), (1, 3), (4, 6), (0, 1), (2, 3), (4, 5)]);
    buffer!(8; wires: [0, 1, 2, 3, 4, 5, 6, 7]; reversed: [7, 6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (1, 2), (5, 6), (0, 4), (1, 5), (2, 6), (3, 7), (2, 4), (3, 5), (1, 2), (3, 4), (5, 6)]; merge_low: [(0, 4), (1, 5), (2, 6), (3, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 1), (2, 3), (4, 5), (6, 7)]; merge_high: [(0, 4), (1, 5), (2, 6), (3, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 1), (2, 3), (4, 5), (6, 7)]);
    buffer!(9; wires: [0, 1, 2, 3, 4, 5, 6, 7, 8]; reversed: [8, 7, 6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (1, 2), (5, 6), (0, 4), (1, 5), (2, 6), (3, 7), (2, 4), (3, 5), (1, 2), (3, 4), (5, 6), (0, 8), (4, 8), (2, 4), (3, 5), (6, 8), (1, 2), (3, 4), (5, 6), (7, 8)]; merge_low: [(0, 8), (1, 5), (2, 6), (3, 7), (4, 8), (1, 3), (2, 4), (5, 7), (6, 8), (1, 2), (3, 4), (5, 6), (7, 8)]; merge_high: [(0, 8), (0, 4), (1, 5), (2, 6), (3, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 1), (2, 3), (4, 5), (6, 7)]);
    buffer!(10; wires: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; reversed: [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (0, 2), (1, 3), (4, 6), (5, 7), (1, 2), (5, 6), (0, 4), (1, 5), (2, 6), (3, 7), (2, 4), (3, 5), (1, 2), (3, 4), (5, 6), (0, 8), (1, 9), (4, 8), (5, 9), (2, 4), (3, 5), (6, 8), (7, 9), (1, 2), (3, 4), (5, 6), (7, 8)]; merge_low: [(0, 8), (1, 9), (2, 6), (3, 7), (4, 8), (5, 9), (2, 4), (3, 5), (6, 8), (7, 9), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]; merge_high: [(0, 8), (1, 9), (0, 4), (1, 5), (2, 6), (3, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]);
    buffer!(11; wires: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]; reversed: [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (1, 2), (5, 6), (9, 10), (0, 4), (1, 5), (2, 6), (3, 7), (2, 4), (3, 5), (1, 2), (3, 4), (5, 6), (9, 10), (0, 8), (1, 9), (2, 10), (4, 8), (5, 9), (6, 10), (2, 4), (3, 5), (6, 8), (7, 9), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]; merge_low: [(0, 8), (1, 9), (2, 10), (3, 7), (4, 8), (5, 9), (6, 10), (0, 2), (3, 5), (4, 6), (7, 9), (8, 10), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]; merge_high: [(0, 8), (1, 9), (2, 10), (0, 4), (1, 5), (2, 6), (3, 7), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]);
    buffer!(12; wires: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]; reversed: [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (1, 2), (5, 6), (9, 10), (0, 4), (1, 5), (2, 6), (3, 7), (2, 4), (3, 5), (1, 2), (3, 4), (5, 6), (9, 10), (0, 8), (1, 9), (2, 10), (3, 11), (4, 8), (5, 9), (6, 10), (7, 11), (2, 4), (3, 5), (6, 8), (7, 9), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]; merge_low: [(0, 8), (1, 9), (2, 10), (3, 11), (4, 8), (5, 9), (6, 10), (7, 11), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]; merge_high: [(0, 8), (1, 9), (2, 10), (3, 11), (0, 4), (1, 5), (2, 6), (3, 7), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]);
    buffer!(13; wires: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]; reversed: [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (1, 2), (5, 6), (9, 10), (0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (2, 4), (3, 5), (10, 12), (1, 2), (3, 4), (5, 6), (9, 10), (11, 12), (0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (4, 8), (5, 9), (6, 10), (7, 11), (2, 4), (3, 5), (6, 8), (7, 9), (10, 12), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)]; merge_low: [(0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (0, 4), (5, 9), (6, 10), (7, 11), (8, 12), (1, 3), (2, 4), (5, 7), (6, 8), (9, 11), (10, 12), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)]; merge_high: [(0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]);
    buffer!(14; wires: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]; reversed: [13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (1, 2), (5, 6), (9, 10), (0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (9, 13), (2, 4), (3, 5), (10, 12), (11, 13), (1, 2), (3, 4), (5, 6), (9, 10), (11, 12), (0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (5, 13), (4, 8), (5, 9), (6, 10), (7, 11), (2, 4), (3, 5), (6, 8), (7, 9), (10, 12), (11, 13), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)]; merge_low: [(0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (5, 13), (0, 4), (1, 5), (6, 10), (7, 11), (8, 12), (9, 13), (2, 4), (3, 5), (6, 8), (7, 9), (10, 12), (11, 13), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13)]; merge_high: [(0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (5, 13), (0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (9, 13), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13)]);
    buffer!(15; wires: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]; reversed: [14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (12, 14), (1, 2), (5, 6), (9, 10), (13, 14), (0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (9, 13), (10, 14), (2, 4), (3, 5), (10, 12), (11, 13), (1, 2), (3, 4), (5, 6), (9, 10), (11, 12), (13, 14), (0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (5, 13), (6, 14), (4, 8), (5, 9), (6, 10), (7, 11), (2, 4), (3, 5), (6, 8), (7, 9), (10, 12), (11, 13), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14)]; merge_low: [(0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (5, 13), (6, 14), (0, 4), (1, 5), (2, 6), (7, 11), (8, 12), (9, 13), (10, 14), (0, 2), (3, 5), (4, 6), (7, 9), (8, 10), (11, 13), (12, 14), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14)]; merge_high: [(0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (5, 13), (6, 14), (0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (9, 13), (10, 14), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (12, 14), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13)]);
    buffer!(16; wires: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]; reversed: [15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]; sort: [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13), (14, 15), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (12, 14), (13, 15), (1, 2), (5, 6), (9, 10), (13, 14), (0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (9, 13), (10, 14), (11, 15), (2, 4), (3, 5), (10, 12), (11, 13), (1, 2), (3, 4), (5, 6), (9, 10), (11, 12), (13, 14), (0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (5, 13), (6, 14), (7, 15), (4, 8), (5, 9), (6, 10), (7, 11), (2, 4), (3, 5), (6, 8), (7, 9), (10, 12), (11, 13), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14)]; merge_low: [(0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (5, 13), (6, 14), (7, 15), (0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (9, 13), (10, 14), (11, 15), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (12, 14), (13, 15), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13), (14, 15)]; merge_high: [(0, 8), (1, 9), (2, 10), (3, 11), (4, 12), (5, 13), (6, 14), (7, 15), (0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (9, 13), (10, 14), (11, 15), (0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (12, 14), (13, 15), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13), (14, 15)]);
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
    use ndarray::Array2;

    /// A xorshift generator: the tests need no seeded crate.
    fn random(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn buffers_sort_and_merge_every_zero_one_input() {
        // The 0-1 principle, as for the sorting network below.
        fn check<const N: usize>()
        where
            Buffer<Scalar128b, N>: Network<Scalar128b>,
        {
            let simd = Scalar128b;
            let lane = |v| pulp::cast::<_, [f32; 4]>(v)[2];
            let wires = |b: &Buffer<Scalar128b, N>| b.wires.map(lane);
            let ones = |from: usize| Buffer::<Scalar128b, N> {
                simd,
                wires: std::array::from_fn(|i| simd.splat_f32s(f32::from(u8::from(i >= from)))),
            };
            for bits in 0u32..(1 << N) {
                let rows: Vec<Lanes> = (0..N).map(|i| [((bits >> i) & 1) as f32; LANES]).collect();
                let mut run = Buffer::<Scalar128b, N>::load(simd, &rows, 1);
                run.sort();
                assert!(wires(&run).is_sorted(), "N = {N}, {bits:b}");
            }
            for zeros in 0..=N {
                for other in 0..=N {
                    let mut low = ones(zeros);
                    low.keep_lowest(&ones(other));
                    let expected = ones((zeros + other).min(N));
                    assert_eq!(wires(&low), wires(&expected), "N = {N}");
                    let mut high = ones(zeros);
                    high.keep_highest(&ones(other));
                    let expected = ones((zeros + other).saturating_sub(N));
                    assert_eq!(wires(&high), wires(&expected), "N = {N}");
                }
                let (mut low, mut high) = (ones(zeros), ones(zeros));
                low.insert_lowest(simd.splat_f32s(0.0));
                high.insert_highest(simd.splat_f32s(1.0));
                let expected = ones((zeros + 1).min(N));
                assert_eq!(wires(&low), wires(&expected), "N = {N}");
                let expected = ones(zeros.saturating_sub(1));
                assert_eq!(wires(&high), wires(&expected), "N = {N}");
            }
        }
        check::<1>();
        check::<2>();
        check::<3>();
        check::<4>();
        check::<5>();
        check::<6>();
        check::<7>();
        check::<8>();
        check::<9>();
        check::<10>();
        check::<11>();
        check::<12>();
        check::<13>();
        check::<14>();
        check::<15>();
        check::<16>();
    }

    /// The instruction sets this processor runs: the baseline, AVX2 and
    /// AVX-512 (4, 8 and 16 lanes of selection).
    fn instruction_sets() -> Vec<Arch> {
        let mut sets = vec![Arch::Scalar];
        sets.extend(pulp::x86::V3::try_new().map(Arch::V3));
        sets.extend(pulp::x86::V4::try_new().map(Arch::V4));
        sets
    }

    /// The selection against the sorting network on random values with and
    /// without many ties, for every buffer size, `m` below and above it, and
    /// blocks not whole, with every instruction set: the same cuts, so the
    /// same verdicts, and means equal up to the order of the sums.
    #[test]
    fn selection_matches_the_sort() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for m in (1..=40).chain([63, 64, 65, 100]) {
            for trim in 0..=((m - 1) / 2).min(MAX_BUFFER) {
                for levels in [3, 1 << 20] {
                    let d = 3 * LANES + 7;
                    let updates = Array2::from_shape_simple_fn((m, d), || {
                        (random(&mut state) % levels) as f32 - (levels / 2) as f32
                    });
                    let rows = Rows::new(updates.view());
                    let members: Vec<usize> = (0..m).rev().collect();
                    let statistic = Statistic::TrimmedMean;
                    let sort = Method::Sort(odd_even_merge_sort(m));
                    let (sorted, expected) =
                        aggregate_by(&rows, &members, trim, statistic, &sort, Arch::Scalar)
                            .unwrap();
                    let select = match trim {
                        0 => Method::Mean,
                        _ => Method::Select,
                    };
                    for arch in instruction_sets() {
                        let (selected, verdicts) =
                            aggregate_by(&rows, &members, trim, statistic, &select, arch).unwrap();
                        for (j, (&a, &b)) in selected.iter().zip(&sorted).enumerate() {
                            let tolerance = 1e-6 * (1.0 + a.abs().max(b.abs()));
                            assert!(
                                (a - b).abs() <= tolerance,
                                "{arch:?} m {m} trim {trim} coordinate {j}: {a} vs {b}"
                            );
                        }
                        assert_eq!(verdicts, expected, "{arch:?} m = {m}, trim = {trim}");
                    }
                }
            }
        }
    }

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
