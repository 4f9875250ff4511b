//! The embedding network: backbones, head, and their weights on disk.
//!
//! [`EmbeddingNet`] turns normalised crops into embeddings; it is built from
//! a [`ModelConfig`], starts from ImageNet weights through
//! [`load_backbone_weights`], and is saved and restored with [`save_model`]
//! and [`load_model`]. Losses and training loops live elsewhere.

mod config;
mod efficientnet;
mod head;
mod net;
mod resnet;
mod weights;

pub use config::{Backbone, ModelConfig};
pub use net::{
    set_backbone_trainable, EmbeddingNet, BACKBONE_EARLY_GROUP, BACKBONE_LATE_GROUP, HEAD_GROUP,
};
pub use weights::{
    default_weights_path, load_backbone_weights, load_model, save_model, ModelError, ShapeMismatch,
    CONFIG_FILE, WEIGHTS_FILE,
};
