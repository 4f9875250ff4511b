//! The training config as the admin API takes it: a JSON object that may
//! leave out any field at any depth, merged into the defaults, then checked
//! for what would otherwise fail only once a job is under way.
//!
//! Running the jobs is [`super::training`]'s business, not this module's.

use flukeid_shared::api::LrSweep;
use serde_json::{Map, Value};

use super::error::{is_blank, json_body, AppError};
use crate::model::default_weights_path;
use crate::train::TrainConfig;

/// A training config from a JSON object that may leave any field out, at
/// any depth; `"n_epochs": N` keeps the first N epochs of the config's
/// schedule: the patch's `"schedule"` when it has one, else the default
/// (the reference). An N beyond the schedule's end keeps it whole.
///
/// # Errors
///
/// 400 for invalid JSON, 422 for unknown fields or wrong types.
pub fn parse_train_config(body: &[u8]) -> Result<TrainConfig, AppError> {
    if is_blank(body) {
        train_config_from(Value::Object(Map::new()))
    } else {
        train_config_from(json_body(body)?)
    }
}

/// [`parse_train_config`] for a patch already parsed.
///
/// # Errors
///
/// 422 for a patch that is not an object, unknown fields or wrong types.
pub fn train_config_from(patch: Value) -> Result<TrainConfig, AppError> {
    let Value::Object(mut patch) = patch else {
        return Err(AppError::Unprocessable(
            "the training config must be a JSON object".into(),
        ));
    };
    let n_epochs = patch.remove("n_epochs").map(|v| {
        v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            AppError::Unprocessable("n_epochs must be a whole number of at least 1".into())
        })
    });
    let mut config = serde_json::to_value(TrainConfig::default()).expect("configs serialise");
    merge(&mut config, Value::Object(patch), "").map_err(|path| {
        AppError::Unprocessable(format!("the training config has no field {path}"))
    })?;
    let mut config: TrainConfig = serde_json::from_value(config)
        .map_err(|e| AppError::Unprocessable(format!("the training config is not valid: {e}")))?;
    if let Some(n_epochs) = n_epochs.transpose()? {
        config.schedule = config.schedule.truncated(n_epochs as usize);
    }
    Ok(config)
}

/// Merges `patch` into `base`, objects field by field; an unknown field's
/// path is the error.
fn merge(base: &mut Value, patch: Value, path: &str) -> Result<(), String> {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                let field_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let slot = base.get_mut(&key).ok_or_else(|| field_path.clone())?;
                merge(slot, value, &field_path)?;
            }
            Ok(())
        }
        (base, patch) => {
            *base = patch;
            Ok(())
        }
    }
}

/// Refuses configs that would fail only once the job is under way.
pub fn check_config(config: &TrainConfig) -> Result<(), AppError> {
    let bad = |message: String| Err(AppError::Unprocessable(message));
    let model = &config.model;
    if config.batch_size == 0 || config.eval_batch_size == 0 {
        return bad("batch_size and eval_batch_size must be at least 1".into());
    }
    if model.crop_width < 16 || model.crop_height < 16 {
        return bad(format!(
            "crops of {}x{} are too small; use at least 16x16",
            model.crop_width, model.crop_height
        ));
    }
    if !(config.pad_x >= 0.0 && config.pad_y >= 0.0) {
        return bad(format!(
            "box padding must be at least 0 pixels, not {} and {}",
            config.pad_x, config.pad_y
        ));
    }
    if let Err(error) = config.schedule.check() {
        return bad(error.to_string());
    }
    if !(config.lr.is_finite() && config.lr > 0.0) {
        return bad(format!("lr must be a positive number, not {}", config.lr));
    }
    let weights = config.weights.clone().or_else(|| {
        config
            .pretrained
            .then(|| default_weights_path(model.backbone))
    });
    match weights {
        Some(path) if !path.is_file() => bad(format!(
            "no pretrained weights at {}; install them or set \"pretrained\": false",
            path.display()
        )),
        _ => Ok(()),
    }
}

pub fn check_sweep(sweep: &LrSweep) -> Result<(), AppError> {
    let ok = sweep.start_lr > 0.0 && sweep.end_lr > sweep.start_lr && sweep.end_lr.is_finite();
    if !ok || sweep.n_steps < 2 {
        return Err(AppError::Unprocessable(
            "the sweep needs 0 < start_lr < end_lr and n_steps of at least 2".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::model::Backbone;
    use crate::schedule::Schedule;

    #[test]
    fn partial_configs_merge_into_the_defaults_at_any_depth() {
        let body = br#"{"model": {"backbone": "efficientnet_lite0", "crop_width": 96},
            "batch_size": 4, "n_epochs": 2}"#;
        let config = parse_train_config(body).unwrap();
        assert_eq!(config.model.backbone, Backbone::EfficientnetLite0);
        assert_eq!(
            (config.model.crop_width, config.model.crop_height),
            (96, 192)
        );
        assert_eq!(config.batch_size, 4);
        assert_eq!(config.schedule, Schedule::reference().truncated(2));
        assert_eq!(parse_train_config(b"").unwrap(), TrainConfig::default());
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let err = parse_train_config(br#"{"model": {"backbon": "x"}}"#).unwrap_err();
        assert!(err.to_string().contains("model.backbon"), "{err}");
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let err = parse_train_config(b"{not json").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err = parse_train_config(br#"{"batch_size": "four"}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(parse_train_config(b"[1]").is_err());
        assert!(parse_train_config(br#"{"n_epochs": 0}"#).is_err());
    }

    #[test]
    fn n_epochs_keeps_the_first_epochs_of_the_patched_schedule() {
        let mut two_phases = Schedule::reference();
        two_phases.phases.drain(..2);
        let patch = json!({ "schedule": two_phases, "n_epochs": 1 });
        let config = parse_train_config(patch.to_string().as_bytes()).unwrap();
        assert_eq!(config.schedule, two_phases.truncated(1));
        assert_eq!(config.schedule.n_epochs(), 1);
        assert_eq!(config.schedule.phases[0].lr_factor, 1.0 / 8.0);

        let patch = json!({ "schedule": two_phases });
        let whole = parse_train_config(patch.to_string().as_bytes()).unwrap();
        assert_eq!(whole.schedule, two_phases);
    }

    #[test]
    fn configs_that_cannot_train_are_refused_up_front() {
        let mut config = TrainConfig {
            pretrained: false,
            ..TrainConfig::default()
        };
        assert!(check_config(&config).is_ok());
        config.batch_size = 0;
        assert!(check_config(&config).is_err());
        let missing = TrainConfig {
            weights: Some("/nonexistent.safetensors".into()),
            ..TrainConfig::default()
        };
        assert!(check_config(&missing)
            .unwrap_err()
            .to_string()
            .contains("/nonexistent"));
    }

    #[test]
    fn negative_padding_and_bad_schedules_are_refused() {
        let config = TrainConfig {
            pretrained: false,
            pad_y: -1.0,
            ..TrainConfig::default()
        };
        let err = check_config(&config).unwrap_err();
        assert!(err.to_string().contains("padding"), "{err}");

        let mut config = TrainConfig {
            pretrained: false,
            ..TrainConfig::default()
        };
        config.schedule.phases[0].lr_factor = -1.0;
        let err = check_config(&config).unwrap_err();
        assert!(err.to_string().contains("phases[0].lr_factor"), "{err}");
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
