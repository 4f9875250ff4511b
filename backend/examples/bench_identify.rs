//! Times `POST /api/identify` on a real server over loopback: latency
//! percentiles with one client sending photos one after another, and with
//! many clients sending at once (the worker then embeds them in batches),
//! for each backbone at the given crop size.
//!
//! The models are randomly initialised unless ImageNet weights are at hand
//! (latency does not depend on the weights), and the gallery is a small
//! synthetic set (a search over it costs next to nothing). Run with
//! `cargo run --release -p flukeid --example bench_identify`; it prints a
//! markdown table. This is a measurement, not a test.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use flukeid::device::DeviceChoice;
use flukeid::model::{
    default_weights_path, load_backbone_weights, save_model, Backbone, EmbeddingNet, ModelConfig,
};
use flukeid::run_dir::write_json_atomic;
use flukeid::server::{AppHandle, ServerConfig};
use flukeid::synth::{generate, SynthConfig};
use flukeid::train::TrainConfig;
use flukeid_shared::api::{ModelStatus, StatusResponse};
use reqwest::multipart::{Form, Part};
use tch::nn::VarStore;
use tch::Device;
use tracing::info;

#[derive(Parser)]
#[command(about = "Time identification requests against a loopback server")]
struct Args {
    /// Backbones to time, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [Backbone::EfficientnetLite0, Backbone::Resnext50]
    )]
    backbones: Vec<Backbone>,
    /// Crop width in pixels.
    #[arg(long, default_value_t = 576)]
    crop_width: i64,
    /// Crop height in pixels.
    #[arg(long, default_value_t = 192)]
    crop_height: i64,
    /// Requests sent one after another by a single client.
    #[arg(long, default_value_t = 20)]
    n_sequential: usize,
    /// Clients sending at the same time.
    #[arg(long, default_value_t = 50)]
    n_clients: usize,
    /// Requests each concurrent client sends, one after another.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Named individuals of the synthetic gallery.
    #[arg(long, default_value_t = 4)]
    n_individuals: usize,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// One line of the table.
struct Row {
    backbone: Backbone,
    clients: usize,
    n_requests: usize,
    p50_ms: f64,
    p99_ms: f64,
    per_sec: f64,
}

/// The photo every request sends, with its box.
struct Photo {
    bytes: Vec<u8>,
    bbox: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let device = args.device.resolve()?;
    let mut rows = Vec::new();
    for &backbone in &args.backbones {
        rows.extend(bench_backbone(&args, backbone, device).await?);
    }
    print_table(&args, device, &rows);
    Ok(())
}

async fn bench_backbone(
    args: &Args,
    backbone: Backbone,
    device: Device,
) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let synth = SynthConfig {
        out: dir.path().to_path_buf(),
        n_individuals: args.n_individuals,
        seed: 11,
    };
    generate(&synth)?;
    write_run(dir.path(), backbone, args, device)?;
    let photo = first_test_photo(dir.path())?;

    let (base, handle) = start_server(dir.path(), device).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1800))
        .build()?;
    serve_run(&client, &base, &handle).await?;
    info!(?backbone, "serving; warming up");
    for _ in 0..3 {
        identify(&client, &base, &photo).await?;
    }

    let sequential = timed(&client, &base, &photo, 1, args.n_sequential).await?;
    let concurrent = timed(&client, &base, &photo, args.n_clients, args.rounds).await?;
    handle.finish().await;
    Ok(vec![
        row(backbone, 1, sequential),
        row(backbone, args.n_clients, concurrent),
    ])
}

/// A run folder with a model at the requested crop size, from ImageNet
/// weights when they exist, found by the server at start-up.
fn write_run(
    data_dir: &Path,
    backbone: Backbone,
    args: &Args,
    device: Device,
) -> anyhow::Result<()> {
    let run_dir = data_dir.join("runs").join("run-0001");
    std::fs::create_dir_all(&run_dir)?;
    let model = ModelConfig {
        backbone,
        crop_width: args.crop_width,
        crop_height: args.crop_height,
        ..ModelConfig::default()
    };
    let config = TrainConfig {
        model: model.clone(),
        pretrained: false,
        ..TrainConfig::default()
    };
    let mut vs = VarStore::new(device);
    let _net = EmbeddingNet::new(&vs.root(), &model);
    let weights = default_weights_path(backbone);
    if weights.is_file() {
        load_backbone_weights(&mut vs, &weights)?;
    }
    save_model(&vs, &model, &run_dir)?;
    write_json_atomic(&run_dir.join("config.json"), &config)?;
    Ok(())
}

fn first_test_photo(data_dir: &Path) -> anyhow::Result<Photo> {
    let boxes = std::fs::read_to_string(data_dir.join("bounding_boxes.csv"))?;
    let mut tests: Vec<_> = std::fs::read_dir(data_dir.join("test"))?
        .filter_map(Result::ok)
        .collect();
    tests.sort_by_key(|entry| entry.file_name());
    let entry = tests.first().context("the synthetic set has test photos")?;
    let name = entry.file_name().to_string_lossy().into_owned();
    let line = boxes
        .lines()
        .find(|l| l.starts_with(&format!("{name},")))
        .context("the photo has a box")?;
    let v: Vec<&str> = line.split(',').collect();
    let bbox = format!(
        r#"{{"x0":{},"y0":{},"x1":{},"y1":{}}}"#,
        v[1], v[2], v[3], v[4]
    );
    Ok(Photo {
        bytes: std::fs::read(entry.path())?,
        bbox,
    })
}

async fn start_server(data_dir: &Path, device: Device) -> anyhow::Result<(String, AppHandle)> {
    let config = ServerConfig {
        device,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServerConfig::new(data_dir)
    };
    let (addr, handle) = flukeid::server::spawn(config).await?;
    Ok((format!("http://{addr}"), handle))
}

async fn serve_run(client: &reqwest::Client, base: &str, handle: &AppHandle) -> anyhow::Result<()> {
    let url = format!("{base}/api/admin/runs/run-0001/serve");
    let response = client
        .post(url)
        .bearer_auth(handle.admin_token())
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "serve: {}",
        response.text().await?
    );
    loop {
        let status: StatusResponse = client
            .get(format!("{base}/api/status"))
            .send()
            .await?
            .json()
            .await?;
        match status.model {
            ModelStatus::Ready { .. } => return Ok(()),
            ModelStatus::Failed { message, .. } => bail!("loading failed: {message}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Latencies of `rounds` requests from each of `n_clients` clients running
/// at once, and the wall time of the whole.
async fn timed(
    client: &reqwest::Client,
    base: &str,
    photo: &Photo,
    n_clients: usize,
    rounds: usize,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let started = Instant::now();
    let clients = (0..n_clients).map(|_| async {
        let mut latencies = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let sent = Instant::now();
            identify(client, base, photo).await?;
            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::Ok(latencies)
    });
    let mut latencies = Vec::new();
    for result in futures_util::future::join_all(clients).await {
        latencies.extend(result?);
    }
    Ok((latencies, started.elapsed().as_secs_f64()))
}

async fn identify(client: &reqwest::Client, base: &str, photo: &Photo) -> anyhow::Result<()> {
    let form = Form::new()
        .part(
            "photo",
            Part::bytes(photo.bytes.clone()).file_name("photo.jpg"),
        )
        .text("box", photo.bbox.clone());
    let response = client
        .post(format!("{base}/api/identify"))
        .multipart(form)
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "identify: {}",
        response.text().await?
    );
    Ok(())
}

fn row(backbone: Backbone, clients: usize, (mut latencies, wall_s): (Vec<f64>, f64)) -> Row {
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Row {
        backbone,
        clients,
        n_requests: latencies.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        per_sec: latencies.len() as f64 / wall_s,
    }
}

fn print_table(args: &Args, device: Device, rows: &[Row]) {
    println!(
        "identify latency, {}x{} crops, {device:?}, {} CPU threads for libtorch\n",
        args.crop_width,
        args.crop_height,
        tch::get_num_threads()
    );
    println!("| backbone | clients | requests | p50 ms | p99 ms | requests/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {:?} | {} | {} | {:.0} | {:.0} | {:.2} |",
            r.backbone, r.clients, r.n_requests, r.p50_ms, r.p99_ms, r.per_sec
        );
    }
}
