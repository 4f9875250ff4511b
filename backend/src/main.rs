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
use flukeid::lr_find::{find_lr, LrFindConfig};
use flukeid::model::Backbone;
use flukeid::progress;
use flukeid::train::{TrainConfig, Trainer};
use flukeid::workflow::{self, write_embeddings, RunModel};
use flukeid::image_io::DEFAULT_MAX_PIXELS;
use flukeid::synth::{generate, SynthConfig};
use flukeid_shared::crop::CropGeometry;

#[derive(Parser)]
#[command(name = "flukeid", version, about = "Identify humpback whales from fluke photos")]
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

#[derive(Args)]
struct EmbedArgs {
    /// A training run folder.
    #[arg(long)]
    run: PathBuf,
    /// Data set folder in the Kaggle layout.
    #[arg(long)]
    data: PathBuf,
    /// Folder for train_emb.csv and test_emb.csv.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args)]
struct ValidateArgs {
    /// A training run folder.
    #[arg(long)]
    run: PathBuf,
    /// Data set folder the run was trained on.
    #[arg(long)]
    data: PathBuf,
    /// new_whale distance; defaults to the run's calibrated value, else 3.75.
    #[arg(long)]
    dcut: Option<f32>,
    /// Evaluate a range of dcut values and store the best in the run.
    #[arg(long)]
    sweep: bool,
    /// Sweep range and count, e.g. 0.5:8:32.
    #[arg(long, default_value = "0.25:12:48", value_parser = parse_range)]
    sweep_range: (f32, f32, usize),
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args)]
struct SubmitArgs {
    /// A training run folder.
    #[arg(long)]
    run: PathBuf,
    /// Data set folder with test/.
    #[arg(long)]
    data: PathBuf,
    /// new_whale distance; defaults to the run's calibrated value.
    #[arg(long)]
    dcut: Option<f32>,
    /// Output file.
    #[arg(long, default_value = "submission.csv")]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
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
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn synth(args: SynthArgs) -> Result<()> {
    let config = SynthConfig { out: args.out.clone(), n_individuals: args.individuals, seed: args.seed };
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
    println!("wrote {} crops and crops.csv to {}", report.n_written, args.out.display());
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
    let config = LrFindConfig { n_steps: args.steps, ..LrFindConfig::default() };
    let bar = progress::counter(args.steps as u64, "lr-find");
    let stop = stop_on_ctrl_c();
    let result = find_lr(&mut trainer, &config, &args.out, &mut |_, _| bar.inc(1), &stop)?;
    bar.finish_and_clear();
    println!("suggested learning rate: {:.1e}", result.suggested_lr);
    println!("wrote {} and {}", result.csv.display(), result.plot.display());
    Ok(())
}

fn embed(args: EmbedArgs) -> Result<()> {
    let model = RunModel::open(&args.run, args.device.resolve()?)?;
    let data = DataSet::open(&args.data).context("opening the data set")?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut failures = Vec::new();
    for (split, name) in [(Split::Train, "train_emb"), (Split::Test, "test_emb")] {
        let images = data.images(split);
        let bar = progress::counter(images.len() as u64, name);
        let embedded = model.embed(&data, split, &images, &mut |done, _| bar.set_position(done as u64));
        bar.finish_and_clear();
        write_embeddings(&args.out, name, &embedded)?;
        failures.extend(embedded.failures);
    }
    println!("wrote train_emb.csv and test_emb.csv (and .safetensors) to {}", args.out.display());
    report_failures(&failures)
}

fn validate(args: ValidateArgs) -> Result<()> {
    let model = RunModel::open(&args.run, args.device.resolve()?)?;
    let data = DataSet::open(&args.data).context("opening the data set")?;
    let sweep = args.sweep.then_some(args.sweep_range);
    let bar = progress::counter(0, "embedding");
    let on_progress = &mut |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let table = workflow::validate(&model, &data, args.dcut, sweep, on_progress)?;
    bar.finish_and_clear();
    println!("{:>8}  {:>7}  {:>16}", "dcut", "MAP@5", "new_whale first");
    for row in &table {
        println!("{:>8.3}  {:>7.4}  {:>15.1}%", row.dcut, row.map5, 100.0 * row.new_whale_first);
    }
    if args.sweep {
        let best = table.iter().fold(&table[0], |b, r| if r.map5 > b.map5 { r } else { b });
        println!("best dcut {:.3} (MAP@5 {:.4}), stored in {}", best.dcut, best.map5, args.run.display());
    }
    Ok(())
}

fn submit(args: SubmitArgs) -> Result<()> {
    let model = RunModel::open(&args.run, args.device.resolve()?)?;
    let data = DataSet::open(&args.data).context("opening the data set")?;
    let dcut = args.dcut.or(model.calibrated_dcut()).unwrap_or(DEFAULT_DCUT);
    println!("dcut {dcut:.3}");
    let bar = progress::counter(0, "embedding");
    let on_progress = &mut |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let n_rows = workflow::submit(&model, &data, dcut, &args.out, on_progress)?;
    bar.finish_and_clear();
    println!("wrote {n_rows} predictions to {}", args.out.display());
    Ok(())
}

/// A flag set on the first Ctrl-C, so training checkpoints and stops.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    stop
}

fn parse_size(text: &str) -> Result<(i64, i64), String> {
    let (w, h) = text.split_once('x').ok_or("expected WIDTHxHEIGHT, e.g. 576x192")?;
    let parse = |v: &str| v.trim().parse::<i64>().map_err(|e| format!("{v:?}: {e}"));
    Ok((parse(w)?, parse(h)?))
}

fn parse_range(text: &str) -> Result<(f32, f32, usize), String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [lo, hi, n] = parts[..] else { return Err("expected LOW:HIGH:COUNT".into()) };
    let float = |v: &str| v.parse::<f32>().map_err(|e| format!("{v:?}: {e}"));
    Ok((float(lo)?, float(hi)?, n.parse().map_err(|e| format!("{n:?}: {e}"))?))
}

impl TrainFlags {
    fn to_config(&self) -> Result<TrainConfig> {
        let mut config: TrainConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
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
        bail!("{} images could not be processed (listed above)", failures.len());
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
