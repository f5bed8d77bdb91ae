//! Which backend runs: `--device gpu|cpu|lavapipe|wgpu|auto` or `$HYPERMOD_DEVICE`.
//!
//! `auto` (the default) takes a real GPU adapter when wgpu finds one and the native CPU backend
//! otherwise: a software Vulkan/GL adapter (lavapipe, llvmpipe, WARP) runs our WGSL an order of
//! magnitude below what the same CPU does natively, so it is only used when asked for.

use std::fmt;
use std::str::FromStr;

use crate::gpu::device::DeviceOptions;
use crate::gpu::error::{DeviceError, Result};
use crate::gpu::{Device, ADAPTER_ENV};

/// Environment variable naming the device choice (the CLI's `--device` sets it).
pub const DEVICE_ENV: &str = "HYPERMOD_DEVICE";

/// A requested device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A real GPU if wgpu finds one, else the native CPU backend.
    Auto,
    /// A hardware GPU adapter (discrete, integrated or virtual); an error when there is none.
    Device,
    /// The native CPU backend.
    Cpu,
    /// A software wgpu adapter (lavapipe, llvmpipe, WARP): the WGSL kernels on the CPU.
    Lavapipe,
    /// The best wgpu adapter of any kind (`HYPERMOD_ADAPTER` and `WGPU_BACKEND` apply).
    Wgpu,
}

impl DeviceChoice {
    /// Every choice with its name, for help texts and errors.
    pub const ALL: [(DeviceChoice, &'static str); 5] = [
        (DeviceChoice::Auto, "auto"),
        (DeviceChoice::Device, "gpu"),
        (DeviceChoice::Cpu, "cpu"),
        (DeviceChoice::Lavapipe, "lavapipe"),
        (DeviceChoice::Wgpu, "wgpu"),
    ];

    /// `$HYPERMOD_DEVICE`, or `auto` when unset.
    pub fn from_env() -> Result<DeviceChoice> {
        match std::env::var(DEVICE_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(DeviceChoice::Auto),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = DeviceChoice::ALL
            .iter()
            .find(|(c, _)| c == self)
            .map_or("?", |(_, n)| n);
        f.write_str(name)
    }
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<DeviceChoice> {
        let lc = s.trim().to_lowercase();
        DeviceChoice::ALL
            .iter()
            .find(|(_, n)| *n == lc)
            .map(|(c, _)| *c)
            .ok_or_else(|| {
                let names: Vec<&str> = DeviceChoice::ALL.iter().map(|(_, n)| *n).collect();
                DeviceError::InvalidArgument {
                    op: "device",
                    detail: format!("unknown device '{s}': expected one of {}", names.join(", ")),
                }
            })
    }
}

fn is_software(a: &wgpu::Adapter) -> bool {
    a.get_info().device_type == wgpu::DeviceType::Cpu
}

fn describe(adapters: &[wgpu::Adapter]) -> String {
    let names: Vec<String> = adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
        })
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl Device {
    /// Opens the device `choice` asks for; [`Device::selection`] then says why it was chosen.
    pub fn open(choice: DeviceChoice, options: DeviceOptions) -> Result<Device> {
        let pinned = std::env::var(ADAPTER_ENV).is_ok();
        match choice {
            DeviceChoice::Cpu => Device::native(None),
            DeviceChoice::Wgpu => {
                let adapter = Device::ranked_adapters()?.remove(0);
                Device::from_adapter(adapter, options)
            }
            DeviceChoice::Device | DeviceChoice::Lavapipe => {
                let want_software = choice == DeviceChoice::Lavapipe;
                let adapters = Device::ranked_adapters()?;
                let seen = describe(&adapters);
                let adapter = adapters
                    .into_iter()
                    .find(|a| is_software(a) == want_software)
                    .ok_or_else(|| DeviceError::NoAdapter {
                        tried: format!(
                            "--device {choice}: no {} adapter among [{seen}]",
                            if want_software {
                                "software (CPU)"
                            } else {
                                "hardware GPU"
                            }
                        ),
                    })?;
                let mut gpu = Device::from_adapter(adapter, options)?;
                let why = format!("--device {choice}: {}", gpu.selection());
                gpu.set_selection(why);
                Ok(gpu)
            }
            DeviceChoice::Auto => {
                let adapters = match Device::ranked_adapters() {
                    Ok(a) => a,
                    // A pinned adapter that is missing is an error, not a silent CPU fallback.
                    Err(e) if pinned => return Err(e),
                    Err(_) => Vec::new(),
                };
                let seen = describe(&adapters);
                let hardware = adapters.into_iter().find(|a| pinned || !is_software(a));
                match hardware {
                    Some(adapter) => {
                        let mut gpu = Device::from_adapter(adapter, options)?;
                        let why = format!("auto: GPU found, {}", gpu.selection());
                        gpu.set_selection(why);
                        Ok(gpu)
                    }
                    None => {
                        let mut gpu = Device::native(None)?;
                        let why = format!(
                            "auto: no hardware GPU among wgpu's adapters [{seen}], so {} \
                             (--device lavapipe runs the WGSL kernels on a software adapter)",
                            gpu.selection()
                        );
                        gpu.set_selection(why);
                        Ok(gpu)
                    }
                }
            }
        }
    }
}
