//! The `flukeid` command line: thin glue over the library. Each subcommand
//! parses its flags, calls one library entry point and prints where its
//! output went.

use std::path::PathBuf;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use flukeid::augment::AugmentConfig;
use flukeid::crop::{write_crops, CropJob};
use flukeid::data::{DataSet, Split};
use flukeid::device::DeviceChoice;
use flukeid::evaluate::DEFAULT_DCUT;
use flukeid::image_io::DEFAULT_MAX_PIXELS;
use flukeid::lr_find::{find_lr, LrFindConfig};
use flukeid::model::{default_weights_path, Backbone};
use flukeid::progress;
use flukeid::schedule::Schedule;
use flukeid::server::{self, ServerConfig};
use flukeid::synth::{generate, SynthConfig};
use flukeid::train::{TrainConfig, Trainer};
use flukeid::workflow::{self, write_embeddings, RunModel};
use flukeid_shared::api::TrainEvent;
use flukeid_shared::crop::CropGeometry;

#[derive(Parser)]
#[command(
    name = "flukeid",
    version,
    about = "Identify humpback whales from fluke photos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic fluke photo data set in the Kaggle layout.
    Synth(SynthArgs),
    /// Write the crop of every image as PNG plus crops.csv, for auditing.
    Crop(CropArgs),
    /// Sweep the learning rate until the loss diverges; writes a CSV and a plot.
    LrFind(LrFindArgs),
    /// Train the embedding network (or resume a run with --resume).
    Train(TrainArgs),
    /// Write train and test embeddings in the reference's CSV format and as safetensors.
    Embed(EmbedArgs),
    /// Print validation MAP@5; with --sweep, calibrate dcut and store it in the run.
    Validate(ValidateArgs),
    /// Write a Kaggle submission.csv for the test images.
    Submit(SubmitArgs),
    /// Measure training speed: steps per second of one backbone, unfrozen.
    BenchTrain(BenchTrainArgs),
    /// Serve the web app and its API.
    Serve(ServeArgs),
    /// Convert a torchvision ResNet/ResNeXt state dict (.pth) to safetensors.
    ImportWeights(ImportWeightsArgs),
}

#[derive(Args)]
struct ImportWeightsArgs {
    /// A torchvision state dict saved with torch.save(model.state_dict()).
    pth: PathBuf,
    /// The safetensors file to write, e.g. the backbone's default weights
    /// path under ~/.cache/flukeid/weights.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ServeArgs {
    /// Data set folder in the Kaggle layout; also holds the catalogue,
    /// uploads and runs.
    #[arg(long)]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Admin bearer token; otherwise the saved one or a new one.
    #[arg(long, env = "FLUKEID_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The built front end to serve at /.
    #[arg(long)]
    static_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args)]
struct BenchTrainArgs {
    /// Data set folder; a synthetic set is made in a temporary folder if absent.
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Backbone::Resnext50)]
    backbone: Backbone,
    /// Timed steps, after the warm-up steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Triplets per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Crop size, e.g. 576x192.
    #[arg(long, value_parser = parse_size, default_value = "576x192")]
    crop: (i64, i64),
    /// Use fp32 on CUDA instead of fp16 autocast.
    #[arg(long)]
    no_mixed_precision: bool,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args)]
struct TrainFlags {
    /// Training config as JSON (any field may be left out); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Backbone network.
    #[arg(long, value_enum)]
    backbone: Option<Backbone>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Triplets per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Length of the embedding vector.
    #[arg(long)]
    embedding_size: Option<i64>,
    /// Crop width and height in pixels, e.g. 576x192.
    #[arg(long, value_parser = parse_size)]
    crop: Option<(i64, i64)>,
    /// Cap on steps per epoch, for quick runs.
    #[arg(long)]
    max_steps_per_epoch: Option<usize>,
    /// Keep only the first N epochs of the schedule.
    #[arg(long)]
    epochs: Option<usize>,
    /// Start from random weights instead of ImageNet weights.
    #[arg(long)]
    no_pretrained: bool,
    /// Seed for the split, sampling and augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args)]
struct TrainArgs {
    /// Data set folder in the Kaggle layout.
    #[arg(long)]
    data: PathBuf,
    /// Folder for the new run.
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    flags: TrainFlags,
}

#[derive(Args)]
struct LrFindArgs {
    /// Data set folder in the Kaggle layout.
    #[arg(long)]
    data: PathBuf,
    /// Folder for lr_find.csv and lr_find.png.
    #[arg(long)]
    out: PathBuf,
    /// Number of steps of the sweep.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    #[command(flatten)]
    flags: TrainFlags,
}

/// The run and data set that embed, validate and submit work on.
#[derive(Args)]
struct RunData {
    /// A training run folder.
    #[arg(long)]
    run: PathBuf,
    /// Data set folder in the Kaggle layout.
    #[arg(long)]
    data: PathBuf,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args)]
struct EmbedArgs {
    #[command(flatten)]
    input: RunData,
    /// Folder for train_emb.csv and test_emb.csv.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ValidateArgs {
    #[command(flatten)]
    input: RunData,
    /// new_whale distance; defaults to the run's calibrated value, else 3.75.
    #[arg(long)]
    dcut: Option<f32>,
    /// Evaluate a range of dcut values and store the best in the run.
    #[arg(long)]
    sweep: bool,
    /// Sweep range and count, e.g. 0.5:8:32.
    #[arg(long, default_value = "0.25:12:48", value_parser = parse_range)]
    sweep_range: (f32, f32, usize),
}

#[derive(Args)]
struct SubmitArgs {
    #[command(flatten)]
    input: RunData,
    /// new_whale distance; defaults to the run's calibrated value.
    #[arg(long)]
    dcut: Option<f32>,
    /// Output file.
    #[arg(long, default_value = "submission.csv")]
    out: PathBuf,
}

#[derive(Args)]
struct SynthArgs {
    /// Folder to write the data set into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Number of named individuals (new_whale images come on top).
    #[arg(long, default_value_t = 40)]
    individuals: usize,
    /// Seed; the same seed writes the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct CropArgs {
    /// Data set folder in the Kaggle layout.
    #[arg(long)]
    data: PathBuf,
    /// Folder for the crops and crops.csv.
    #[arg(long)]
    out: PathBuf,
    /// Which folder of the data set to crop.
    #[arg(long, value_enum, default_value_t = Split::Train)]
    split: Split,
    /// Also write this many augmented versions of each crop.
    #[arg(long, default_value_t = 0)]
    augment: usize,
    #[command(flatten)]
    geometry: GeometryArgs,
    /// Seed for the augmentations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct GeometryArgs {
    /// Crop width in pixels.
    #[arg(long, default_value_t = 576)]
    crop_width: u32,
    /// Crop height in pixels; the aspect ratio is width / height.
    #[arg(long, default_value_t = 192)]
    crop_height: u32,
    /// Pixels added to the box's width.
    #[arg(long, default_value_t = 50.0)]
    pad_x: f64,
    /// Pixels added to the box's height.
    #[arg(long, default_value_t = 20.0)]
    pad_y: f64,
}

fn main() -> Result<()> {
    init_tracing();
    match Cli::parse().command {
        Command::Synth(args) => synth(args),
        Command::Crop(args) => crop(args),
        Command::LrFind(args) => lr_find(args),
        Command::Train(args) => train(args),
        Command::Embed(args) => embed(args),
        Command::Validate(args) => validate(args),
        Command::Submit(args) => submit(args),
        Command::BenchTrain(args) => bench_train(args),
        Command::Serve(args) => serve(args),
        Command::ImportWeights(args) => import_weights(args),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn synth(args: SynthArgs) -> Result<()> {
    let config = SynthConfig {
        out: args.out.clone(),
        n_individuals: args.individuals,
        seed: args.seed,
    };
    let report = generate(&config).context("writing the synthetic data set")?;
    println!(
        "wrote {} train and {} test images of {} individuals to {}",
        report.n_train,
        report.n_test,
        report.n_individuals,
        args.out.display()
    );
    Ok(())
}

fn crop(args: CropArgs) -> Result<()> {
    let data = DataSet::open(&args.data).context("opening the data set")?;
    let job = CropJob {
        split: args.split,
        geometry: args.geometry.into(),
        out: args.out.clone(),
        max_pixels: DEFAULT_MAX_PIXELS,
        n_augmented: args.augment,
        augment: AugmentConfig::reference(),
        seed: args.seed,
    };
    let report = write_crops(&data, &job).context("writing crops")?;
    println!(
        "wrote {} crops and crops.csv to {}",
        report.n_written,
        args.out.display()
    );
    report_failures(&report.failures)
}

fn train(args: TrainArgs) -> Result<()> {
    let device = args.flags.device.resolve()?;
    let data = DataSet::open(&args.data).context("opening the data set")?;
    let mut trainer = match (&args.resume, &args.out) {
        (Some(run_dir), _) => Trainer::resume(&data, run_dir, device)?,
        (None, Some(out)) => Trainer::start(args.flags.to_config()?, &data, out, device)?,
        (None, None) => unreachable!("clap requires --out or --resume"),
    };
    let stop = stop_on_ctrl_c();
    let bar = progress::TrainBar::new();
    let outcome = trainer.run(&mut |event| bar.show(event), &stop)?;
    bar.finish();
    println!("run {:?}: {}", outcome, trainer.run_dir().display());
    report_failures(&trainer.skipped)
}

fn lr_find(args: LrFindArgs) -> Result<()> {
    let device = args.flags.device.resolve()?;
    let data = DataSet::open(&args.data).context("opening the data set")?;
    let mut trainer = Trainer::prepare(args.flags.to_config()?, &data, &args.out, device)?;
    let config = LrFindConfig {
        n_steps: args.steps,
        ..LrFindConfig::default()
    };
    let bar = progress::counter(args.steps as u64, "lr-find");
    let stop = stop_on_ctrl_c();
    let result = find_lr(
        &mut trainer,
        &config,
        &args.out,
        &mut |_, _| bar.inc(1),
        &stop,
    )?;
    bar.finish_and_clear();
    println!("suggested learning rate: {:.1e}", result.suggested_lr);
    println!(
        "wrote {} and {}",
        result.csv.display(),
        result.plot.display()
    );
    Ok(())
}

fn embed(args: EmbedArgs) -> Result<()> {
    let (model, data) = args.input.open()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut failures = Vec::new();
    for (split, name) in [(Split::Train, "train_emb"), (Split::Test, "test_emb")] {
        let images = data.images(split);
        let bar = progress::counter(images.len() as u64, name);
        let embedded = model.embed(&data, split, &images, &mut |done, _| {
            bar.set_position(done as u64)
        });
        bar.finish_and_clear();
        write_embeddings(&args.out, name, &embedded)?;
        failures.extend(embedded.failures);
    }
    println!(
        "wrote train_emb.csv and test_emb.csv (and .safetensors) to {}",
        args.out.display()
    );
    report_failures(&failures)
}

fn validate(args: ValidateArgs) -> Result<()> {
    let (model, data) = args.input.open()?;
    let sweep = args.sweep.then_some(args.sweep_range);
    let bar = progress::counter(0, "embedding");
    let table = workflow::validate(&model, &data, args.dcut, sweep, &mut follow(&bar))?;
    bar.finish_and_clear();
    println!("{:>8}  {:>7}  {:>16}", "dcut", "MAP@5", "new_whale first");
    for row in &table {
        println!(
            "{:>8.3}  {:>7.4}  {:>15.1}%",
            row.dcut,
            row.map5,
            100.0 * row.new_whale_first
        );
    }
    if args.sweep {
        let best = table
            .iter()
            .fold(&table[0], |b, r| if r.map5 > b.map5 { r } else { b });
        let run = args.input.run.display();
        println!(
            "best dcut {:.3} (MAP@5 {:.4}), stored in {run}",
            best.dcut, best.map5
        );
    }
    Ok(())
}

fn submit(args: SubmitArgs) -> Result<()> {
    let (model, data) = args.input.open()?;
    let dcut = args
        .dcut
        .or(model.calibrated_dcut())
        .unwrap_or(DEFAULT_DCUT);
    println!("dcut {dcut:.3}");
    let bar = progress::counter(0, "embedding");
    let n_rows = workflow::submit(&model, &data, dcut, &args.out, &mut follow(&bar))?;
    bar.finish_and_clear();
    println!("wrote {n_rows} predictions to {}", args.out.display());
    Ok(())
}

fn bench_train(args: BenchTrainArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let data_dir = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            let out = scratch.path().join("data");
            generate(&SynthConfig {
                out: out.clone(),
                n_individuals: 60,
                seed: 1,
            })?;
            out
        }
    };
    let data = DataSet::open(&data_dir).context("opening the data set")?;
    let config = bench_config(&args);
    let pretrained = config.pretrained;
    let mut trainer = Trainer::start(config, &data, &scratch.path().join("run"), device)?;

    let stop = AtomicBool::new(false);
    let last = args.warmup + args.steps;
    let mut step_secs = Vec::new();
    trainer.run(
        &mut |event| {
            if let TrainEvent::Step(s) = event {
                if s.global_step > args.warmup {
                    step_secs.push(3.0 * args.batch_size as f64 / s.images_per_sec);
                }
                if s.global_step >= last {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        },
        &stop,
    )?;
    print_bench(&args, device, pretrained, &mut step_secs, &trainer);
    Ok(())
}

/// One unfrozen phase of one-epoch cycles, long enough for the steps.
fn bench_config(args: &BenchTrainArgs) -> TrainConfig {
    let mut config = TrainConfig::default();
    config.model.backbone = args.backbone;
    (config.model.crop_width, config.model.crop_height) = args.crop;
    config.batch_size = args.batch_size;
    config.pretrained = default_weights_path(args.backbone).exists();
    config.mixed_precision = !args.no_mixed_precision;
    let mut phase = Schedule::reference().phases[1].clone();
    phase.n_cycles = 10_000;
    config.schedule = Schedule {
        phases: vec![phase],
    };
    config.min_images = 1;
    config.validate = false;
    config.checkpoint_every = 0;
    config
}

fn print_bench(
    args: &BenchTrainArgs,
    device: tch::Device,
    pretrained: bool,
    step_secs: &mut [f64],
    trainer: &Trainer,
) {
    step_secs.sort_by(f64::total_cmp);
    let median = step_secs
        .get(step_secs.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    let n_images = 3 * args.batch_size;
    let wait_share = trainer.loader_wait_secs / trainer.loop_secs.max(1e-9);
    println!(
        "| backbone | device | crop | batch (images) | step s (median) | images/s | loader wait |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {:?}{} | {device:?} | {}x{} | {n_images} | {median:.2} | {:.1} | {:.1}% |",
        args.backbone,
        if pretrained { "" } else { " (random init)" },
        args.crop.0,
        args.crop.1,
        n_images as f64 / median,
        100.0 * wait_share
    );
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut config = ServerConfig::new(&args.data);
    config.addr = args.addr;
    config.admin_token = args.admin_token;
    config.static_dir = args.static_dir;
    config.device = args.device.resolve()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(server::serve(config, |addr, token| {
        println!("flukeid is serving on http://{addr}");
        println!("admin token: {token}");
    }))?;
    Ok(())
}

/// Runs the converter script with the set-up's Python, which has torch.
fn import_weights(args: ImportWeightsArgs) -> Result<()> {
    let cache = std::env::var_os("FLUKEID_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/flukeid")
        });
    let python = cache.join("venv/bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/convert_weights.py");
    let status = std::process::Command::new(&python)
        .arg(&script)
        .arg("torchvision")
        .arg(&args.pth)
        .arg("--out")
        .arg(&args.out)
        .status()
        .with_context(|| format!("running {} (run scripts/setup.sh first)", python.display()))?;
    if !status.success() {
        bail!(
            "converting {} failed (see the message above)",
            args.pth.display()
        );
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

/// A progress callback that moves `bar` to `(done, total)`.
fn follow(bar: &indicatif::ProgressBar) -> impl FnMut(usize, usize) + '_ {
    |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

impl RunData {
    fn open(&self) -> Result<(RunModel, DataSet)> {
        let model = RunModel::open(&self.run, self.device.resolve()?)
            .with_context(|| format!("opening the run {}", self.run.display()))?;
        let data = DataSet::open(&self.data).context("opening the data set")?;
        Ok((model, data))
    }
}

/// A flag set on the first Ctrl-C, so training checkpoints and stops.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    stop
}

fn parse_size(text: &str) -> Result<(i64, i64), String> {
    let (w, h) = text
        .split_once('x')
        .ok_or("expected WIDTHxHEIGHT, e.g. 576x192")?;
    let parse = |v: &str| v.trim().parse::<i64>().map_err(|e| format!("{v:?}: {e}"));
    Ok((parse(w)?, parse(h)?))
}

fn parse_range(text: &str) -> Result<(f32, f32, usize), String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [lo, hi, n] = parts[..] else {
        return Err("expected LOW:HIGH:COUNT".into());
    };
    let float = |v: &str| v.parse::<f32>().map_err(|e| format!("{v:?}: {e}"));
    Ok((
        float(lo)?,
        float(hi)?,
        n.parse().map_err(|e| format!("{n:?}: {e}"))?,
    ))
}

impl TrainFlags {
    fn to_config(&self) -> Result<TrainConfig> {
        let mut config: TrainConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => TrainConfig::default(),
        };
        if let Some(backbone) = self.backbone {
            config.model.backbone = backbone;
        }
        if let Some((w, h)) = self.crop {
            (config.model.crop_width, config.model.crop_height) = (w, h);
        }
        config.lr = self.lr.unwrap_or(config.lr);
        config.batch_size = self.batch_size.unwrap_or(config.batch_size);
        config.model.embedding_size = self.embedding_size.unwrap_or(config.model.embedding_size);
        config.max_steps_per_epoch = self.max_steps_per_epoch.or(config.max_steps_per_epoch);
        config.seed = self.seed.unwrap_or(config.seed);
        config.pretrained &= !self.no_pretrained;
        if let Some(n_epochs) = self.epochs {
            config.schedule = config.schedule.truncated(n_epochs);
        }
        Ok(config)
    }
}

/// Prints every skipped image and fails the command if there were any.
fn report_failures(failures: &[(String, String)]) -> Result<()> {
    for (image, reason) in failures {
        eprintln!("skipped {image}: {reason}");
    }
    if !failures.is_empty() {
        bail!(
            "{} images could not be processed (listed above)",
            failures.len()
        );
    }
    Ok(())
}

impl From<GeometryArgs> for CropGeometry {
    fn from(args: GeometryArgs) -> Self {
        CropGeometry {
            width: args.crop_width,
            height: args.crop_height,
            pad_x: args.pad_x,
            pad_y: args.pad_y,
        }
    }
}
