//! Times exact top-k search over random embeddings for each index path:
//! `GalleryIndex` with linfa-nn and with the libtorch matrix product (on
//! the CPU, and on CUDA when there is one), plus linfa-nn's two trees,
//! which `GalleryIndex` does not use, to show why.
//!
//! Run with `cargo run --release -p flukeid --example bench_index`; it
//! prints a markdown table. This is a measurement, not a test: it asserts
//! only that the paths agree.

use std::time::Instant;

use anyhow::{ensure, Context};
use clap::Parser;
use flukeid::index::{GalleryIndex, IndexKind, Neighbour};
use linfa_nn::distance::L2Dist;
use linfa_nn::{CommonNearestNeighbour, NearestNeighbour};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::Device;
use tracing::info;

#[derive(Parser)]
#[command(about = "Time exact k-nearest-neighbour search for each index path")]
struct Args {
    /// Number of gallery embeddings.
    #[arg(long, default_value_t = 25_000)]
    n_gallery: usize,
    /// Number of queries searched in one batch.
    #[arg(long, default_value_t = 8_000)]
    n_queries: usize,
    /// Dimension of the embeddings.
    #[arg(long, default_value_t = 256)]
    dim: usize,
    /// Neighbours per query.
    #[arg(long, default_value_t = 16)]
    k: usize,
    /// Queries searched one call at a time, as a server would.
    #[arg(long, default_value_t = 200)]
    n_single: usize,
    /// Queries given to linfa-nn's trees, whose time is scaled up to
    /// `n_queries` (they are far slower than the rest).
    #[arg(long, default_value_t = 500)]
    n_tree_queries: usize,
    /// Seed of the random embeddings.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// One line of the table.
struct Row {
    path: String,
    device: &'static str,
    build_s: f64,
    batch_s: f64,
    single_ms: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let gallery = random(args.n_gallery, args.dim, &mut rng);
    let queries = random(args.n_queries, args.dim, &mut rng);

    let mut rows = Vec::new();
    let (row, reference) = time_index(
        &args,
        &gallery,
        &queries,
        IndexKind::BruteForce,
        Device::Cpu,
    )?;
    rows.push(row);
    let (row, found) = time_index(&args, &gallery, &queries, IndexKind::Linfa, Device::Cpu)?;
    check_agreement(&reference, &found).context("linfa-nn against brute force")?;
    rows.push(row);
    if tch::Cuda::is_available() {
        let cuda = Device::Cuda(0);
        let (row, found) = time_index(&args, &gallery, &queries, IndexKind::BruteForce, cuda)?;
        check_agreement(&reference, &found).context("CUDA against CPU brute force")?;
        rows.push(row);
    }
    for algorithm in [
        CommonNearestNeighbour::KdTree,
        CommonNearestNeighbour::BallTree,
    ] {
        rows.push(time_tree(&args, &gallery, &queries, algorithm)?);
    }

    print_table(&args, &rows);
    Ok(())
}

fn random(n_rows: usize, dim: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn((n_rows, dim), |_| rng.gen_range(-1.0..1.0))
}

/// Builds a `GalleryIndex`, searches all queries in one call, then
/// `n_single` queries one call each.
fn time_index(
    args: &Args,
    gallery: &Array2<f32>,
    queries: &Array2<f32>,
    kind: IndexKind,
    device: Device,
) -> anyhow::Result<(Row, Vec<Vec<Neighbour>>)> {
    info!(?kind, ?device, "timing");
    let start = Instant::now();
    let index = GalleryIndex::new(gallery.clone(), kind, device)?;
    let build_s = start.elapsed().as_secs_f64();

    // One search first, so that lazy set-up (CUDA context, kernels) is not
    // counted.
    index.search(queries.slice(ndarray::s![..1, ..]), args.k)?;
    let start = Instant::now();
    let found = index.search(queries.view(), args.k)?;
    let batch_s = start.elapsed().as_secs_f64();

    let n_single = args.n_single.min(queries.nrows());
    let start = Instant::now();
    for query_idx in 0..n_single {
        index.search(
            queries.slice(ndarray::s![query_idx..query_idx + 1, ..]),
            args.k,
        )?;
    }
    let single_ms = 1e3 * start.elapsed().as_secs_f64() / n_single.max(1) as f64;

    let path = format!("GalleryIndex {kind:?}");
    let device = if device == Device::Cpu { "CPU" } else { "CUDA" };
    Ok((
        Row {
            path,
            device,
            build_s,
            batch_s,
            single_ms: Some(single_ms),
        },
        found,
    ))
}

/// Builds one of linfa-nn's trees and searches the first `n_tree_queries`
/// queries in parallel, scaling the time up to all queries.
fn time_tree(
    args: &Args,
    gallery: &Array2<f32>,
    queries: &Array2<f32>,
    algorithm: CommonNearestNeighbour,
) -> anyhow::Result<Row> {
    info!(?algorithm, n_queries = args.n_tree_queries, "timing");
    let start = Instant::now();
    let nn = algorithm.from_batch(gallery, L2Dist)?;
    let build_s = start.elapsed().as_secs_f64();

    let n_timed = args.n_tree_queries.clamp(1, queries.nrows());
    let start = Instant::now();
    (0..n_timed)
        .into_par_iter()
        .try_for_each(|query_idx| nn.k_nearest(queries.row(query_idx), args.k).map(drop))?;
    let batch_s = start.elapsed().as_secs_f64() * queries.nrows() as f64 / n_timed as f64;

    let path = format!("linfa-nn {algorithm:?} ({n_timed} queries, scaled)");
    Ok(Row {
        path,
        device: "CPU",
        build_s,
        batch_s,
        single_ms: None,
    })
}

/// Same distances rank by rank; ids may differ only between neighbours
/// whose distances are within rounding of each other.
fn check_agreement(a: &[Vec<Neighbour>], b: &[Vec<Neighbour>]) -> anyhow::Result<()> {
    ensure!(
        a.len() == b.len(),
        "{} against {} result lists",
        a.len(),
        b.len()
    );
    let mut n_swapped = 0;
    for (query_idx, (a, b)) in a.iter().zip(b).enumerate() {
        for (x, y) in a.iter().zip(b) {
            let gap = (x.distance - y.distance).abs();
            ensure!(gap < 1e-3, "query {query_idx}: {x:?} against {y:?}");
            n_swapped += usize::from(x.gallery_idx != y.gallery_idx);
        }
    }
    info!(n_swapped, "paths agree; swapped ids are near-ties");
    Ok(())
}

fn print_table(args: &Args, rows: &[Row]) {
    let cpu = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "Exact top-{} of {} queries over {} embeddings of dimension {} ({cpu} CPU threads)\n",
        args.k, args.n_queries, args.n_gallery, args.dim
    );
    println!("| path | device | build (s) | batch search (s) | queries/s | one query (ms) |");
    println!("|---|---|---:|---:|---:|---:|");
    for row in rows {
        let single = row
            .single_ms
            .map_or("-".to_string(), |ms| format!("{ms:.2}"));
        println!(
            "| {} | {} | {:.3} | {:.2} | {:.0} | {single} |",
            row.path,
            row.device,
            row.build_s,
            row.batch_s,
            args.n_queries as f64 / row.batch_s,
        );
    }
}
