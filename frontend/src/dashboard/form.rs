//! The dashboard's forms as typed text, and the JSON they send: a training
//! run's config (only the fields the form shows; the server fills in the
//! rest from its defaults), the learning-rate sweep, and the `dcut` sweep.
//! Every field is checked here so that a typo gets a sentence next to the
//! form instead of a round trip. A schedule is checked only for its shape;
//! its phases are the server's to judge.

use flukeid_shared::api::{DcutSweep, ValidateRequest};
use flukeid_shared::crop::CropGeometry;
use serde_json::{json, Value};

/// Backbones the server knows, as its config spells them, with the names
/// the form shows.
pub const BACKBONES: [(&str, &str); 3] = [
    ("resnext50", "ResNeXt-50"),
    ("resnet34", "ResNet-34"),
    ("efficientnet_lite0", "EfficientNet-Lite0"),
];

/// The smallest crop side, in pixels, that the server accepts.
pub const MIN_CROP_SIDE: u64 = 16;

/// The training form's fields as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunForm {
    pub backbone: String,
    pub lr: String,
    /// The schedule's first N epochs.
    pub n_epochs: String,
    pub batch_size: String,
    pub embedding_size: String,
    pub crop_width: String,
    pub crop_height: String,
    /// Pixels added to the box's width and height before cropping.
    pub pad_x: String,
    pub pad_y: String,
    /// Empty for whole epochs.
    pub max_steps_per_epoch: String,
    pub pretrained: bool,
    /// The schedule as JSON; empty for the reference.
    pub schedule: String,
}

/// The learning-rate sweep's fields as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSweepForm {
    pub start_lr: String,
    pub end_lr: String,
    pub n_steps: String,
}

/// The `dcut` sweep's fields as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct DcutSweepForm {
    pub lo: String,
    pub hi: String,
    pub n: String,
}

impl Default for RunForm {
    /// The reference training: ResNeXt-50, 16 triplets, lr 5e-4, the
    /// reference schedule's 11 epochs, 256-long embeddings, the reference
    /// crops (576x192, padding 50 and 20 pixels), ImageNet weights.
    fn default() -> Self {
        let crop = CropGeometry::default();
        Self {
            backbone: "resnext50".into(),
            lr: "5e-4".into(),
            n_epochs: "11".into(),
            batch_size: "16".into(),
            embedding_size: "256".into(),
            crop_width: crop.width.to_string(),
            crop_height: crop.height.to_string(),
            pad_x: crop.pad_x.to_string(),
            pad_y: crop.pad_y.to_string(),
            max_steps_per_epoch: String::new(),
            pretrained: true,
            schedule: String::new(),
        }
    }
}

impl Default for LrSweepForm {
    fn default() -> Self {
        Self {
            start_lr: "1e-7".into(),
            end_lr: "1".into(),
            n_steps: "100".into(),
        }
    }
}

impl Default for DcutSweepForm {
    fn default() -> Self {
        Self {
            lo: "0.5".into(),
            hi: "6".into(),
            n: "23".into(),
        }
    }
}

impl RunForm {
    /// The config to send to `POST /api/admin/train`.
    ///
    /// # Errors
    ///
    /// A sentence naming the first field that is wrong.
    pub fn to_config(&self) -> Result<Value, String> {
        if !BACKBONES.iter().any(|(name, _)| *name == self.backbone) {
            return Err(format!("Unknown backbone {:?}.", self.backbone));
        }
        let lr = positive_number(&self.lr, "The learning rate")?;
        let n_epochs = whole_number(&self.n_epochs, "The number of epochs", 1)?;
        let batch_size = whole_number(&self.batch_size, "The batch size", 1)?;
        let embedding_size = whole_number(&self.embedding_size, "The embedding size", 2)?;
        let [crop_width, crop_height] = self.crop_size()?;
        let [pad_x, pad_y] = self.padding()?;
        let cap = self.step_cap()?;
        let schedule = parse_schedule(&self.schedule)?;

        let mut config = json!({
            "model": {
                "backbone": self.backbone,
                "embedding_size": embedding_size,
                "crop_width": crop_width,
                "crop_height": crop_height,
            },
            "pad_x": pad_x,
            "pad_y": pad_y,
            "lr": lr,
            "n_epochs": n_epochs,
            "batch_size": batch_size,
            "max_steps_per_epoch": cap,
            "pretrained": self.pretrained,
        });
        if let Some(schedule) = schedule {
            config["schedule"] = schedule;
        }
        Ok(config)
    }

    fn crop_size(&self) -> Result<[u64; 2], String> {
        Ok([
            whole_number(&self.crop_width, "The crop width", MIN_CROP_SIDE)?,
            whole_number(&self.crop_height, "The crop height", MIN_CROP_SIDE)?,
        ])
    }

    fn padding(&self) -> Result<[f64; 2], String> {
        Ok([
            non_negative_number(&self.pad_x, "The box padding in x")?,
            non_negative_number(&self.pad_y, "The box padding in y")?,
        ])
    }

    /// The cap on steps per epoch, `null` for whole epochs.
    fn step_cap(&self) -> Result<Value, String> {
        match self.max_steps_per_epoch.trim() {
            "" => Ok(Value::Null),
            text => Ok(json!(whole_number(text, "The cap on steps per epoch", 1)?)),
        }
    }
}

impl LrSweepForm {
    /// The body of `POST /api/admin/lr-find`, with the run form's config.
    ///
    /// # Errors
    ///
    /// A sentence naming the first field that is wrong.
    pub fn to_body(&self, config: Value) -> Result<Value, String> {
        let start_lr = positive_number(&self.start_lr, "The first learning rate")?;
        let end_lr = positive_number(&self.end_lr, "The last learning rate")?;
        if end_lr <= start_lr {
            return Err("The last learning rate must be larger than the first.".into());
        }
        let n_steps = whole_number(&self.n_steps, "The number of sweep steps", 2)?;
        Ok(json!({ "config": config, "start_lr": start_lr, "end_lr": end_lr, "n_steps": n_steps }))
    }
}

impl DcutSweepForm {
    /// The body of `POST /api/admin/runs/{id}/validate`.
    ///
    /// # Errors
    ///
    /// A sentence naming the first field that is wrong.
    pub fn to_request(&self) -> Result<ValidateRequest, String> {
        let lo = positive_number(&self.lo, "The smallest dcut")? as f32;
        let hi = positive_number(&self.hi, "The largest dcut")? as f32;
        if hi < lo {
            return Err("The largest dcut must not be below the smallest.".into());
        }
        let n = whole_number(&self.n, "The number of dcut values", 1)? as usize;
        if n > 1000 {
            return Err("Try at most 1000 dcut values.".into());
        }
        Ok(ValidateRequest {
            dcut: None,
            sweep: Some(DcutSweep { lo, hi, n }),
        })
    }
}

fn positive_number(text: &str, what: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!(
            "{what} must be a positive number such as 5e-4, not {:?}.",
            text.trim()
        )),
    }
}

fn non_negative_number(text: &str, what: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!(
            "{what} must be a number of at least 0 such as 20, not {:?}.",
            text.trim()
        )),
    }
}

/// The schedule as typed: `None` when empty (the server then uses the
/// reference), else a JSON object with a non-empty `phases` list.
fn parse_schedule(text: &str) -> Result<Option<Value>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let schedule: Value =
        serde_json::from_str(text).map_err(|e| format!("The schedule is not valid JSON: {e}."))?;
    let phases = schedule.get("phases").and_then(Value::as_array);
    if phases.is_none_or(Vec::is_empty) {
        let shape = "a JSON object with a non-empty \"phases\" list, shaped like the reference";
        return Err(format!("The schedule must be {shape}."));
    }
    Ok(Some(schedule))
}

fn whole_number(text: &str, what: &str, at_least: u64) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(value) if value >= at_least => Ok(value),
        _ => Err(format!(
            "{what} must be a whole number of at least {at_least}, not {:?}.",
            text.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use flukeid_shared::api::REFERENCE_SCHEDULE_JSON;

    use super::*;

    /// The problem the default form has after `edit`.
    fn problem(edit: impl FnOnce(&mut RunForm)) -> String {
        let mut form = RunForm::default();
        edit(&mut form);
        form.to_config().unwrap_err()
    }

    #[test]
    fn the_default_form_sends_the_reference_config() {
        let config = RunForm::default().to_config().unwrap();
        let expected = json!({
            "model": {
                "backbone": "resnext50", "embedding_size": 256,
                "crop_width": 576, "crop_height": 192,
            },
            "pad_x": 50.0, "pad_y": 20.0,
            "lr": 5e-4, "n_epochs": 11, "batch_size": 16,
            "max_steps_per_epoch": null, "pretrained": true,
        });
        assert_eq!(config, expected);
        assert!(config.get("schedule").is_none());
    }

    #[test]
    fn a_step_cap_and_another_backbone_are_sent_as_typed() {
        let form = RunForm {
            backbone: "efficientnet_lite0".into(),
            max_steps_per_epoch: " 20 ".into(),
            pretrained: false,
            ..RunForm::default()
        };
        let config = form.to_config().unwrap();
        assert_eq!(config["max_steps_per_epoch"], json!(20));
        assert_eq!(config["model"]["backbone"], json!("efficientnet_lite0"));
        assert_eq!(config["pretrained"], json!(false));
    }

    #[test]
    fn crops_padding_and_a_schedule_are_sent_as_typed() {
        let two_phases = r#"{"phases": [{"lr_factor": 1.0}, {"lr_factor": 0.5}]}"#;
        let form = RunForm {
            crop_width: "288".into(),
            crop_height: " 96".into(),
            pad_x: "0".into(),
            pad_y: "12.5".into(),
            schedule: two_phases.into(),
            ..RunForm::default()
        };
        let config = form.to_config().unwrap();
        assert_eq!(config["model"]["crop_width"], json!(288));
        assert_eq!(config["model"]["crop_height"], json!(96));
        assert_eq!(config["pad_x"], json!(0.0));
        assert_eq!(config["pad_y"], json!(12.5));
        let sent: Value = serde_json::from_str(two_phases).unwrap();
        assert_eq!(config["schedule"], sent);
    }

    #[test]
    fn the_reference_schedule_text_passes_the_form() {
        let form = RunForm {
            schedule: REFERENCE_SCHEDULE_JSON.into(),
            ..RunForm::default()
        };
        let phases = &form.to_config().unwrap()["schedule"]["phases"];
        assert_eq!(phases.as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn wrong_fields_are_named() {
        assert!(problem(|f| f.lr = "fast".into()).starts_with("The learning rate"));
        assert!(problem(|f| f.lr = "-1".into()).contains("positive"));
        assert!(problem(|f| f.n_epochs = "0".into()).starts_with("The number of epochs"));
        assert!(problem(|f| f.batch_size = "2.5".into()).starts_with("The batch size"));
        assert!(problem(|f| f.backbone = "vgg".into()).contains("vgg"));
        assert!(problem(|f| f.max_steps_per_epoch = "x".into()).contains("cap"));
    }

    #[test]
    fn wrong_crops_padding_and_schedules_are_named() {
        let small = problem(|f| f.crop_width = "8".into());
        assert!(small.starts_with("The crop width"), "{small}");
        assert!(small.contains("at least 16"), "{small}");
        assert!(problem(|f| f.crop_height = "tall".into()).starts_with("The crop height"));
        assert!(problem(|f| f.pad_x = "-1".into()).starts_with("The box padding in x"));
        assert!(problem(|f| f.pad_y = "".into()).starts_with("The box padding in y"));

        let not_json = problem(|f| f.schedule = "{phases".into());
        assert!(
            not_json.starts_with("The schedule is not valid JSON"),
            "{not_json}"
        );
        for shape in ["[1, 2]", r#"{"phases": []}"#, r#"{"phases": {}}"#, "{}"] {
            let wrong = problem(|f| f.schedule = shape.into());
            assert!(
                wrong.starts_with("The schedule must be"),
                "{shape}: {wrong}"
            );
        }
        let blank = RunForm {
            schedule: "  \n ".into(),
            ..RunForm::default()
        };
        assert!(blank.to_config().is_ok());
    }

    #[test]
    fn the_lr_sweep_carries_the_config_and_wants_an_increasing_range() {
        let config = json!({ "lr": 1e-3 });
        let body = LrSweepForm::default().to_body(config.clone()).unwrap();
        assert_eq!(
            body,
            json!({ "config": config, "start_lr": 1e-7, "end_lr": 1.0, "n_steps": 100 })
        );
        let backwards = LrSweepForm {
            start_lr: "1".into(),
            end_lr: "1e-3".into(),
            ..LrSweepForm::default()
        };
        assert!(backwards.to_body(json!({})).is_err());
    }

    #[test]
    fn the_dcut_sweep_becomes_a_validate_request() {
        let request = DcutSweepForm::default().to_request().unwrap();
        assert_eq!(
            request.sweep,
            Some(DcutSweep {
                lo: 0.5,
                hi: 6.0,
                n: 23
            })
        );
        let backwards = DcutSweepForm {
            lo: "3".into(),
            hi: "1".into(),
            n: "5".into(),
        };
        assert!(backwards.to_request().is_err());
        let too_many = DcutSweepForm {
            n: "5000".into(),
            ..DcutSweepForm::default()
        };
        assert!(too_many.to_request().is_err());
    }
}
