//! Choosing where tensors live: CUDA when asked for or available, the CPU
//! otherwise.

use serde::{Deserialize, Serialize};
use tch::Device;

/// A device preference from the command line or a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The first CUDA device when there is one, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// Why the requested device cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("CUDA was requested but libtorch sees no CUDA device")]
    NoCuda,
}

impl DeviceChoice {
    /// Resolves the preference to a device.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoCuda`] when CUDA is requested and absent.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        let cuda = self != DeviceChoice::Cpu && cuda_available();
        let device = match (self, cuda) {
            (DeviceChoice::Cpu, _) | (DeviceChoice::Auto, false) => Device::Cpu,
            (DeviceChoice::Cuda | DeviceChoice::Auto, true) => Device::Cuda(0),
            (DeviceChoice::Cuda, false) => return Err(DeviceError::NoCuda),
        };
        tracing::debug!("using {device:?} ({} CPU threads)", tch::get_num_threads());
        Ok(device)
    }
}

/// Whether libtorch sees a CUDA device. A linker that drops libraries no
/// symbol refers to can leave `libtorch_cuda` unloaded, and then CUDA looks
/// absent; loading it by name first makes its kernels register.
fn cuda_available() -> bool {
    if tch::Cuda::is_available() {
        return true;
    }
    let name = c"libtorch_cuda.so";
    // SAFETY: dlopen with a valid C string; the handle is deliberately kept
    // open for the life of the process.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    !handle.is_null() && tch::Cuda::is_available()
}
