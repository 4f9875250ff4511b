//! The all-vs-all contrastive loss and the triplet accuracy metric.
//!
//! Rather than scoring each triplet alone, the loss compares every pair of
//! the 3 x batch embeddings, as the reference kernel does: a pair with the
//! same label is pulled together by its squared distance, a pair with
//! different labels is pushed apart until its distance reaches the margin.

use tch::{Kind, Tensor};

/// The reference kernel's margin.
pub const DEFAULT_MARGIN: f64 = 10.0;

/// Distances below this square root are treated as this, so the gradient of
/// the square root stays finite when two embeddings coincide.
const MIN_SQUARED_DISTANCE: f64 = 1e-12;

/// Mean over all ordered pairs `(i, j)` (including `i == j`) of `d` for the
/// same label and `relu(margin - sqrt(d))^2` otherwise, with `d` the squared
/// Euclidean distance. Half precision inputs are computed in fp32.
///
/// # Shapes
///
/// `embeddings` `[N, E]`, `labels` `[N]` (int64) to a scalar.
pub fn contrastive_loss(embeddings: &Tensor, labels: &Tensor, margin: f64) -> Tensor {
    let xs = at_least_fp32(embeddings);
    let d = squared_distances(&xs);
    let same = labels.unsqueeze(1).eq_tensor(&labels.unsqueeze(0));

    let pull = &d;
    let push = (margin - d.clamp_min(MIN_SQUARED_DISTANCE).sqrt())
        .relu()
        .square();
    pull.where_self(&same, &push).mean(xs.kind())
}

/// Share of triplets whose anchor is closer to the positive than to the
/// negative.
///
/// # Shapes
///
/// `anchors`, `positives`, `negatives` each `[B, E]` to a scalar.
pub fn triplet_accuracy(anchors: &Tensor, positives: &Tensor, negatives: &Tensor) -> Tensor {
    let (a, p, n) = (
        at_least_fp32(anchors),
        at_least_fp32(positives),
        at_least_fp32(negatives),
    );
    let d_positive = (&p - &a)
        .square()
        .sum_dim_intlist([1i64].as_slice(), false, a.kind());
    let d_negative = (&n - &a)
        .square()
        .sum_dim_intlist([1i64].as_slice(), false, a.kind());
    d_positive
        .lt_tensor(&d_negative)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
}

/// Squared Euclidean distance between every pair of rows, exact (no
/// `|a|^2 + |b|^2 - 2ab` cancellation), so the diagonal is exactly zero.
///
/// # Shapes
///
/// `[N, E]` to `[N, N]`.
fn squared_distances(xs: &Tensor) -> Tensor {
    (xs.unsqueeze(1) - xs.unsqueeze(0))
        .square()
        .sum_dim_intlist([2i64].as_slice(), false, xs.kind())
}

fn at_least_fp32(xs: &Tensor) -> Tensor {
    match xs.kind() {
        Kind::Double => xs.shallow_clone(),
        _ => xs.to_kind(Kind::Float),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn tensor(values: &[f64], rows: i64) -> Tensor {
        Tensor::from_slice(values).view([rows, -1])
    }

    fn labels(values: &[i64]) -> Tensor {
        Tensor::from_slice(values)
    }

    #[test]
    fn matches_a_hand_computed_triplet() {
        // a = (0,0), p = (1,0), n = (3,4): same-label pairs (a,p),(p,a) give 1
        // each; (a,n) has distance 5, giving (10-5)^2 = 25 twice; (p,n) has
        // distance sqrt(20), giving (10-sqrt(20))^2 twice; the three diagonal
        // pairs give 0. Mean over 9 pairs.
        let xs = tensor(&[0.0, 0.0, 1.0, 0.0, 3.0, 4.0], 3);
        let loss = contrastive_loss(&xs, &labels(&[0, 0, 1]), 10.0).double_value(&[]);
        let pn = (10.0 - 20f64.sqrt()).powi(2);
        let expected = (2.0 + 50.0 + 2.0 * pn) / 9.0;
        assert!((loss - expected).abs() < 1e-12, "{loss} vs {expected}");
    }

    #[test]
    fn pairs_beyond_the_margin_cost_nothing() {
        let xs = tensor(&[0.0, 0.0, 0.0, 11.0], 2);
        let loss = contrastive_loss(&xs, &labels(&[0, 1]), 10.0).double_value(&[]);
        assert_eq!(loss, 0.0);
    }

    #[test]
    fn coinciding_embeddings_have_a_finite_gradient() {
        let xs = tensor(&[1.0, 2.0, 1.0, 2.0, 1.0, 2.0], 3).set_requires_grad(true);
        let loss = contrastive_loss(&xs, &labels(&[0, 1, 1]), 10.0);
        // (0,1),(1,0),(0,2),(2,0) differ at distance 0: 4 * 100 / 9, less
        // the square root of the distance floor
        assert!((loss.double_value(&[]) - 400.0 / 9.0).abs() < 1e-4);
        loss.backward();
        let grad = xs.grad();
        assert!(grad.isfinite().all().int64_value(&[]) == 1, "{grad}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let values = [
            0.3, -1.2, 2.0, 0.5, 1.1, 0.4, -0.7, 0.9, 2.5, -2.0, 0.1, 0.0,
        ];
        let labels = labels(&[0, 0, 1, 2]);
        let loss_at = |v: &[f64]| contrastive_loss(&tensor(v, 4), &labels, 3.0).double_value(&[]);

        let xs = tensor(&values, 4).set_requires_grad(true);
        contrastive_loss(&xs, &labels, 3.0).backward();
        let grad = Vec::<f64>::try_from(xs.grad().flatten(0, -1)).unwrap();

        let h = 1e-6;
        for i in 0..values.len() {
            let (mut up, mut down) = (values.to_vec(), values.to_vec());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss_at(&up) - loss_at(&down)) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() < 1e-6,
                "element {i}: {numeric} vs {}",
                grad[i]
            );
        }
    }

    #[test]
    fn half_precision_is_computed_in_fp32() {
        let xs = Tensor::randn([6, 4], (Kind::Float, Device::Cpu));
        let l = labels(&[0, 0, 1, 1, 2, 3]);
        let full = contrastive_loss(&xs, &l, 10.0);
        let half = contrastive_loss(&xs.to_kind(Kind::BFloat16), &l, 10.0);
        assert_eq!(half.kind(), Kind::Float);
        assert!((full.double_value(&[]) - half.double_value(&[])).abs() < 0.5);
    }

    #[test]
    fn accuracy_counts_triplets_with_the_positive_closer() {
        let a = tensor(&[0.0, 0.0, 0.0, 0.0], 2);
        let p = tensor(&[1.0, 0.0, 5.0, 0.0], 2);
        let n = tensor(&[2.0, 0.0, 1.0, 0.0], 2);
        assert_eq!(triplet_accuracy(&a, &p, &n).double_value(&[]), 0.5);
    }
}
