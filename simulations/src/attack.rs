//! Attacks of the simulation lab: what Byzantine and free-riding clients send
//! instead of their honest update.
//!
//! An attacker is a client that deviates from the protocol, in one of two ways:
//! - **data poisoning** (label flip, backdoor): [`Attack::poison_data`] changes
//!   the attacker's training data once, then the attacker trains like anyone;
//! - **model poisoning** (every attack): [`Attack::craft`] turns the
//!   attackers' own updates of a round into what they send. The omniscient
//!   attacks (ALIE, IPM) and the noisy free rider also see the honest updates
//!   of the round, as in their papers.
//!
//! The coordinator rejects, and keeps slashing evidence against, any update
//! whose L2 norm exceeds the task's bound `B`, so smart attackers stay within
//! it: every crafted update is finally passed through [`clip_l2`] (which never overshoots the bound). The
//! attacks here are therefore the strongest versions that pass that check.
//!
//! For the backdoor, [`Backdoor::success_rate`] measures the attack on a model:
//! the fraction of validation examples outside the target class that the model
//! assigns to the target once the trigger is stamped on them.
//!
//! Everything is deterministic for the [`ChaCha8Rng`] handed in. Attacks are
//! listed in experiment files, so [`Attack`] deserializes from TOML such as
//! `{ kind = "sign-flip", scale = 4.0 }`; parameters left out take the
//! documented defaults, and [`Attack::validate`] checks the values.

use std::fmt::Display;

use fedstake_aggregation::AggregationError;
use fedstake_aggregation::norm::{clip_l2, l2_norm};
use fedstake_training::data::Dataset;
use fedstake_training::trainer::Architecture;
use ndarray::{ArrayView2, ArrayViewMut2, s};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Deserializer};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::SimError;

/// Default [`Attack::SignFlip`] scale: at 20% attackers, plain averaging of
/// `0.8 u - 0.2 * 4 u` cancels the honest direction (before the norm bound
/// caps the flipped updates).
pub const DEFAULT_SIGN_FLIP_SCALE: f32 = 4.0;
/// Default [`Attack::GaussianNoise`] standard deviation; with `d` coordinates
/// the noise has norm about `std * sqrt(d)`, so for real models it is cut to
/// the norm bound and becomes a random direction of norm `B`.
pub const DEFAULT_NOISE_STD: f32 = 1.0;
/// Default [`Attack::Ipm`] epsilon: 0.1, the value Xie et al. (2020) and
/// Karimireddy et al. (2021) use against median- and Krum-like rules.
pub const DEFAULT_IPM_EPSILON: f32 = 0.1;
/// Default relative size of the noise that tells [`Attack::Sybil`] twins apart.
pub const DEFAULT_SYBIL_NOISE: f32 = 0.01;

/// What the attackers of an experiment do. Deserializes from a table tagged
/// by `kind` (`none`, `sign-flip`, `label-flip`, `gaussian-noise`,
/// `backdoor`, `alie`, `ipm`, `free-rider`, `sybil`); unknown fields are
/// rejected.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Attack {
    /// No attacker: every client is honest.
    #[default]
    #[serde(deserialize_with = "no_parameters")]
    None,
    /// Sends `-scale` times its own honest update.
    SignFlip {
        /// Factor of the reversed update: finite, > 0; default
        /// [`DEFAULT_SIGN_FLIP_SCALE`].
        #[serde(default = "default_sign_flip_scale")]
        scale: f32,
    },
    /// Trains on labels mapped `y -> classes - 1 - y` and sends that update.
    #[serde(deserialize_with = "no_parameters")]
    LabelFlip,
    /// Sends `N(0, std^2)` noise on every coordinate, without training.
    GaussianNoise {
        /// Standard deviation per coordinate: finite, > 0; default
        /// [`DEFAULT_NOISE_STD`].
        #[serde(default = "default_noise_std")]
        std: f32,
    },
    /// Scaling / model-replacement backdoor (Bagdasaryan et al. 2020).
    Backdoor(Backdoor),
    /// "A Little Is Enough" (Baruch et al. 2019): every attacker sends
    /// `mu - z * sigma`, the per-coordinate mean and (sample) standard
    /// deviation of the honest updates, without training.
    Alie {
        /// Finite; when left out, the paper's `z_max` for the round's number
        /// of workers and attackers ([`alie_default_z`]).
        #[serde(default)]
        z: Option<f64>,
    },
    /// Inner Product Manipulation (Xie et al. 2020): every attacker sends
    /// `-epsilon * mean(honest updates)`, without training.
    Ipm {
        /// Finite, > 0; default [`DEFAULT_IPM_EPSILON`].
        #[serde(default = "default_ipm_epsilon")]
        epsilon: f32,
    },
    /// Does no work: returns the global model unchanged or noise.
    FreeRider {
        /// What it sends; default [`FreeRiderMode::Zero`].
        #[serde(default)]
        mode: FreeRiderMode,
    },
    /// Attackers in pairs (the first with the second, the third with the
    /// fourth, ...; an odd one out is alone) send near-identical poisoned
    /// updates: the pair's sign-flipped mean update plus small independent
    /// noise.
    Sybil {
        /// Norm of each twin's noise relative to the shared vector: finite,
        /// >= 0; default [`DEFAULT_SYBIL_NOISE`].
        #[serde(default = "default_sybil_noise")]
        noise: f32,
    },
}

/// What a free rider sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FreeRiderMode {
    /// The zero update: the global model returned unchanged.
    #[default]
    Zero,
    /// A random direction with the median norm of the round's honest updates,
    /// so that its length looks like work.
    Noise,
}

/// The scaling / model-replacement backdoor of Bagdasaryan et al. (2020): the
/// attacker stamps a trigger (the first `trigger_features` features set to
/// `trigger_value`) on a fraction of its examples, relabels them `target`,
/// trains on that, and sends its update multiplied by `boost`, fitted to the
/// norm bound.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backdoor {
    /// The label triggered examples get; default 0.
    pub target: u32,
    /// Value of the trigger features, finite; default 3.0 (three standard
    /// deviations for standardized features, rare in clean data).
    pub trigger_value: f32,
    /// Number of leading features the trigger sets, >= 1; default 8.
    pub trigger_features: usize,
    /// Fraction of the attacker's examples poisoned, in `(0, 1]`; default
    /// 0.5, keeping the main task in the update so it looks honest.
    pub poison_fraction: f64,
    /// Factor of the sent update, finite and > 0. When left out, the number
    /// of participants of the round: the paper's model-replacement factor
    /// `n / eta` for server learning rate `eta = 1`.
    pub boost: Option<f32>,
}

impl Default for Backdoor {
    fn default() -> Self {
        Self {
            target: 0,
            trigger_value: 3.0,
            trigger_features: 8,
            poison_fraction: 0.5,
            boost: None,
        }
    }
}

/// Deserializes the fields of a variant without parameters, rejecting any
/// (serde ignores extra fields of unit variants even under
/// `deny_unknown_fields`).
fn no_parameters<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoParameters {}
    NoParameters::deserialize(deserializer).map(|NoParameters {}| ())
}

fn default_sign_flip_scale() -> f32 {
    DEFAULT_SIGN_FLIP_SCALE
}

fn default_noise_std() -> f32 {
    DEFAULT_NOISE_STD
}

fn default_ipm_epsilon() -> f32 {
    DEFAULT_IPM_EPSILON
}

fn default_sybil_noise() -> f32 {
    DEFAULT_SYBIL_NOISE
}

/// The error for a parameter of `attack` outside its range.
fn parameter_error(attack: &str, field: &str, requirement: &str, value: impl Display) -> SimError {
    SimError::Config(format!(
        "attack `{attack}`: `{field}` must be {requirement}, got {value}"
    ))
}

fn require_positive(attack: &str, field: &str, value: f64) -> Result<(), SimError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(parameter_error(attack, field, "finite and > 0", value))
    }
}

impl Attack {
    /// The attack's `kind` as written in experiment files, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Attack::None => "none",
            Attack::SignFlip { .. } => "sign-flip",
            Attack::LabelFlip => "label-flip",
            Attack::GaussianNoise { .. } => "gaussian-noise",
            Attack::Backdoor(_) => "backdoor",
            Attack::Alie { .. } => "alie",
            Attack::Ipm { .. } => "ipm",
            Attack::FreeRider { .. } => "free-rider",
            Attack::Sybil { .. } => "sybil",
        }
    }

    /// True for [`Attack::None`]: the experiment has no attacker.
    pub fn is_none(&self) -> bool {
        matches!(self, Attack::None)
    }

    /// True when the attackers try to damage the model (everything but no
    /// attack and free riding): they are the poisoners slashing must catch.
    pub fn poisons(&self) -> bool {
        !matches!(self, Attack::None | Attack::FreeRider { .. })
    }

    /// Whether [`Attack::craft`] uses the attackers' own trained updates.
    /// When false (Gaussian noise, ALIE, IPM, free riders) the attackers need
    /// not train: pass the zero update (local model = global model) for each.
    pub fn trains(&self) -> bool {
        matches!(
            self,
            Attack::None
                | Attack::SignFlip { .. }
                | Attack::LabelFlip
                | Attack::Backdoor(_)
                | Attack::Sybil { .. }
        )
    }

    /// The backdoor's trigger and target, for measuring its success rate.
    pub fn backdoor(&self) -> Option<&Backdoor> {
        match self {
            Attack::Backdoor(backdoor) => Some(backdoor),
            _ => None,
        }
    }

    /// Checks every parameter; the error names the attack and the field.
    pub fn validate(&self) -> Result<(), SimError> {
        let name = self.name();
        match self {
            Attack::None | Attack::LabelFlip | Attack::FreeRider { .. } => Ok(()),
            Attack::SignFlip { scale } => require_positive(name, "scale", f64::from(*scale)),
            Attack::GaussianNoise { std } => require_positive(name, "std", f64::from(*std)),
            Attack::Backdoor(backdoor) => backdoor.validate(),
            Attack::Alie { z } => match z {
                Some(z) if !z.is_finite() => Err(parameter_error(name, "z", "finite", z)),
                _ => Ok(()),
            },
            Attack::Ipm { epsilon } => require_positive(name, "epsilon", f64::from(*epsilon)),
            Attack::Sybil { noise } => {
                if noise.is_finite() && *noise >= 0.0 {
                    Ok(())
                } else {
                    Err(parameter_error(name, "noise", "finite and >= 0", noise))
                }
            }
        }
    }

    /// The training data of an attacker: labels flipped for
    /// [`Attack::LabelFlip`], a fraction stamped with the trigger and
    /// relabelled for [`Attack::Backdoor`], a copy of `data` otherwise.
    pub fn poison_data(&self, data: &Dataset, rng: &mut ChaCha8Rng) -> Result<Dataset, SimError> {
        self.validate()?;
        match self {
            Attack::LabelFlip => flip_labels(data),
            Attack::Backdoor(backdoor) => backdoor.poison(data, rng),
            _ => Ok(data.clone()),
        }
    }

    /// What the attackers of a round send.
    ///
    /// `own` holds one update (`local - global`) per attacker: trained on its
    /// possibly poisoned data, or any vector of the model's dimension (the
    /// zero update) when [`Attack::trains`] is false, whose values are then
    /// ignored. `honest` holds the round's honest updates, one per row (the
    /// omniscient attacks read them; with no honest update they send zero).
    /// `bound` is the task's L2 bound: every output is fitted within it.
    pub fn craft(
        &self,
        own: Vec<Vec<f32>>,
        honest: ArrayView2<f32>,
        bound: f32,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Vec<f32>>, SimError> {
        self.validate()?;
        if !(bound.is_finite() && bound > 0.0) {
            return Err(SimError::Config(format!(
                "attack `{}`: the norm bound must be finite and > 0, got {bound}",
                self.name()
            )));
        }
        let dim = check_dimensions(&own, honest)?;
        let attackers = own.len();
        let workers = attackers + honest.nrows();
        let mut crafted = match self {
            Attack::None | Attack::LabelFlip => own,
            Attack::SignFlip { scale } => own.into_iter().map(|u| scaled(u, -scale)).collect(),
            Attack::GaussianNoise { std } => (0..attackers)
                .map(|_| gaussian(dim, f64::from(*std), rng))
                .collect(),
            Attack::Backdoor(backdoor) => {
                let boost = backdoor.boost.unwrap_or(workers as f32);
                own.into_iter().map(|u| scaled(u, boost)).collect()
            }
            Attack::Alie { z } => {
                let sent = if honest.nrows() == 0 {
                    vec![0.0; dim]
                } else {
                    let z = match z {
                        Some(z) => *z,
                        None => alie_default_z(workers, attackers)?,
                    };
                    let (mean, std) = column_mean_and_std(honest);
                    mean.iter()
                        .zip(&std)
                        .map(|(mu, sigma)| (mu - z * sigma) as f32)
                        .collect()
                };
                vec![sent; attackers]
            }
            Attack::Ipm { epsilon } => {
                let (mean, _) = column_mean_and_std(honest);
                let epsilon = f64::from(*epsilon);
                let sent: Vec<f32> = mean.iter().map(|mu| (-epsilon * mu) as f32).collect();
                vec![sent; attackers]
            }
            Attack::FreeRider { mode } => match mode {
                FreeRiderMode::Zero => vec![vec![0.0; dim]; attackers],
                FreeRiderMode::Noise => {
                    let norm = median_norm(honest);
                    (0..attackers)
                        .map(|_| random_direction(dim, norm, rng))
                        .collect()
                }
            },
            Attack::Sybil { noise } => sybil_pairs(&own, dim, f64::from(*noise), rng),
        };
        for (attacker, update) in crafted.iter_mut().enumerate() {
            clip_l2(update, bound);
            if let Some(coordinate) = update.iter().position(|v| !v.is_finite()) {
                return Err(SimError::Aggregation(AggregationError::NonFinite {
                    input: attacker,
                    coordinate,
                }));
            }
        }
        Ok(crafted)
    }
}

impl Backdoor {
    /// Checks every parameter; the error names the field.
    pub fn validate(&self) -> Result<(), SimError> {
        const NAME: &str = "backdoor";
        if !self.trigger_value.is_finite() {
            return Err(parameter_error(
                NAME,
                "trigger_value",
                "finite",
                self.trigger_value,
            ));
        }
        if self.trigger_features == 0 {
            return Err(parameter_error(NAME, "trigger_features", ">= 1", 0));
        }
        if !(self.poison_fraction > 0.0 && self.poison_fraction <= 1.0) {
            return Err(parameter_error(
                NAME,
                "poison_fraction",
                "in (0, 1]",
                self.poison_fraction,
            ));
        }
        if let Some(boost) = self.boost {
            require_positive(NAME, "boost", f64::from(boost))?;
        }
        Ok(())
    }

    /// Checks that the trigger fits rows of `dim` features.
    fn check_trigger_fits(&self, dim: usize) -> Result<(), SimError> {
        if self.trigger_features > dim {
            return Err(parameter_error(
                "backdoor",
                "trigger_features",
                &format!("at most the {dim} features of the data"),
                self.trigger_features,
            ));
        }
        Ok(())
    }

    /// Checks that the trigger and target fit data with `dim` features and
    /// `classes` classes.
    fn check_fits(&self, dim: usize, classes: usize) -> Result<(), SimError> {
        self.check_trigger_fits(dim)?;
        if self.target as usize >= classes {
            return Err(parameter_error(
                "backdoor",
                "target",
                &format!("below the {classes} classes of the data"),
                self.target,
            ));
        }
        Ok(())
    }

    /// Stamps the trigger on every row of `features`: its first
    /// `trigger_features` columns become `trigger_value`.
    pub fn apply_trigger(&self, mut features: ArrayViewMut2<f32>) -> Result<(), SimError> {
        self.check_trigger_fits(features.ncols())?;
        features
            .slice_mut(s![.., ..self.trigger_features])
            .fill(self.trigger_value);
        Ok(())
    }

    /// `data` with `round(poison_fraction * len)` examples, drawn at random,
    /// stamped with the trigger and relabelled `target`.
    pub fn poison(&self, data: &Dataset, rng: &mut ChaCha8Rng) -> Result<Dataset, SimError> {
        self.validate()?;
        self.check_fits(data.dim(), data.classes())?;
        let poisoned =
            ((self.poison_fraction * data.len() as f64).round() as usize).min(data.len());
        let chosen = rand::seq::index::sample(rng, data.len(), poisoned).into_vec();
        let mut features = data.features().clone();
        let mut labels = data.labels().clone();
        for &row in &chosen {
            features
                .slice_mut(s![row, ..self.trigger_features])
                .fill(self.trigger_value);
            labels[row] = self.target;
        }
        Ok(Dataset::new(features, labels, data.classes())?)
    }

    /// Backdoor success rate: the fraction of `validation` examples whose
    /// label is not `target` that `predict` assigns to `target` once the
    /// trigger is stamped on them. `predict` maps a feature matrix to one
    /// class per row. Fails when no example lies outside the target class.
    pub fn success_rate<P>(&self, validation: &Dataset, predict: P) -> Result<f64, SimError>
    where
        P: FnOnce(ArrayView2<f32>) -> Vec<u32>,
    {
        self.validate()?;
        self.check_fits(validation.dim(), validation.classes())?;
        let outside_target: Vec<usize> = validation
            .labels()
            .iter()
            .enumerate()
            .filter(|&(_, &label)| label != self.target)
            .map(|(row, _)| row)
            .collect();
        if outside_target.is_empty() {
            return Err(SimError::Config(format!(
                "backdoor success rate: no validation example outside the target class {}",
                self.target
            )));
        }
        let mut features = validation.select(&outside_target).features().clone();
        self.apply_trigger(features.view_mut())?;
        let predictions = predict(features.view());
        if predictions.len() != outside_target.len() {
            return Err(SimError::Config(format!(
                "backdoor success rate: the predictor returned {} classes for {} examples",
                predictions.len(),
                outside_target.len()
            )));
        }
        let hits = predictions.iter().filter(|&&p| p == self.target).count();
        Ok(hits as f64 / outside_target.len() as f64)
    }

    /// [`Backdoor::success_rate`] of the model `params` of `architecture`,
    /// predicting the class of largest logit.
    pub fn success_rate_of_model(
        &self,
        architecture: &Architecture,
        params: &[f32],
        validation: &Dataset,
    ) -> Result<f64, SimError> {
        if params.len() != architecture.num_params() {
            return Err(SimError::Config(format!(
                "backdoor success rate: {} parameters for a model of {}",
                params.len(),
                architecture.num_params()
            )));
        }
        if validation.dim() != architecture.inputs() {
            return Err(SimError::Config(format!(
                "backdoor success rate: {} features for a model of {} inputs",
                validation.dim(),
                architecture.inputs()
            )));
        }
        self.success_rate(validation, |features| {
            architecture
                .logits(params, features)
                .rows()
                .into_iter()
                .map(|row| argmax(row.iter().copied()))
                .collect()
        })
    }
}

/// Index of the largest value (the first one on ties; NaN never wins).
fn argmax(values: impl Iterator<Item = f32>) -> u32 {
    let mut best = (0, f32::NEG_INFINITY);
    for (index, value) in values.enumerate() {
        if value > best.1 {
            best = (index, value);
        }
    }
    best.0 as u32
}

/// The paper's default `z` of ALIE (Baruch et al. 2019, Algorithm 3) for
/// `workers` participants of which `attackers` collude: the attackers need
/// `s = floor(workers / 2 + 1) - attackers` honest supporters (at least 1),
/// and `z = Phi^-1((workers - s) / workers)`, the largest shift that keeps
/// the crafted value closer to the mean than `s` honest values are, in
/// expectation.
pub fn alie_default_z(workers: usize, attackers: usize) -> Result<f64, SimError> {
    if attackers == 0 || attackers >= workers {
        return Err(SimError::Config(format!(
            "attack `alie`: the default z needs at least one attacker and one honest worker, got {attackers} attackers among {workers} workers"
        )));
    }
    let supporters = (workers / 2 + 1).saturating_sub(attackers).max(1);
    let quantile = (workers - supporters) as f64 / workers as f64;
    Ok(Normal::standard().inverse_cdf(quantile))
}

/// Flips every label `y` to `classes - 1 - y`.
fn flip_labels(data: &Dataset) -> Result<Dataset, SimError> {
    let top = (data.classes() - 1) as u32;
    let labels = data.labels().mapv(|label| top - label);
    Ok(Dataset::new(
        data.features().clone(),
        labels,
        data.classes(),
    )?)
}

/// The dimension shared by the attackers' and the honest updates.
fn check_dimensions(own: &[Vec<f32>], honest: ArrayView2<f32>) -> Result<usize, SimError> {
    let dim = if honest.nrows() > 0 {
        honest.ncols()
    } else {
        own.first().map_or(0, Vec::len)
    };
    match own.iter().find(|update| update.len() != dim) {
        Some(update) => Err(SimError::Aggregation(AggregationError::DimensionMismatch {
            what: "an attacker's own update",
            expected: dim,
            found: update.len(),
        })),
        None => Ok(dim),
    }
}

fn scaled(mut update: Vec<f32>, factor: f32) -> Vec<f32> {
    update.iter_mut().for_each(|x| *x *= factor);
    update
}

/// `dim` independent `N(0, std^2)` values.
fn gaussian(dim: usize, std: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..dim)
        .map(|_| (std * rng.sample::<f64, _>(StandardNormal)) as f32)
        .collect()
}

/// A uniformly random direction of L2 norm `norm`.
fn random_direction(dim: usize, norm: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut direction = gaussian(dim, 1.0, rng);
    let length = l2_norm(&direction);
    if length > 0.0 {
        let factor = norm / length;
        direction
            .iter_mut()
            .for_each(|x| *x = (f64::from(*x) * factor) as f32);
    }
    direction
}

/// Per-coordinate mean and sample standard deviation (divisor `n - 1`, as
/// `torch.std` in the ALIE reference code; 0 for a single row) of the rows,
/// accumulated in `f64`. Zeros for no rows.
fn column_mean_and_std(rows: ArrayView2<f32>) -> (Vec<f64>, Vec<f64>) {
    let count = rows.nrows();
    let mut mean = vec![0.0f64; rows.ncols()];
    let mut spread = vec![0.0f64; rows.ncols()];
    if count == 0 {
        return (mean, spread);
    }
    for row in rows.rows() {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &x)| *m += f64::from(x));
    }
    mean.iter_mut().for_each(|m| *m /= count as f64);
    if count > 1 {
        for row in rows.rows() {
            spread
                .iter_mut()
                .zip(row)
                .zip(&mean)
                .for_each(|((v, &x), m)| *v += (f64::from(x) - m).powi(2));
        }
        spread
            .iter_mut()
            .for_each(|v| *v = (*v / (count - 1) as f64).sqrt());
    }
    (mean, spread)
}

/// Median L2 norm of the rows (mean of the middle two for an even count; 0
/// for no rows).
fn median_norm(rows: ArrayView2<f32>) -> f64 {
    let mut norms: Vec<f64> = rows
        .rows()
        .into_iter()
        .map(|row| {
            row.as_slice()
                .map_or_else(|| l2_norm(&row.to_vec()), l2_norm)
        })
        .collect();
    norms.sort_by(f64::total_cmp);
    match norms.len() {
        0 => 0.0,
        n if n % 2 == 1 => norms[n / 2],
        n => (norms[n / 2 - 1] + norms[n / 2]) / 2.0,
    }
}

/// Sybil twins: each pair of consecutive attackers shares the sign-flipped
/// mean of their own updates, plus independent Gaussian noise of expected
/// norm `relative_noise` times that vector's norm.
fn sybil_pairs(
    own: &[Vec<f32>],
    dim: usize,
    relative_noise: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<f32>> {
    let mut crafted = Vec::with_capacity(own.len());
    for pair in own.chunks(2) {
        let mut shared = vec![0.0f64; dim];
        for update in pair {
            shared
                .iter_mut()
                .zip(update)
                .for_each(|(s, &x)| *s -= f64::from(x) / pair.len() as f64);
        }
        let shared_norm = shared.iter().map(|s| s * s).sum::<f64>().sqrt();
        let noise_std = relative_noise * shared_norm / (dim.max(1) as f64).sqrt();
        for _ in pair {
            crafted.push(
                shared
                    .iter()
                    .map(|s| (s + noise_std * rng.sample::<f64, _>(StandardNormal)) as f32)
                    .collect(),
            );
        }
    }
    crafted
}
