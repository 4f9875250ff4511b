//! Adam with parameter groups, gradient-norm clipping and dynamic loss
//! scaling, written over the var store so that its state can be saved in a
//! checkpoint and restored exactly (libtorch's optimizers, as tch exposes
//! them, cannot save theirs).

use std::collections::BTreeMap;

use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// Adam's constants (PyTorch's defaults, which the reference used).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    pub max_grad_norm: f64,
}

/// One trainable variable with its moments.
struct Slot {
    name: String,
    group: usize,
    param: Tensor,
    m: Tensor,
    v: Tensor,
}

/// Adam over a var store's trainable variables. Each variable keeps the
/// group its path was created with; [`Adam::set_lrs`] sets one rate a group.
pub struct Adam {
    config: AdamConfig,
    slots: Vec<Slot>,
    lrs: Vec<f64>,
    n_steps: i64,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Global gradient norm before clipping (after unscaling).
    pub grad_norm: f64,
    /// False when the gradients held inf or NaN and the step was skipped.
    pub applied: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: 1.0,
        }
    }
}

impl Adam {
    /// Tracks every trainable variable of `vs`, in name order.
    pub fn new(vs: &VarStore, config: AdamConfig) -> Self {
        let variables = vs
            .variables_
            .lock()
            .expect("the var store lock is not poisoned");
        let group_of: Vec<(i64, usize)> = variables
            .trainable_variables
            .iter()
            .map(|var| (var.tensor.data_ptr() as i64, var.group))
            .collect();
        let mut named: Vec<(&String, &Tensor)> = variables.named_variables.iter().collect();
        named.sort_by(|a, b| a.0.cmp(b.0));

        let slots: Vec<Slot> = named
            .into_iter()
            .filter_map(|(name, param)| {
                let ptr = param.data_ptr() as i64;
                let group = group_of.iter().find(|(p, _)| *p == ptr)?.1;
                let m = param.zeros_like().to_kind(Kind::Float);
                let v = m.zeros_like();
                Some(Slot {
                    name: name.clone(),
                    group,
                    param: param.shallow_clone(),
                    m,
                    v,
                })
            })
            .collect();
        let n_groups = slots.iter().map(|s| s.group + 1).max().unwrap_or(1);
        Self {
            config,
            slots,
            lrs: vec![0.0; n_groups],
            n_steps: 0,
        }
    }

    /// Sets the learning rate of each group, in group order.
    pub fn set_lrs(&mut self, lrs: &[f64]) {
        for (group, lr) in self.lrs.iter_mut().enumerate() {
            *lr = lrs[group.min(lrs.len() - 1)];
        }
    }

    /// Number of steps applied so far.
    pub fn n_steps(&self) -> i64 {
        self.n_steps
    }

    /// Clears the gradients of every tracked variable.
    pub fn zero_grad(&mut self) {
        for slot in &mut self.slots {
            slot.param.zero_grad();
        }
    }

    /// Divides the gradients by `loss_scale`, clips their global norm and
    /// applies one Adam update to every variable that has a gradient. With
    /// non-finite gradients nothing changes and the outcome says so.
    pub fn step(&mut self, loss_scale: f64) -> StepOutcome {
        tch::no_grad(|| {
            let grads: Vec<(usize, Tensor)> = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.param.requires_grad() && s.param.grad().defined())
                .map(|(i, s)| (i, s.param.grad().to_kind(Kind::Float) / loss_scale))
                .collect();
            let norm_sq: f64 = grads
                .iter()
                .map(|(_, g)| g.square().sum(Kind::Float).double_value(&[]))
                .sum();
            let grad_norm = norm_sq.sqrt();
            if !grad_norm.is_finite() {
                return StepOutcome {
                    grad_norm,
                    applied: false,
                };
            }

            let max = self.config.max_grad_norm;
            let clip = if max > 0.0 && grad_norm > max {
                max / (grad_norm + 1e-6)
            } else {
                1.0
            };
            self.n_steps += 1;
            for (slot_idx, grad) in grads {
                self.update(slot_idx, &(grad * clip));
            }
            StepOutcome {
                grad_norm,
                applied: true,
            }
        })
    }

    /// The moments and step count, named for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut state = vec![("adam.n_steps".to_string(), Tensor::from(self.n_steps))];
        for slot in &self.slots {
            state.push((format!("adam.m.{}", slot.name), slot.m.shallow_clone()));
            state.push((format!("adam.v.{}", slot.name), slot.v.shallow_clone()));
        }
        state
    }

    /// Restores what [`Adam::state`] saved; entries for unknown variables
    /// are ignored and missing ones stay zero.
    pub fn load_state(&mut self, state: &BTreeMap<String, Tensor>) {
        if let Some(n_steps) = state.get("adam.n_steps") {
            self.n_steps = n_steps.int64_value(&[]);
        }
        for slot in &mut self.slots {
            let device = slot.m.device();
            if let Some(m) = state.get(&format!("adam.m.{}", slot.name)) {
                slot.m = m.to_device(device).to_kind(Kind::Float);
            }
            if let Some(v) = state.get(&format!("adam.v.{}", slot.name)) {
                slot.v = v.to_device(device).to_kind(Kind::Float);
            }
        }
    }

    fn update(&mut self, slot_idx: usize, grad: &Tensor) {
        let AdamConfig {
            beta1, beta2, eps, ..
        } = self.config;
        let t = self.n_steps as i32;
        let slot = &mut self.slots[slot_idx];
        let lr = self.lrs[slot.group.min(self.lrs.len() - 1)];

        slot.m = &slot.m * beta1 + grad * (1.0 - beta1);
        slot.v = &slot.v * beta2 + grad.square() * (1.0 - beta2);
        let m_hat = &slot.m / (1.0 - beta1.powi(t));
        let v_hat = &slot.v / (1.0 - beta2.powi(t));
        let update = m_hat / (v_hat.sqrt() + eps) * lr;
        let _ = slot.param.f_sub_(&update.to_kind(slot.param.kind()));
    }
}

/// Dynamic loss scaling for fp16: the scale halves after a step with
/// non-finite gradients and doubles after `growth_interval` clean steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub clean_steps: u64,
    pub growth_interval: u64,
}

impl LossScaler {
    /// A scaler that starts at 2^16, as PyTorch's does.
    pub fn dynamic() -> Self {
        Self {
            scale: 65_536.0,
            clean_steps: 0,
            growth_interval: 2_000,
        }
    }

    /// A scaler that never scales (fp32 and bf16).
    pub fn none() -> Self {
        Self {
            scale: 1.0,
            clean_steps: 0,
            growth_interval: u64::MAX,
        }
    }

    /// Adjusts the scale after a step.
    pub fn update(&mut self, applied: bool) {
        if self.growth_interval == u64::MAX {
            return;
        }
        if applied {
            self.clean_steps += 1;
            if self.clean_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        } else {
            self.scale = (self.scale / 2.0).max(1.0);
            self.clean_steps = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module};
    use tch::Device;

    #[test]
    fn first_adam_step_moves_each_weight_by_the_learning_rate() {
        // After one step m_hat = g and v_hat = g^2, so the update is
        // lr * g / (|g| + eps): lr times the sign of the gradient.
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().sub("w").var("x", &[3], nn::Init::Const(1.0));
        let config = AdamConfig {
            max_grad_norm: 0.0,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(&vs, config);
        adam.set_lrs(&[0.1]);
        let target = Tensor::from_slice(&[0.0f32, 2.0, 1.0]);
        (&w - target).square().sum(Kind::Float).backward();
        adam.step(1.0);
        let got = Vec::<f32>::try_from(&w).unwrap();
        assert!((got[0] - 0.9).abs() < 1e-6 && (got[1] - 1.1).abs() < 1e-6);
        assert!((got[2] - 1.0).abs() < 1e-6, "zero gradient, no move");
    }

    #[test]
    fn groups_get_their_own_rates_and_frozen_variables_stay() {
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().set_group(0).var("a", &[1], nn::Init::Const(0.0));
        let b = vs.root().set_group(1).var("b", &[1], nn::Init::Const(0.0));
        let c = vs.root().set_group(1).var("c", &[1], nn::Init::Const(0.0));
        let _ = c.set_requires_grad(false);
        let mut adam = Adam::new(&vs, AdamConfig::default());
        adam.set_lrs(&[0.01, 0.5]);
        (&a + &b + &c).sum(Kind::Float).backward();
        adam.step(1.0);
        assert!((a.double_value(&[0]) + 0.01).abs() < 1e-6);
        assert!((b.double_value(&[0]) + 0.5).abs() < 1e-6);
        assert_eq!(c.double_value(&[0]), 0.0);
    }

    #[test]
    fn clipping_and_non_finite_gradients() {
        let vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root(), 2, 1, Default::default());
        let mut adam = Adam::new(&vs, AdamConfig::default());
        let xs = Tensor::from_slice(&[1e3f32, -1e3]).view([1, 2]);
        lin.forward(&xs).sum(Kind::Float).backward();
        let outcome = adam.step(1.0);
        assert!(outcome.applied && outcome.grad_norm > 1.0);

        adam.zero_grad();
        (lin.forward(&xs) * f64::INFINITY)
            .sum(Kind::Float)
            .backward();
        let before = lin.ws.copy();
        let outcome = adam.step(1.0);
        assert!(!outcome.applied);
        assert_eq!(
            Vec::<f32>::try_from(&before.flatten(0, -1)).unwrap(),
            Vec::<f32>::try_from(&lin.ws.flatten(0, -1)).unwrap()
        );
        assert_eq!(adam.n_steps(), 1);
    }

    #[test]
    fn state_round_trips() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let config = AdamConfig {
            max_grad_norm: 0.0,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(&vs, config);
        adam.set_lrs(&[0.1]);
        w.sum(Kind::Float).backward();
        adam.step(1.0);
        let state: BTreeMap<String, Tensor> = adam.state().into_iter().collect();

        let mut restored = Adam::new(&vs, AdamConfig::default());
        restored.load_state(&state);
        assert_eq!(restored.n_steps(), 1);
        let m = &restored.slots[0].m;
        assert!((m.double_value(&[0]) - 0.1).abs() < 1e-6);
    }

    #[test]
    fn loss_scale_halves_on_overflow_and_grows_after_clean_steps() {
        let mut scaler = LossScaler {
            scale: 8.0,
            clean_steps: 0,
            growth_interval: 2,
        };
        scaler.update(false);
        assert_eq!(scaler.scale, 4.0);
        scaler.update(true);
        scaler.update(true);
        assert_eq!(scaler.scale, 8.0);
        let mut none = LossScaler::none();
        none.update(false);
        assert_eq!(none.scale, 1.0);
    }
}
