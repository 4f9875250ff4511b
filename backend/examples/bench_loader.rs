//! Loader throughput at 576x192: decoding and cropping photos, and
//! augmenting batches of crops, per CPU core and with every core.
//!
//! Run with `cargo run --release -p flukeid --example bench_loader
//! [-- DATA_DIR]`; without a data folder a synthetic set is made first.

use std::time::Instant;

use flukeid::augment::{augment, normalise, to_unit_float, AugmentConfig, IMAGENET};
use flukeid::data::{DataSet, Split};
use flukeid::image_io::DEFAULT_MAX_PIXELS;
use flukeid::loader::CropCache;
use flukeid::synth::{generate, SynthConfig};
use flukeid_shared::crop::CropGeometry;
use rand::SeedableRng;

fn main() -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let data_dir = match std::env::args().nth(1) {
        Some(dir) => dir.into(),
        None => {
            let out = scratch.path().join("data");
            generate(&SynthConfig {
                out: out.clone(),
                n_individuals: 40,
                seed: 3,
            })?;
            out
        }
    };
    let data = DataSet::open(&data_dir)?;
    let images = data.images(Split::Train);
    let n_cores = std::thread::available_parallelism()?.get();

    println!("| stage | threads | images/s | images/s per core |");
    println!("|---|---|---|---|");
    for threads in [1, n_cores] {
        let rate = decode_rate(&data, &images, threads)?;
        println!(
            "| decode + crop | {threads} | {rate:.1} | {:.1} |",
            rate / threads as f64
        );
    }
    for threads in [1, n_cores] {
        let rate = augment_rate(threads as i32);
        println!(
            "| augment + normalise | {threads} | {rate:.1} | {:.1} |",
            rate / threads as f64
        );
    }
    Ok(())
}

/// Photos decoded and cropped per second on `threads` threads.
fn decode_rate(data: &DataSet, images: &[String], threads: usize) -> anyhow::Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let geometry = CropGeometry::default();
    let started = Instant::now();
    let (cache, failures) = pool
        .install(|| CropCache::build(data, Split::Train, images, &geometry, DEFAULT_MAX_PIXELS));
    anyhow::ensure!(failures.is_empty(), "{} images failed", failures.len());
    Ok(cache.len() as f64 / started.elapsed().as_secs_f64())
}

/// Crops augmented per second in batches of 48 (16 triplets) on the CPU.
fn augment_rate(threads: i32) -> f64 {
    tch::set_num_threads(threads);
    let batch = tch::Tensor::randint(256, [48, 3, 192, 576], (tch::Kind::Uint8, tch::Device::Cpu));
    let config = AugmentConfig::reference();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let n_batches = 5;
    let started = Instant::now();
    for _ in 0..n_batches {
        let xs = augment(&to_unit_float(&batch, tch::Device::Cpu), &config, &mut rng);
        let _ = normalise(&xs, &IMAGENET);
    }
    (48 * n_batches) as f64 / started.elapsed().as_secs_f64()
}
