//! End to end on a small synthetic set: a short training run lowers the
//! loss and beats a randomly initialised network on triplet accuracy and
//! validation MAP@5; embeddings round-trip; the submission is well formed;
//! a run killed with SIGKILL resumes from its checkpoint and finishes with
//! the same step count.
//!
//! Crops are smaller than in production (192x64) and runs are a few dozen
//! steps so the suite runs in minutes on two CPU cores; the backbone is the
//! real EfficientNet-Lite0 with its ImageNet weights.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flukeid::data::{DataSet, Split};
use flukeid::model::{save_model, Backbone};
use flukeid::sampler::TripletSampler;
use flukeid::schedule::Schedule;
use flukeid::synth::{generate, SynthConfig};
use flukeid::train::{TrainConfig, TrainState, Trainer};
use flukeid::workflow::{self, read_embeddings, read_embeddings_csv, write_embeddings, RunModel};
use flukeid_shared::api::TrainEvent;
use rand::SeedableRng;
use tch::Device;

/// The synthetic set, generated once for all tests of this file.
fn synthetic_set() -> &'static Path {
    static SET: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = SET.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        generate(&SynthConfig {
            out: path.clone(),
            n_individuals: 30,
            seed: 7,
        })
        .unwrap();
        (dir, path)
    });
    path
}

fn quick_config() -> TrainConfig {
    let mut config = TrainConfig::default();
    config.model.backbone = Backbone::EfficientnetLite0;
    (config.model.crop_width, config.model.crop_height) = (192, 64);
    config.batch_size = 8;
    config.lr = 2e-3;
    config.schedule = Schedule::reference().truncated(3);
    config.max_steps_per_epoch = Some(12);
    config.checkpoint_every = 0;
    config
}

fn train(config: TrainConfig, run_dir: &Path) -> Vec<TrainEvent> {
    let data = DataSet::open(synthetic_set()).unwrap();
    let mut trainer = Trainer::start(config, &data, run_dir, Device::Cpu).unwrap();
    let mut events = Vec::new();
    trainer
        .run(&mut |e| events.push(e.clone()), &AtomicBool::new(false))
        .unwrap();
    events
}

fn step_losses(events: &[TrainEvent]) -> Vec<(f64, f64)> {
    events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Step(s) => Some((s.loss, s.accuracy)),
            _ => None,
        })
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    values.iter().sum::<f64>() / values.len() as f64
}

/// Best MAP@5 over a `dcut` sweep of a run's validation split.
fn best_map5(run_dir: &Path) -> f64 {
    let model = RunModel::open(run_dir, Device::Cpu).unwrap();
    let data = DataSet::open(synthetic_set()).unwrap();
    let table =
        workflow::validate(&model, &data, None, Some((0.1, 20.0, 60)), &mut |_, _| {}).unwrap();
    table.iter().map(|row| row.map5).fold(0.0, f64::max)
}

#[test]
fn short_training_learns_and_the_whole_pipeline_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let events = train(quick_config(), &run_dir);

    let steps = step_losses(&events);
    let first = mean(steps[..8].iter().map(|s| s.0));
    let last = mean(steps[steps.len() - 8..].iter().map(|s| s.0));
    assert!(last < 0.8 * first, "loss went from {first:.2} to {last:.2}");

    let untrained_dir = dir.path().join("untrained");
    let data = DataSet::open(synthetic_set()).unwrap();
    let untrained = Trainer::start(quick_config(), &data, &untrained_dir, Device::Cpu).unwrap();
    drop(untrained);
    save_untrained(&untrained_dir);
    // Accuracy over a few hundred fixed triplets: a change from noise alone
    // stays within about 0.1.
    let (trained_acc, untrained_acc) = (accuracy(&run_dir), accuracy(&untrained_dir));
    assert!(
        trained_acc > untrained_acc + 0.1,
        "triplet accuracy {trained_acc:.3} trained vs {untrained_acc:.3} untrained"
    );
    let (trained_map5, untrained_map5) = (best_map5(&run_dir), best_map5(&untrained_dir));
    assert!(
        trained_map5 > untrained_map5 + 0.05,
        "trained MAP@5 {trained_map5:.3} vs untrained {untrained_map5:.3}"
    );

    embeddings_round_trip(&run_dir, dir.path());
    submission_is_well_formed(&run_dir, dir.path());
}

/// Triplet accuracy of a run's model on three fixed triplets per anchor of
/// its training split, without augmentation.
fn accuracy(run_dir: &Path) -> f64 {
    let model = RunModel::open(run_dir, Device::Cpu).unwrap();
    let data = DataSet::open(synthetic_set()).unwrap();
    let split = model.split().unwrap();
    let sampler = TripletSampler::new(&split.train, 2);
    let embedded = model.embed(&data, Split::Train, sampler.images(), &mut |_, _| {});
    assert_eq!(
        embedded.names,
        sampler.images(),
        "every synthetic image loads"
    );
    let xs = flukeid::evaluate::to_array(&embedded.embeddings);
    let distance = |a: usize, b: usize| {
        xs.row(a)
            .iter()
            .zip(xs.row(b))
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
    };

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let triplets: Vec<_> = sampler
        .anchors()
        .iter()
        .flat_map(|&a| (0..3).map(move |_| a))
        .map(|a| sampler.triplet(a, &mut rng))
        .collect();
    assert!(triplets.len() >= 150, "only {} triplets", triplets.len());
    let n_right = triplets
        .iter()
        .filter(|t| distance(t.anchor, t.positive) < distance(t.anchor, t.negative))
        .count();
    n_right as f64 / triplets.len() as f64
}

/// Writes a randomly initialised network of the run's shape as the run's
/// model: the untrained baseline.
fn save_untrained(run_dir: &Path) {
    let config: TrainConfig =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).unwrap()).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let _net = flukeid::model::EmbeddingNet::new(&vs.root(), &config.model);
    save_model(&vs, &config.model, run_dir).unwrap();
}

fn embeddings_round_trip(run_dir: &Path, scratch: &Path) {
    let model = RunModel::open(run_dir, Device::Cpu).unwrap();
    let data = DataSet::open(synthetic_set()).unwrap();
    let images = data.images(Split::Test);
    let embedded = model.embed(&data, Split::Test, &images, &mut |_, _| {});
    let out = scratch.join("emb");
    std::fs::create_dir_all(&out).unwrap();
    write_embeddings(&out, "test_emb", &embedded).unwrap();

    let (names, binary) = read_embeddings(&out, "test_emb").unwrap();
    assert_eq!(names, embedded.names);
    let diff = (&binary - &embedded.embeddings)
        .abs()
        .max()
        .double_value(&[]);
    assert_eq!(diff, 0.0);

    let (csv_names, rows) = read_embeddings_csv(&out.join("test_emb.csv")).unwrap();
    assert_eq!(csv_names, names);
    let original = flukeid::evaluate::to_array(&embedded.embeddings);
    for (row, expected) in rows.iter().zip(original.rows()) {
        assert_eq!(row.len(), expected.len());
        // Rust prints the shortest string that parses back to the same f32.
        assert!(row.iter().zip(expected).all(|(a, b)| a == b));
    }
}

fn submission_is_well_formed(run_dir: &Path, scratch: &Path) {
    let model = RunModel::open(run_dir, Device::Cpu).unwrap();
    let data = DataSet::open(synthetic_set()).unwrap();
    let out = scratch.join("submission.csv");
    let n_rows = workflow::submit(&model, &data, 2.0, &out, &mut |_, _| {}).unwrap();
    assert_eq!(n_rows, data.test.len());

    let text = std::fs::read_to_string(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("Image,Id"));
    for line in lines {
        let (image, labels) = line.split_once(',').unwrap();
        assert!(data.test.contains(&image.to_string()));
        let labels: Vec<&str> = labels.split(' ').collect();
        assert!((1..=5).contains(&labels.len()), "{line}");
        let mut unique = labels.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "labels repeat: {line}");
    }
}

#[test]
fn a_killed_run_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let mut config = quick_config();
    (config.model.crop_width, config.model.crop_height) = (96, 32);
    config.batch_size = 4;
    config.schedule = Schedule::reference().truncated(2);
    config.max_steps_per_epoch = Some(6);
    config.checkpoint_every = 2;
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();

    let binary = env!("CARGO_BIN_EXE_flukeid");
    let data = synthetic_set();
    let mut child = Command::new(binary)
        .args([
            "train",
            "--data",
            path_str(data),
            "--out",
            path_str(&run_dir),
        ])
        .args(["--config", path_str(&config_path)])
        .spawn()
        .unwrap();
    let state_path = run_dir.join("state.json");
    let reached = wait_for_step(&state_path, 4, Duration::from_secs(300));
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let killed_at = reached.expect("a checkpoint at step 4 or later within 5 minutes");
    assert!(
        killed_at < 12,
        "the run must be killed before it ends, got {killed_at}"
    );

    let status = Command::new(binary)
        .args([
            "train",
            "--data",
            path_str(data),
            "--resume",
            path_str(&run_dir),
        ])
        .status()
        .unwrap();
    assert!(status.success());

    let state: TrainState = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert!(state.finished);
    assert_eq!(state.global_step, 12, "2 epochs of 6 steps");
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    let steps: Vec<(usize, f64)> = history
        .lines()
        .filter_map(|l| serde_json::from_str::<TrainEvent>(l).ok())
        .filter_map(|e| match e {
            TrainEvent::Step(s) => Some((s.global_step, s.loss)),
            _ => None,
        })
        .collect();
    let resumed_steps: Vec<usize> = steps.iter().map(|s| s.0).collect();
    // A step redone after the crash draws the same batch, augmentation and
    // dropout from the same weights, so its loss repeats.
    for (i, (step, loss)) in steps.iter().enumerate() {
        for (other, other_loss) in &steps[i + 1..] {
            if other == step {
                let tolerance = 1e-3 * loss.abs().max(1.0);
                assert!(
                    (loss - other_loss).abs() < tolerance,
                    "step {step}: {loss} then {other_loss}"
                );
            }
        }
    }
    // Steps after the checkpoint may appear twice (done, lost, redone);
    // every step appears, and the last ones continue from the checkpoint.
    for step in 1..=12 {
        assert!(
            resumed_steps.contains(&step),
            "step {step} missing: {resumed_steps:?}"
        );
    }
    assert_eq!(*resumed_steps.last().unwrap(), 12);
}

fn wait_for_step(state_path: &Path, min_step: usize, timeout: Duration) -> Option<usize> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(bytes) = std::fs::read(state_path) {
            if let Ok(state) = serde_json::from_slice::<TrainState>(&bytes) {
                if state.global_step >= min_step {
                    return Some(state.global_step);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
