//! MAP@5, the competition's score, and the share of queries called
//! `new_whale` first.
//!
//! A prediction is a list of labels, best first; only the first five count.
//! `new_whale` is a label like any other here. This module scores label
//! lists; producing them is [`crate::predict`]'s job.

use crate::data::NEW_WHALE;

/// How many guesses MAP@5 reads.
const N_GUESSES: usize = 5;

/// What is wrong with the inputs of a score over many queries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("no queries to score")]
    NoQueries,
    #[error("{n_predictions} predictions but {n_truths} true labels")]
    LengthMismatch {
        n_predictions: usize,
        n_truths: usize,
    },
}

/// Precision at the true label: `1 / rank` (rank counted from 1) of its
/// first appearance among the first five labels, 0 if it is not there.
pub fn average_precision_at_5<S: AsRef<str>>(predicted: &[S], truth: &str) -> f64 {
    predicted
        .iter()
        .take(N_GUESSES)
        .position(|label| label.as_ref() == truth)
        .map_or(0.0, |rank0| 1.0 / (rank0 + 1) as f64)
}

/// Mean of [`average_precision_at_5`] over queries; `predictions[i]` is
/// scored against `truths[i]`.
///
/// # Errors
/// No queries, or different numbers of predictions and true labels.
pub fn map_at_5<P, S, T>(predictions: &[P], truths: &[T]) -> Result<f64, MetricsError>
where
    P: AsRef<[S]>,
    S: AsRef<str>,
    T: AsRef<str>,
{
    if predictions.len() != truths.len() {
        return Err(MetricsError::LengthMismatch {
            n_predictions: predictions.len(),
            n_truths: truths.len(),
        });
    }
    if predictions.is_empty() {
        return Err(MetricsError::NoQueries);
    }

    let total: f64 = predictions
        .iter()
        .zip(truths)
        .map(|(predicted, truth)| average_precision_at_5(predicted.as_ref(), truth.as_ref()))
        .sum();
    Ok(total / predictions.len() as f64)
}

/// Share of predictions whose first label is `new_whale`; an empty
/// prediction counts as not.
///
/// # Errors
/// No predictions.
pub fn new_whale_first_share<P, S>(predictions: &[P]) -> Result<f64, MetricsError>
where
    P: AsRef<[S]>,
    S: AsRef<str>,
{
    if predictions.is_empty() {
        return Err(MetricsError::NoQueries);
    }
    let n_first = predictions
        .iter()
        .filter(|p| {
            p.as_ref()
                .first()
                .is_some_and(|label| label.as_ref() == NEW_WHALE)
        })
        .count();
    Ok(n_first as f64 / predictions.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_is_one_over_the_rank_of_the_first_match() {
        let predicted = ["a", "b", "c", "d", "e", "f"];
        assert_eq!(average_precision_at_5(&predicted, "a"), 1.0);
        assert_eq!(average_precision_at_5(&predicted, "c"), 1.0 / 3.0);
        assert_eq!(average_precision_at_5(&predicted, "e"), 0.2);
        assert_eq!(average_precision_at_5(&predicted, "f"), 0.0);
        assert_eq!(average_precision_at_5(&predicted, "z"), 0.0);
        assert_eq!(
            average_precision_at_5(&["b", "b", "a", "a"], "a"),
            1.0 / 3.0
        );
        assert_eq!(average_precision_at_5::<&str>(&[], "a"), 0.0);
    }

    #[test]
    fn new_whale_is_scored_like_any_label() {
        let predicted = vec!["w_1".to_string(), NEW_WHALE.to_string()];
        assert_eq!(average_precision_at_5(&predicted, NEW_WHALE), 0.5);
    }

    /// (1/2 + 1/2 + 0 + 1) / 4 = 1/2.
    #[test]
    fn map_is_the_mean_over_queries() {
        let predictions = vec![
            vec!["a", "b"],
            vec!["c", NEW_WHALE, "d"],
            vec!["x"],
            vec![NEW_WHALE],
        ];
        let truths = ["b", NEW_WHALE, "y", NEW_WHALE];
        assert_eq!(map_at_5(&predictions, &truths), Ok(0.5));
    }

    #[test]
    fn map_refuses_mismatched_or_empty_inputs() {
        let predictions = vec![vec!["a"]];
        assert_eq!(
            map_at_5(&predictions, &["a", "b"]),
            Err(MetricsError::LengthMismatch {
                n_predictions: 1,
                n_truths: 2
            })
        );
        let none: Vec<Vec<&str>> = Vec::new();
        assert_eq!(
            map_at_5::<_, &str, &str>(&none, &[]),
            Err(MetricsError::NoQueries)
        );
        assert_eq!(new_whale_first_share(&none), Err(MetricsError::NoQueries));
    }

    #[test]
    fn new_whale_first_share_counts_only_first_places() {
        let predictions = vec![
            vec![NEW_WHALE, "a"],
            vec!["a", NEW_WHALE],
            vec![],
            vec![NEW_WHALE],
        ];
        assert_eq!(new_whale_first_share(&predictions), Ok(0.5));
    }
}
