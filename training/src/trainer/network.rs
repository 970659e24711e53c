//! The math of a fully connected ReLU network with a softmax cross-entropy
//! head, written once and generic over the float type: the CPU trainer runs it
//! in `f32`, the gradient tests run the very same code in `f64`.
//!
//! Layer `l` has `weight` of shape `[out, in]` (PyTorch's `nn.Linear` order, so
//! parameters map one to one onto a torch model) and `bias` of shape `[out]`.
//! Softmax regression is the network with no hidden layer.

use fedstake_aggregation::{ModelLayout, TensorSpec};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Zip};
use num_traits::Float;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::TrainError;

/// Float types the network math runs in.
pub trait Scalar: Float + ndarray::LinalgScalar + Send + Sync + std::fmt::Debug {}
impl<T: Float + ndarray::LinalgScalar + Send + Sync + std::fmt::Debug> Scalar for T {}

/// Sizes of a fully connected classifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    inputs: usize,
    hidden: Vec<usize>,
    classes: usize,
}

impl Architecture {
    /// Softmax (multinomial logistic) regression.
    pub fn softmax_regression(inputs: usize, classes: usize) -> Result<Self, TrainError> {
        Self::mlp(inputs, Vec::new(), classes)
    }

    /// A multi-layer perceptron with ReLU hidden layers of the given sizes.
    pub fn mlp(inputs: usize, hidden: Vec<usize>, classes: usize) -> Result<Self, TrainError> {
        if inputs == 0 {
            return Err(TrainError::Config(
                "the model needs at least one input feature".into(),
            ));
        }
        if classes < 2 {
            return Err(TrainError::Config(format!(
                "a classifier needs >= 2 classes, got {classes}"
            )));
        }
        if let Some(i) = hidden.iter().position(|&h| h == 0) {
            return Err(TrainError::Config(format!(
                "hidden layer {i} has zero units"
            )));
        }
        Ok(Self {
            inputs,
            hidden,
            classes,
        })
    }

    /// Number of input features.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Hidden layer sizes.
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }

    /// `(in, out)` of each linear layer.
    fn layers(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let sizes: Vec<usize> = std::iter::once(self.inputs)
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(self.classes))
            .collect();
        (0..sizes.len() - 1).map(move |l| (sizes[l], sizes[l + 1]))
    }

    /// The model layout: `layers.{l}.weight` `[out, in]`, `layers.{l}.bias` `[out]`.
    pub fn layout(&self) -> ModelLayout {
        let tensors = self
            .layers()
            .enumerate()
            .flat_map(|(l, (input, output))| {
                [
                    TensorSpec::new(format!("layers.{l}.weight"), [output, input]),
                    TensorSpec::new(format!("layers.{l}.bias"), [output]),
                ]
            })
            .collect();
        ModelLayout::new(tensors).expect("generated tensor names are unique")
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.layers().map(|(i, o)| (i + 1) * o).sum()
    }

    /// Initial parameters, deterministic for `seed`: He-normal weights for
    /// layers followed by ReLU (std `sqrt(2 / fan_in)`), Glorot-uniform for the
    /// output layer (bound `sqrt(6 / (fan_in + fan_out))`), zero biases.
    pub fn init_parameters(&self, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let depth = self.hidden.len() + 1;
        let mut params = Vec::with_capacity(self.num_params());
        for (l, (fan_in, fan_out)) in self.layers().enumerate() {
            if l + 1 < depth {
                let std = (2.0 / fan_in as f32).sqrt();
                let normal = Normal::new(0.0, std).expect("std is finite and positive");
                params.extend((0..fan_in * fan_out).map(|_| normal.sample(&mut rng)));
            } else {
                let bound = (6.0 / (fan_in + fan_out) as f32).sqrt();
                let uniform = Uniform::new(-bound, bound).expect("bound is finite and positive");
                params.extend((0..fan_in * fan_out).map(|_| uniform.sample(&mut rng)));
            }
            params.extend(std::iter::repeat_n(0.0, fan_out));
        }
        params
    }

    /// Weight and bias views of layer `l` in a flat parameter vector.
    fn split<'a, F>(&self, params: &'a [F]) -> Vec<(ArrayView2<'a, F>, ArrayView1<'a, F>)> {
        let mut rest = params;
        self.layers()
            .map(|(input, output)| {
                let (w, tail) = rest.split_at(input * output);
                let (b, tail) = tail.split_at(output);
                rest = tail;
                let w = ArrayView2::from_shape((output, input), w).expect("layer sizes match");
                (w, ArrayView1::from(b))
            })
            .collect()
    }

    /// Mutable weight and bias views of each layer of a flat vector.
    fn split_mut<'a, F>(
        &self,
        params: &'a mut [F],
    ) -> Vec<(ArrayViewMut2<'a, F>, ArrayViewMut1<'a, F>)> {
        let mut rest = params;
        self.layers()
            .map(|(input, output)| {
                let (w, tail) = std::mem::take(&mut rest).split_at_mut(input * output);
                let (b, tail) = tail.split_at_mut(output);
                rest = tail;
                let w = ArrayViewMut2::from_shape((output, input), w).expect("layer sizes match");
                (w, ArrayViewMut1::from(b))
            })
            .collect()
    }

    /// Checks that a batch fits the network.
    pub fn check_batch<F>(
        &self,
        features: &ArrayView2<F>,
        labels: &ArrayView1<u32>,
    ) -> Result<(), TrainError> {
        check_batch(self.inputs, self.classes, features, labels)
    }

    /// Logits of a batch, `[batch, classes]`.
    pub fn logits<F: Scalar>(&self, params: &[F], features: ArrayView2<F>) -> Array2<F> {
        let layers = self.split(params);
        let mut activation: Option<Array2<F>> = None;
        for (l, (w, b)) in layers.iter().enumerate() {
            let input = activation.as_ref().map_or(features.view(), Array2::view);
            let mut z = input.dot(&w.t()) + b;
            if l + 1 < layers.len() {
                z.mapv_inplace(relu);
            }
            activation = Some(z);
        }
        activation.expect("a network has at least one layer")
    }

    /// Mean cross-entropy of a batch and its gradient with respect to every
    /// parameter, written into `grad` (same layout as `params`).
    ///
    /// # Panics
    /// If the batch does not fit (call [`Architecture::check_batch`] first) or
    /// `params`/`grad` do not have [`Architecture::num_params`] values.
    pub fn loss_and_gradient<F: Scalar>(
        &self,
        params: &[F],
        features: ArrayView2<F>,
        labels: ArrayView1<u32>,
        grad: &mut [F],
    ) -> F {
        assert_eq!(params.len(), self.num_params());
        assert_eq!(grad.len(), self.num_params());
        let layers = self.split(params);
        let batch = features.nrows();

        // Forward, keeping every hidden activation for the backward pass.
        let mut hidden: Vec<Array2<F>> = Vec::with_capacity(layers.len() - 1);
        let mut logits = None;
        for (l, (w, b)) in layers.iter().enumerate() {
            let input = if l == 0 {
                features.view()
            } else {
                hidden[l - 1].view()
            };
            let mut z = input.dot(&w.t()) + b;
            if l + 1 < layers.len() {
                z.mapv_inplace(relu);
                hidden.push(z);
            } else {
                logits = Some(z);
            }
        }
        let mut delta = logits.expect("a network has at least one layer");

        // Softmax cross-entropy: delta becomes dLoss/dlogits = (p - onehot) / batch.
        let scale = F::one() / F::from(batch).expect("batch size fits in a float");
        let mut loss = F::zero();
        for (mut row, &label) in delta.rows_mut().into_iter().zip(labels.iter()) {
            let lse = log_sum_exp(row.view());
            loss = loss + lse - row[label as usize];
            row.mapv_inplace(|z| (z - lse).exp() * scale);
            row[label as usize] = row[label as usize] - scale;
        }

        // Backward.
        let mut grads = self.split_mut(grad);
        for l in (0..layers.len()).rev() {
            let input = if l == 0 {
                features.view()
            } else {
                hidden[l - 1].view()
            };
            let (gw, gb) = &mut grads[l];
            general_mat_mul(F::one(), &delta.t(), &input, F::zero(), gw);
            gb.assign(&delta.sum_axis(Axis(0)));
            if l > 0 {
                let mut previous = delta.dot(&layers[l].0);
                Zip::from(&mut previous)
                    .and(&hidden[l - 1])
                    .for_each(|d, &a| {
                        if a <= F::zero() {
                            *d = F::zero();
                        }
                    });
                delta = previous;
            }
        }
        loss * scale
    }

    /// Per-example cross-entropy and whether the arg-max prediction is right.
    pub fn per_example_loss<F: Scalar>(
        logits: ArrayView2<F>,
        labels: ArrayView1<u32>,
    ) -> Array1<(F, bool)> {
        logits
            .rows()
            .into_iter()
            .zip(labels.iter())
            .map(|(row, &label)| {
                let loss = log_sum_exp(row) - row[label as usize];
                let predicted = argmax(row);
                (loss, predicted == label as usize)
            })
            .collect()
    }

    /// Summed cross-entropy of a batch's logits and the number of right
    /// arg-max predictions: what every backend's evaluation adds up.
    pub fn loss_sum_and_correct(logits: ArrayView2<f32>, labels: ArrayView1<u32>) -> (f64, usize) {
        Self::per_example_loss(logits, labels)
            .iter()
            .fold((0.0, 0), |(loss, right), &(l, ok)| {
                (loss + f64::from(l), right + usize::from(ok))
            })
    }
}

/// Checks that a batch fits a classifier with `inputs` features and `classes`
/// classes: matching rows and labels, at least one example, labels in range.
pub(crate) fn check_batch<F>(
    inputs: usize,
    classes: usize,
    features: &ArrayView2<F>,
    labels: &ArrayView1<u32>,
) -> Result<(), TrainError> {
    if features.ncols() != inputs {
        return Err(TrainError::Data(format!(
            "examples have {} features, the model expects {inputs}",
            features.ncols(),
        )));
    }
    if features.nrows() != labels.len() {
        return Err(TrainError::Data(format!(
            "{} examples but {} labels",
            features.nrows(),
            labels.len()
        )));
    }
    if features.nrows() == 0 {
        return Err(TrainError::Data("empty batch".into()));
    }
    if let Some(&label) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(TrainError::Data(format!(
            "label {label} is not below the model's {classes} classes"
        )));
    }
    Ok(())
}

fn relu<F: Float>(x: F) -> F {
    x.max(F::zero())
}

/// `log(sum(exp(z)))`, shifted by the maximum so no term overflows.
fn log_sum_exp<F: Float>(z: ArrayView1<F>) -> F {
    let max = z.iter().copied().fold(F::neg_infinity(), F::max);
    if !max.is_finite() {
        return max;
    }
    max + z
        .iter()
        .map(|&v| (v - max).exp())
        .fold(F::zero(), |a, b| a + b)
        .ln()
}

/// Index of the largest value (the first on ties).
fn argmax<F: Float>(z: ArrayView1<F>) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn log_sum_exp_is_stable_for_large_logits() {
        let z = array![1000.0f32, 1000.0];
        assert!((log_sum_exp(z.view()) - (1000.0 + 2f32.ln())).abs() < 1e-3);
        let z = array![-1000.0f32, -1000.0];
        assert!((log_sum_exp(z.view()) - (-1000.0 + 2f32.ln())).abs() < 1e-3);
    }

    #[test]
    fn layout_matches_torch_linear_order() {
        let arch = Architecture::mlp(4, vec![3], 2).unwrap();
        let names: Vec<String> = arch
            .layout()
            .tensors()
            .iter()
            .map(|t| format!("{t}"))
            .collect();
        assert_eq!(
            names,
            [
                "layers.0.weight[3, 4] f32",
                "layers.0.bias[3] f32",
                "layers.1.weight[2, 3] f32",
                "layers.1.bias[2] f32"
            ]
        );
        assert_eq!(arch.num_params(), arch.layout().num_params());
        assert_eq!(arch.init_parameters(1).len(), 23);
    }

    #[test]
    fn initialization_has_the_intended_scale() {
        let arch = Architecture::mlp(400, vec![300], 10).unwrap();
        let params = arch.init_parameters(7);
        let hidden = &params[..400 * 300];
        let var = hidden.iter().map(|w| w * w).sum::<f32>() / hidden.len() as f32;
        assert!(
            (var - 2.0 / 400.0).abs() < 0.1 * 2.0 / 400.0,
            "He variance {var}"
        );
        let bound = (6.0f32 / 310.0).sqrt();
        let head = &params[400 * 300 + 300..400 * 300 + 300 + 3000];
        assert!(head.iter().all(|w| w.abs() <= bound));
        assert_eq!(params, arch.init_parameters(7));
        assert_ne!(params, arch.init_parameters(8));
    }
}
