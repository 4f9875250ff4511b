//! Turning crops into embeddings. This is the one place embeddings are
//! produced: validation, the `embed` command and the server all call it, so
//! they all normalise and batch the same way.

use tch::{Device, Tensor};

use crate::augment::{normalise, to_unit_float, IMAGENET};
use crate::loader::CropCache;
use crate::model::EmbeddingNet;

/// Embeds crops in evaluation mode without gradients.
///
/// # Shapes
///
/// `crops` `[N, 3, H, W]` uint8 to `[N, E]` float on the CPU.
pub fn embed_crops(net: &EmbeddingNet, crops: &Tensor, device: Device) -> Tensor {
    tch::no_grad(|| {
        let xs = normalise(&to_unit_float(crops, device), &IMAGENET);
        net.forward_t(&xs, false)
            .to_kind(tch::Kind::Float)
            .to_device(Device::Cpu)
    })
}

/// Embeds the cached crops at `positions` in batches of `batch_size`,
/// calling `on_batch` with the number done after each batch.
///
/// # Shapes
///
/// Returns `[positions.len(), E]`.
pub fn embed_cached(
    net: &EmbeddingNet,
    cache: &CropCache,
    positions: &[usize],
    batch_size: usize,
    device: Device,
    on_batch: &mut dyn FnMut(usize),
) -> Tensor {
    let mut parts = Vec::new();
    let mut n_done = 0;
    for chunk in positions.chunks(batch_size.max(1)) {
        parts.push(embed_crops(net, &cache.batch(chunk), device));
        n_done += chunk.len();
        on_batch(n_done);
    }
    if parts.is_empty() {
        let size = net.config().embedding_size;
        return Tensor::zeros([0, size], (tch::Kind::Float, Device::Cpu));
    }
    Tensor::cat(&parts, 0)
}
