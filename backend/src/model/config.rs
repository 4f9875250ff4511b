//! What the embedding network is made of: the backbone and the sizes of the
//! head and of the input crops.
//!
//! The config is saved as `model.json` beside the weights, and everything
//! that loads the weights rebuilds the network from it. It holds no weights
//! and builds nothing itself; see [`super::EmbeddingNet`].

use serde::{Deserialize, Serialize};

/// The convolutional network that turns a crop into a feature map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Backbone {
    /// ResNeXt-50 32x4d, torchvision layout (2048 feature channels).
    Resnext50,
    /// ResNet-34, torchvision layout (512 feature channels).
    Resnet34,
    /// EfficientNet-Lite0, lukemelas layout (1280 feature channels).
    EfficientnetLite0,
}

impl Backbone {
    /// All backbones, for tests and help texts.
    pub const ALL: [Backbone; 3] = [
        Backbone::Resnext50,
        Backbone::Resnet34,
        Backbone::EfficientnetLite0,
    ];

    /// The stem of the ImageNet weights file, `<name>.safetensors`.
    pub fn weights_name(self) -> &'static str {
        match self {
            Backbone::Resnext50 => "resnext50_32x4d",
            Backbone::Resnet34 => "resnet34",
            Backbone::EfficientnetLite0 => "efficientnet_lite0",
        }
    }

    /// Channels of the feature map the backbone hands to the head.
    pub fn feature_channels(self) -> i64 {
        match self {
            Backbone::Resnext50 => 2048,
            Backbone::Resnet34 => 512,
            Backbone::EfficientnetLite0 => 1280,
        }
    }
}

/// The shape of the embedding network, saved beside its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub backbone: Backbone,
    /// Length of the embedding vector.
    pub embedding_size: i64,
    /// Width of the hidden layer of the head.
    pub hidden_size: i64,
    /// Dropout probability before each linear layer of the head.
    pub dropout: f64,
    /// Width in pixels of the crops the network is trained on.
    pub crop_width: i64,
    /// Height in pixels of the crops the network is trained on.
    pub crop_height: i64,
}

impl Default for ModelConfig {
    /// ResNeXt-50, a 512-wide hidden layer and 256-long embeddings, on
    /// 576x192 crops (flukes are about three times wider than tall); no
    /// dropout, as in the reference training.
    fn default() -> Self {
        ModelConfig {
            backbone: Backbone::Resnext50,
            embedding_size: 256,
            hidden_size: 512,
            dropout: 0.0,
            crop_width: 576,
            crop_height: 192,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_json_with_snake_case_backbone() {
        let config = ModelConfig {
            backbone: Backbone::EfficientnetLite0,
            ..ModelConfig::default()
        };

        let json = serde_json::to_string(&config).unwrap();
        let back: ModelConfig = serde_json::from_str(&json).unwrap();

        assert!(
            json.contains("\"backbone\":\"efficientnet_lite0\""),
            "{json}"
        );
        assert_eq!(back, config);
    }

    #[test]
    fn backbones_parse_from_the_command_line() {
        use clap::ValueEnum;

        let parsed = Backbone::from_str("efficientnet-lite0", false).unwrap();

        assert_eq!(parsed, Backbone::EfficientnetLite0);
        assert_eq!(
            Backbone::from_str("resnext50", false).unwrap(),
            Backbone::Resnext50
        );
    }
}
