//! flukeid: identify individual humpback whales from photos of their tail
//! flukes.
//!
//! The modules follow the data: a data set in the Kaggle layout ([`data`]),
//! or a synthetic one ([`synth`]), is cropped ([`crop`]), loaded, cached
//! and augmented ([`loader`], [`augment`]), sampled into triplets
//! ([`sampler`]), embedded by the network ([`model`]) trained with the
//! all-vs-all contrastive loss ([`loss`], [`train`]), and searched for
//! nearest neighbours ([`index`], [`predict`]).

pub mod augment;
pub mod crop;
pub mod data;
pub mod device;
pub mod embed;
pub mod evaluate;
pub mod image_io;
pub mod index;
pub mod loader;
pub mod loss;
pub mod lr_find;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod predict;
pub mod progress;
pub mod run_dir;
pub mod sampler;
pub mod schedule;
pub mod server;
pub mod synth;
pub mod train;
pub mod workflow;
