//! The embedding head: from a backbone's feature map to one embedding per
//! crop.
//!
//! Average and max pooling are concatenated (the average sees the whole
//! fluke, the max its most distinctive marks), then a hidden layer with
//! batch norm and a linear projection give the embedding. The head does not
//! normalise the embedding; distances are the loss's and the index's
//! business.

use tch::nn;
use tch::Tensor;

use super::ModelConfig;

/// Pooling, hidden layer and projection to the embedding.
#[derive(Debug)]
pub struct Head {
    hidden: nn::Linear,
    bn: nn::BatchNorm,
    embedding: nn::Linear,
    dropout: f64,
}

impl Head {
    /// Builds `hidden`, `bn` and `embedding` under `vs`, for a feature map
    /// with `in_channels` channels.
    pub fn new(vs: &nn::Path, in_channels: i64, config: &ModelConfig) -> Self {
        let linear = nn::LinearConfig::default();
        let hidden = nn::linear(vs / "hidden", 2 * in_channels, config.hidden_size, linear);
        let bn_config = nn::BatchNormConfig {
            ws_init: nn::Init::Const(1.0),
            ..Default::default()
        };
        let bn = nn::batch_norm1d(vs / "bn", config.hidden_size, bn_config);
        let embedding = nn::linear(
            vs / "embedding",
            config.hidden_size,
            config.embedding_size,
            linear,
        );
        Head {
            hidden,
            bn,
            embedding,
            dropout: config.dropout,
        }
    }

    /// # Shapes
    /// - `features`: `[N, C, h, w]`, any `h, w >= 1`
    /// - returns `[N, embedding_size]`
    pub fn forward_t(&self, features: &Tensor, train: bool) -> Tensor {
        pool(features)
            .dropout(self.dropout, train)
            .apply(&self.hidden)
            .relu()
            .apply_t(&self.bn, train)
            .dropout(self.dropout, train)
            .apply(&self.embedding)
    }
}

/// Average and max over the whole feature map, side by side.
///
/// # Shapes
/// - `features`: `[N, C, h, w]`
/// - returns `[N, 2 * C]`: the C averages, then the C maxima
fn pool(features: &Tensor) -> Tensor {
    let average = features.adaptive_avg_pool2d([1, 1]);
    let (maximum, _) = features.adaptive_max_pool2d([1, 1]);
    Tensor::cat(&[average, maximum], 1).flatten(1, -1)
}

#[cfg(test)]
mod tests {
    use tch::{nn, Device, Kind};

    use super::*;

    #[test]
    fn pool_puts_averages_before_maxima() {
        // Two channels over a 2x2 map: [1, 2, 3, 6] and [-1, -2, -3, -4].
        let features =
            Tensor::from_slice(&[1.0f32, 2.0, 3.0, 6.0, -1.0, -2.0, -3.0, -4.0]).view([1, 2, 2, 2]);

        let pooled = Vec::<f32>::try_from(pool(&features).flatten(0, -1)).unwrap();

        assert_eq!(pooled, [3.0, -2.5, 6.0, -1.0]);
    }

    #[test]
    fn head_embeds_any_feature_map_size() {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = ModelConfig {
            embedding_size: 8,
            hidden_size: 16,
            ..ModelConfig::default()
        };
        let head = Head::new(&vs.root(), 4, &config);
        let small = Tensor::randn([2, 4, 1, 1], (Kind::Float, Device::Cpu));
        let wide = Tensor::randn([2, 4, 3, 9], (Kind::Float, Device::Cpu));

        assert_eq!(head.forward_t(&small, true).size(), [2, 8]);
        assert_eq!(head.forward_t(&wide, false).size(), [2, 8]);
    }
}
