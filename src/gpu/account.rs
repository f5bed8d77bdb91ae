//! What a step costs, counted while it is recorded: every dispatch a [`crate::gpu::Step`] records
//! while an account is open ([`Device::open_account`]), by kernel family (the shader's name),
//! with the FLOPs and bytes its launcher declared ([`Cost`]); and what that would take on a GPU
//! by a stated model ([`GpuModel`]).
//!
//! On a GPU each dependent dispatch costs launch and barrier time whatever its size, so a step of
//! many small kernels is bound by its dispatch count, not by its FLOPs. The account is what the
//! first GPU run will be judged against, and what a fusion must reduce.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::gpu::{Cost, Device};

/// One kernel family's share of an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct FamilyCost {
    /// Dispatches recorded.
    pub dispatches: usize,
    /// Floating-point operations declared (a multiply-add counts 2).
    pub flops: f64,
    /// Bytes declared read and written.
    pub bytes: f64,
}

/// Dispatches recorded while an account was open.
#[derive(Clone, Debug, Default)]
pub struct CostAccount {
    kernels: BTreeMap<String, FamilyCost>,
    launches: Vec<Cost>,
}

impl FamilyCost {
    fn plus(self, other: FamilyCost) -> FamilyCost {
        FamilyCost {
            dispatches: self.dispatches + other.dispatches,
            flops: self.flops + other.flops,
            bytes: self.bytes + other.bytes,
        }
    }
}

impl CostAccount {
    /// Counts one dispatch of the kernel `label` (`shader::entry`; the family is the shader).
    pub fn add(&mut self, label: &str, cost: Cost) {
        let k = self.kernels.entry(label.to_string()).or_default();
        *k = k.plus(FamilyCost {
            dispatches: 1,
            flops: cost.flops,
            bytes: cost.bytes,
        });
        self.launches.push(cost);
    }

    /// Dispatches recorded.
    pub fn dispatches(&self) -> usize {
        self.launches.len()
    }

    /// The total over every kernel.
    pub fn total(&self) -> FamilyCost {
        self.kernels
            .values()
            .fold(FamilyCost::default(), |a, &k| a.plus(k))
    }

    /// Each kernel family's share (the family of `shader::entry` is the shader), by name.
    pub fn families(&self) -> BTreeMap<String, FamilyCost> {
        let mut out = BTreeMap::<String, FamilyCost>::new();
        for (label, &k) in &self.kernels {
            let family = label.split("::").next().unwrap_or(label);
            let f = out.entry(family.to_string()).or_default();
            *f = f.plus(k);
        }
        out
    }

    /// Seconds the recorded dispatches take on `gpu` by its model: each dispatch, one after the
    /// other, costs the model's launch latency plus the longer of its compute and memory times.
    pub fn estimate(&self, gpu: &GpuModel) -> GpuEstimate {
        let work: f64 = self
            .launches
            .iter()
            .map(|c| (c.flops / gpu.fp32_flops).max(c.bytes / gpu.bandwidth))
            .sum();
        let launch = self.launches.len() as f64 * gpu.dispatch_latency_s;
        GpuEstimate {
            model: gpu.name,
            seconds: launch + work,
            launch_share: if launch + work > 0.0 {
                launch / (launch + work)
            } else {
                0.0
            },
        }
    }

    /// The account as reported (`bench step`, JSON): totals, families and the estimate on every
    /// [`GPU_MODELS`] preset.
    pub fn report(&self) -> AccountReport {
        let total = self.total();
        AccountReport {
            dispatches: total.dispatches,
            flops: total.flops,
            bytes: total.bytes,
            families: self.families(),
            kernels: self.kernels.clone(),
            estimates: GPU_MODELS.iter().map(|g| self.estimate(g)).collect(),
            model: MODEL_NOTE,
        }
    }
}

/// A GPU as the estimate sees it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GpuModel {
    /// Name of the preset.
    pub name: &'static str,
    /// Peak FP32 FLOP/s (non-tensor-core: hypermod's kernels are FP32 SIMT).
    pub fp32_flops: f64,
    /// Memory bandwidth, bytes/s.
    pub bandwidth: f64,
    /// Launch and barrier time of one dependent dispatch in a compute pass, seconds.
    pub dispatch_latency_s: f64,
}

/// The presets: NVIDIA's datasheet FP32 peak and HBM bandwidth of the SXM parts, and 5 µs per
/// dependent dispatch (a middle value of what Vulkan compute on NVIDIA data-centre GPUs is
/// reported to take between dependent dispatches, 2-10 µs; to be replaced by the first measured
/// value).
pub const GPU_MODELS: [GpuModel; 2] = [
    GpuModel {
        name: "H100 SXM",
        fp32_flops: 67e12,
        bandwidth: 3.35e12,
        dispatch_latency_s: 5e-6,
    },
    GpuModel {
        name: "H200 SXM",
        fp32_flops: 67e12,
        bandwidth: 4.8e12,
        dispatch_latency_s: 5e-6,
    },
];

/// What the estimate ignores, reported with it.
pub const MODEL_NOTE: &str = "per dispatch: latency + max(FLOP/peak, bytes/bandwidth), summed \
over dispatches run one after another; ignores caches (bytes are counted as if from HBM), \
occupancy of small grids (a kernel of a few workgroups reaches a fraction of peak), host \
submission and readback, and the overlap of independent dispatches";

/// A step's time on one GPU model.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GpuEstimate {
    /// The preset's name.
    pub model: &'static str,
    /// Estimated seconds.
    pub seconds: f64,
    /// Share of them spent on launch latency.
    pub launch_share: f64,
}

/// An account as `bench step` reports it (and writes to JSON).
#[derive(Clone, Debug, Serialize)]
pub struct AccountReport {
    /// Dispatches.
    pub dispatches: usize,
    /// FLOPs declared.
    pub flops: f64,
    /// Bytes declared read and written.
    pub bytes: f64,
    /// By kernel family.
    pub families: BTreeMap<String, FamilyCost>,
    /// By kernel (`family::entry`), for finding what to fuse.
    pub kernels: BTreeMap<String, FamilyCost>,
    /// The estimate on each preset.
    pub estimates: Vec<GpuEstimate>,
    /// What the estimate ignores.
    pub model: &'static str,
}

impl AccountReport {
    /// Lines for a terminal: totals, the estimates, then the families by dispatch count.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "cost per step: {} dispatches, {:.3} GFLOP, {:.1} MB read+written",
            self.dispatches,
            self.flops / 1e9,
            self.bytes / 1e6
        )];
        for e in &self.estimates {
            out.push(format!(
                "  GPU estimate {}: {:.3} ms ({:.0}% launch latency)",
                e.model,
                e.seconds * 1e3,
                e.launch_share * 100.0
            ));
        }
        let mut fams: Vec<(&String, &FamilyCost)> = self.families.iter().collect();
        fams.sort_by(|a, b| b.1.dispatches.cmp(&a.1.dispatches).then(a.0.cmp(b.0)));
        let listed: Vec<String> = fams
            .iter()
            .map(|(name, f)| format!("{name} {}", f.dispatches))
            .collect();
        out.push(format!("  dispatches by family: {}", listed.join(", ")));
        out
    }
}

impl Device {
    /// Starts counting every dispatch recorded into a [`crate::gpu::Step`] on this device
    /// (replacing an account already open).
    pub fn open_account(&self) {
        *self.lock_account() = Some(CostAccount::default());
        self.account_open.store(true, Ordering::SeqCst);
    }

    /// Stops counting and returns what was counted since [`Device::open_account`] (empty if
    /// none was open).
    pub fn close_account(&self) -> CostAccount {
        self.account_open.store(false, Ordering::SeqCst);
        self.lock_account().take().unwrap_or_default()
    }

    /// Counts a dispatch if an account is open.
    pub(crate) fn count(&self, label: &str, cost: Cost) {
        // Every recorded dispatch passes here: without an open account, one relaxed load.
        if !self.account_open.load(Ordering::Relaxed) {
            return;
        }
        if let Some(a) = self.lock_account().as_mut() {
            a.add(label, cost);
        }
    }

    fn lock_account(&self) -> std::sync::MutexGuard<'_, Option<CostAccount>> {
        // A poisoned account still holds valid counts.
        self.account
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
