//! The dashboard's forms as typed text, and the JSON they send: a training
//! run's config (only the fields the form shows; the server fills in the
//! rest from its defaults), the learning-rate sweep, and the `dcut` sweep.
//! Every field is checked here so that a typo gets a sentence next to the
//! form instead of a round trip.

use flukeid_shared::api::{DcutSweep, ValidateRequest};
use serde_json::{json, Value};

/// Backbones the server knows, as its config spells them, with the names
/// the form shows.
pub const BACKBONES: [(&str, &str); 3] = [
    ("resnext50", "ResNeXt-50"),
    ("resnet34", "ResNet-34"),
    ("efficientnet_lite0", "EfficientNet-Lite0"),
];

/// The training form's fields as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunForm {
    pub backbone: String,
    pub lr: String,
    pub n_epochs: String,
    pub batch_size: String,
    pub embedding_size: String,
    /// Empty for whole epochs.
    pub max_steps_per_epoch: String,
    pub pretrained: bool,
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
    /// The reference training: ResNeXt-50, 16 triplets, lr 5e-4, 11 epochs,
    /// 256-long embeddings, ImageNet weights.
    fn default() -> Self {
        Self {
            backbone: "resnext50".into(),
            lr: "5e-4".into(),
            n_epochs: "11".into(),
            batch_size: "16".into(),
            embedding_size: "256".into(),
            max_steps_per_epoch: String::new(),
            pretrained: true,
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
        let cap = match self.max_steps_per_epoch.trim() {
            "" => Value::Null,
            text => json!(whole_number(text, "The cap on steps per epoch", 1)?),
        };
        Ok(json!({
            "model": { "backbone": self.backbone, "embedding_size": embedding_size },
            "lr": lr,
            "n_epochs": n_epochs,
            "batch_size": batch_size,
            "max_steps_per_epoch": cap,
            "pretrained": self.pretrained,
        }))
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
    use super::*;

    #[test]
    fn the_default_form_sends_the_reference_config() {
        let config = RunForm::default().to_config().unwrap();
        let expected = json!({
            "model": { "backbone": "resnext50", "embedding_size": 256 },
            "lr": 5e-4, "n_epochs": 11, "batch_size": 16,
            "max_steps_per_epoch": null, "pretrained": true,
        });
        assert_eq!(config, expected);
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
    fn wrong_fields_are_named() {
        let bad = |form: RunForm| form.to_config().unwrap_err();
        assert!(bad(RunForm {
            lr: "fast".into(),
            ..RunForm::default()
        })
        .starts_with("The learning rate"));
        assert!(bad(RunForm {
            lr: "-1".into(),
            ..RunForm::default()
        })
        .contains("positive"));
        assert!(bad(RunForm {
            n_epochs: "0".into(),
            ..RunForm::default()
        })
        .starts_with("The number of epochs"));
        assert!(bad(RunForm {
            batch_size: "2.5".into(),
            ..RunForm::default()
        })
        .starts_with("The batch size"));
        assert!(bad(RunForm {
            backbone: "vgg".into(),
            ..RunForm::default()
        })
        .contains("vgg"));
        assert!(bad(RunForm {
            max_steps_per_epoch: "x".into(),
            ..RunForm::default()
        })
        .contains("cap"));
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
