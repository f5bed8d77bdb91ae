//! Counter-based random fills (`shaders/rng.wgsl`): Philox4x32-10 keyed by a [`RngKey`], with
//! CPU twins that reproduce the GPU's numbers bit for bit.
//!
//! # Counter layout
//! A fill is keyed in one of two ways ([`Keying`]):
//!
//! - **Shared** ([`Keying::Shared`], what a bare [`RngKey`] means): the batch is ONE random
//!   draw. The element at LOGICAL index `i = b·rows·cols + r·cols + c` takes word `i % 4` of
//!   `philox4x32_10(counter = [i / 4, 0, stream as u32, (stream >> 32) as u32],
//!   key = [seed as u32, (seed >> 32) as u32])`. This is for batch items that belong to one run
//!   (the tasks of a meta-batch): they must draw different numbers from one seed.
//! - **Per item** ([`Keying::PerItem`]): item `b` is keyed by its own seed `seeds[b]` (an
//!   [`ItemSeeds`] tensor) and indexed item-locally: element `j = r·cols + c` of item `b` takes
//!   word `j % 4` of `philox4x32_10(counter = [j / 4, 0, stream_lo, stream_hi],
//!   key = [seeds[b] as u32, (seeds[b] >> 32) as u32])`, which is exactly what element `j` of a
//!   batch-1 shared fill with key `(seeds[b], stream)` takes. So item `b` of a batch of
//!   independent runs draws what the same run draws alone, wherever it sits in the batch.
//!
//! Values therefore do not depend on the tensor's offset or batch stride, and a host that knows
//! the keys and shape regenerates them exactly ([`fill_cpu`], [`fill_per_item_cpu`]). Counter
//! word 1 is reserved (0): a tensor holds < 2³² elements, so `i / 4` fits in word 0.
//!
//! The three fills read the same words for the same key, so uniform and normal draws from one
//! key are dependent: give each independent draw its own stream.
//!
//! # Reproducibility
//! Philox and every step up to the final floating-point operations are integer arithmetic.
//! The normal is `Φ⁻¹` evaluated by a degree-6 polynomial per segment (see `NORMAL_TABLE`)
//! using only f32 `+`, `−`, `×`, which WebGPU/Vulkan round correctly; the shader hides each
//! product behind an XOR with a uniform zero so the compiler cannot contract `a·b + c` into an
//! FMA. Remaining risk: a driver that flushes or rounds non-conformantly, or that fuses across
//! that barrier (none known); the bitwise tests detect it on the device at hand.

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, Dispatch, KernelSpec, Shader, Tensor};
use crate::ops::to_u32;

mod keying;
mod native;
pub use keying::{ItemSeeds, Keying};

/// `shaders/rng.wgsl` after the shared Philox (`shaders/philox.wgsl`) and normal
/// (`shaders/normal.wgsl`).
pub static SHADER: Shader = Shader {
    name: "rng",
    source: concat!(
        include_str!("../../shaders/philox.wgsl"),
        include_str!("../../shaders/normal.wgsl"),
        include_str!("../../shaders/rng.wgsl")
    ),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Invocations per workgroup; each handles one Philox block of 4 elements.
const WG: u32 = 64;

/// round(Φ(−2)·2³²) = round(0.0227501319481792072 · 2³²): the truncated normal maps its 32 random
/// bits onto `[P_LO, 2³² − P_LO)` before the inverse CDF, so its support is `[−2σ, 2σ]`.
pub const TRUNC_P_LO: u32 = 97_711_073;

/// Degree of the per-segment polynomials of [`NORMAL_TABLE`].
const DEG: usize = 6;

/// Identifies a random sequence: `seed` is the Philox key, `stream` the high counter words
/// (e.g. the training step or a per-tensor tag), so changing either gives independent numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RngKey {
    /// Philox key (two u32 words, low first).
    pub seed: u64,
    /// Counter words 2 and 3 (low first).
    pub stream: u64,
}

impl RngKey {
    /// A key from a seed and a stream.
    pub fn new(seed: u64, stream: u64) -> RngKey {
        RngKey { seed, stream }
    }
}

/// Which distribution a fill draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// `lo + (hi − lo)·u`, `u = (bits >> 8)·2⁻²⁴ ∈ [0, 1)`.
    Uniform,
    /// `mean + std·z`, `z = Φ⁻¹((bits + ½)·2⁻³²)`, so `|z| ≤ 6.2`.
    Normal,
    /// haiku's `TruncatedNormal(std)` plus `mean`: `z` is `N(0, 1)` restricted to `[−2, 2]`
    /// (inverse CDF on `[Φ(−2), Φ(2)]`, no rejection, no rescaling: Var z ≈ 0.7737413).
    TruncatedNormal,
}

impl Distribution {
    fn code(self) -> u32 {
        match self {
            Distribution::Uniform => 0,
            Distribution::Normal => 1,
            Distribution::TruncatedNormal => 2,
        }
    }
}

crate::uniform! {
    pub(crate) struct Params {
        pub(crate) len: u32,
        pub(crate) item_len: u32,
        pub(crate) out_off: u32,
        pub(crate) out_stride: u32,
        pub(crate) seed_lo: u32,
        pub(crate) seed_hi: u32,
        pub(crate) stream_lo: u32,
        pub(crate) stream_hi: u32,
        pub(crate) a: f32,
        pub(crate) s: f32,
        pub(crate) zero: u32,
        pub(crate) blocks: u32,
    }
}

/// A prepared launch keyed by the Philox generator (a random fill, a random gather). Replay it
/// with a new stream (e.g. each training step) without preparing again.
#[derive(Debug)]
pub struct RngDispatch {
    dispatch: Dispatch,
    params: Vec<u8>,
    stream_at: usize,
}

impl RngDispatch {
    /// Wraps a launch whose parameter struct `params` holds the stream as two u32 words (low,
    /// high) at byte offset `stream_at`.
    pub(crate) fn new<P: bytemuck::Pod>(dispatch: Dispatch, params: &P, stream_at: usize) -> Self {
        RngDispatch {
            dispatch,
            params: bytemuck::bytes_of(params).to_vec(),
            stream_at,
        }
    }
    /// The launch, to record into a step or pass to `gpu.run`.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }
    /// The launch alone, for callers that never change the stream (benchmarks).
    pub fn into_dispatch(self) -> Dispatch {
        self.dispatch
    }
    /// Sets the stream (counter words 2–3) of the next launches; the seed is unchanged.
    pub fn set_stream(&self, gpu: &Device, stream: u64) {
        let mut p = self.params.clone();
        p[self.stream_at..self.stream_at + 4].copy_from_slice(&(stream as u32).to_le_bytes());
        p[self.stream_at + 4..self.stream_at + 8]
            .copy_from_slice(&((stream >> 32) as u32).to_le_bytes());
        self.dispatch.set_param_bytes(gpu, &p);
    }
}

impl std::ops::Deref for RngDispatch {
    type Target = Dispatch;
    fn deref(&self) -> &Dispatch {
        &self.dispatch
    }
}

/// Checks a fill's output and key and returns its uniform parameters (without `a`, `s`) and the
/// per-item seeds it binds, if any.
fn fill_params<'k>(
    op: &'static str,
    t: &Tensor,
    key: Keying<'k>,
) -> Result<(Params, Option<&'k ItemSeeds>)> {
    if t.batch() > 1 && t.batch_stride() < t.item_len() {
        return Err(shape_err(
            op,
            format!(
                "output {} has batch stride smaller than its item, so items would overlap",
                t.shape_str()
            ),
        ));
    }
    let len = to_u32(op, "elements", t.len())?;
    if len > u32::MAX - 3 {
        return Err(shape_err(
            op,
            format!("{} has too many elements", t.shape_str()),
        ));
    }
    let (seed, stream, seeds, blocks) = match key {
        Keying::Shared(k) => (k.seed, k.stream, None, t.len().div_ceil(4)),
        Keying::PerItem { seeds, stream } => {
            seeds.check_batch(op, t)?;
            (0, stream, Some(seeds), t.batch() * t.item_len().div_ceil(4))
        }
    };
    let params = Params {
        len,
        item_len: to_u32(op, "item length", t.item_len().max(1))?,
        out_off: to_u32(op, "offset", t.offset())?,
        out_stride: to_u32(op, "batch stride", t.batch_stride())?,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        stream_lo: stream as u32,
        stream_hi: (stream >> 32) as u32,
        a: 0.0,
        s: 0.0,
        zero: 0,
        blocks: to_u32(op, "Philox blocks", blocks)?,
    };
    Ok((params, seeds))
}

/// Prepares a fill of `t` with `a + s·X`, X drawn from `dist` (uniform: a = lo, s = hi − lo).
fn fill(
    gpu: &Device,
    op: &'static str,
    t: &Tensor,
    key: Keying<'_>,
    dist: Distribution,
    a: f32,
    s: f32,
) -> Result<RngDispatch> {
    if !a.is_finite() || !s.is_finite() {
        return Err(arg_err(
            op,
            format!("parameters {a} and {s} must be finite"),
        ));
    }
    let (params, seeds) = fill_params(op, t, key)?;
    let params = Params { a, s, ..params };
    let table = normal_table(gpu)?;
    let constants = [
        ("WG", WG as f64),
        ("DIST", dist.code() as f64),
        ("P_LO", TRUNC_P_LO as f64),
        ("PER_ITEM", if seeds.is_some() { 1.0 } else { 0.0 }),
    ];
    let spec = KernelSpec {
        shader: &SHADER,
        entry: "main",
        constants: &constants,
        access: &[Access::ReadWrite, Access::Read, Access::Read],
    };
    let cost = Cost {
        flops: t.len() as f64
            * if dist == Distribution::Uniform {
                2.0
            } else {
                16.0
            },
        bytes: 4.0 * t.len() as f64,
    };
    // A shared fill reads no seeds: the (read-only) table stands in for the unused binding.
    let seeds_t = seeds.map_or(&table, |s| s.tensor());
    let dispatch = gpu.dispatch(
        &spec,
        &params,
        &[t, &table, seeds_t],
        grid_1d((params.blocks as usize).div_ceil(WG as usize)),
        cost,
    )?;
    // The dispatch holds the table and seed tensors alive (see `Dispatch`).
    Ok(RngDispatch::new(
        dispatch,
        &params,
        std::mem::offset_of!(Params, stream_lo),
    ))
}

/// Prepares `t ← lo + (hi − lo)·u`, `u = (bits >> 8)·2⁻²⁴` (see [`Distribution::Uniform`]).
/// `key` is an [`RngKey`] (one draw over the whole batch) or [`Keying::per_item`] (one seed per
/// item; see the module docs).
pub fn fill_uniform<'k>(
    gpu: &Device,
    t: &Tensor,
    key: impl Into<Keying<'k>>,
    lo: f32,
    hi: f32,
) -> Result<RngDispatch> {
    let key = key.into();
    fill(
        gpu,
        "fill_uniform",
        t,
        key,
        Distribution::Uniform,
        lo,
        hi - lo,
    )
}

/// Prepares `t ← mean + std·z`, z standard normal (see [`Distribution::Normal`]); `key` as in
/// [`fill_uniform`].
pub fn fill_normal<'k>(
    gpu: &Device,
    t: &Tensor,
    key: impl Into<Keying<'k>>,
    mean: f32,
    std: f32,
) -> Result<RngDispatch> {
    let key = key.into();
    fill(gpu, "fill_normal", t, key, Distribution::Normal, mean, std)
}

/// Prepares `t ← mean + std·z`, z standard normal truncated to `[−2, 2]` (haiku's
/// `TruncatedNormal(std)`, `jax.random.truncated_normal(-2, 2)`; see
/// [`Distribution::TruncatedNormal`]); `key` as in [`fill_uniform`].
pub fn fill_truncated_normal<'k>(
    gpu: &Device,
    t: &Tensor,
    key: impl Into<Keying<'k>>,
    mean: f32,
    std: f32,
) -> Result<RngDispatch> {
    let key = key.into();
    fill(
        gpu,
        "fill_truncated_normal",
        t,
        key,
        Distribution::TruncatedNormal,
        mean,
        std,
    )
}

/// The polynomial table of `Φ⁻¹` on the device, as the kernels that draw normals bind it
/// (`shaders/normal.wgsl`).
pub(crate) fn normal_table(gpu: &Device) -> Result<Tensor> {
    let table = gpu.zeros(1, 1, NORMAL_TABLE.len())?;
    gpu.write(&table, bytemuck::cast_slice(&NORMAL_TABLE))?;
    Ok(table)
}

/// Philox4x32-10 of Random123: 10 rounds of the multiply/xor bijection with a Weyl key schedule.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for _ in 0..10 {
        let m0 = 0xD251_1F53u64 * c[0] as u64;
        let m1 = 0xCD9E_8D57u64 * c[2] as u64;
        c = [
            (m1 >> 32) as u32 ^ c[1] ^ k[0],
            m1 as u32,
            (m0 >> 32) as u32 ^ c[3] ^ k[1],
            m0 as u32,
        ];
        k = [
            k[0].wrapping_add(0x9E37_79B9),
            k[1].wrapping_add(0xBB67_AE85),
        ];
    }
    c
}

/// The 32 random bits of logical element `i` under `key` (the counter layout of the module docs).
pub fn random_bits(key: RngKey, i: u32) -> u32 {
    let ctr = [i / 4, 0, key.stream as u32, (key.stream >> 32) as u32];
    philox4x32_10(ctr, [key.seed as u32, (key.seed >> 32) as u32])[(i % 4) as usize]
}

/// `Φ⁻¹((m + ½)·2⁻³²)` exactly as the shader computes it.
pub fn normal_icdf(m: u32) -> f32 {
    let upper = m >= 0x8000_0000;
    let a = 2 * if upper { !m } else { m } + 1;
    let j = 31 - a.leading_zeros();
    let n = a << (31 - j);
    let seg = (n >> 29) & 3;
    let x = ((n >> 5) & 0xff_ffff) as f32 * 5.960_464_5e-8 - 0.5;
    let base = (j * 4 + seg) as usize * (DEG + 1);
    let mut y = f32::from_bits(NORMAL_TABLE[base]);
    for d in 1..=DEG {
        y = y * x + f32::from_bits(NORMAL_TABLE[base + d]);
    }
    if upper {
        -y
    } else {
        y
    }
}

/// The value `dist` gives the random bits `bits` (a, s as in the launchers).
pub(crate) fn value(dist: Distribution, bits: u32, a: f32, s: f32) -> f32 {
    match dist {
        Distribution::Uniform => s * ((bits >> 8) as f32 * 5.960_464_5e-8) + a,
        Distribution::Normal => s * normal_icdf(bits) + a,
        Distribution::TruncatedNormal => {
            let span = 0u32.wrapping_sub(2 * TRUNC_P_LO);
            let m = TRUNC_P_LO + ((bits as u64 * span as u64) >> 32) as u32;
            s * normal_icdf(m).clamp(-2.0, 2.0) + a
        }
    }
}

/// CPU twin of the shared-key fills: the `len` logical values (bit-identical to the GPU). For
/// [`Distribution::Uniform`] pass `(lo, hi)`, for the normals `(mean, std)`.
pub fn fill_cpu(dist: Distribution, key: RngKey, len: usize, p0: f32, p1: f32) -> Vec<f32> {
    let s = if dist == Distribution::Uniform {
        p1 - p0
    } else {
        p1
    };
    (0..len as u32)
        .map(|i| value(dist, random_bits(key, i), p0, s))
        .collect()
}

/// CPU twin of the per-item fills ([`Keying::PerItem`]): `seeds.len()` items of `item_len`
/// logical values, item `b` being [`fill_cpu`] with key `(seeds[b], stream)`.
pub fn fill_per_item_cpu(
    dist: Distribution,
    seeds: &[u64],
    stream: u64,
    item_len: usize,
    p0: f32,
    p1: f32,
) -> Vec<f32> {
    seeds
        .iter()
        .flat_map(|&seed| fill_cpu(dist, RngKey::new(seed, stream), item_len, p0, p1))
        .collect()
}

/// Piecewise polynomials of `Φ⁻¹(q)`, `q ∈ (0, ½)`, as f32 bit patterns, generated by
/// `tools/rng_normal_table.py` (mpmath Chebyshev fits at 50 digits; max error of the rounded
/// coefficients 2.4e-7, about one f32 ulp of the larger outputs). Segment `(j, s)` (row
/// `4j + s`, j = 0..31) covers `q = 2^(j−33)·(1 + (s + t)/4)`, `t ∈ [0, 1)`; its 7 coefficients
/// (highest degree first) are a polynomial in `t − ½`. The integer exponent `j` absorbs the
/// logarithmic tail, so no `log`/`sqrt` is needed.
const NORMAL_TABLE: [u32; 896] = [
    0xb648e0c4, 0x3788104e, 0xb8bd6c65, 0x3a0f1b90, 0xbb743a09, 0x3d0ca9c8, 0xc0ca3ba5, 0xb570c5b0,
    0x36c762e7, 0xb82a8354, 0x399d74fb, 0xbb2439d4, 0x3ce7433c, 0xc0c93d01, 0xb4b0d314, 0x362d15df,
    0xb7af749f, 0x393f7d3e, 0xbaec0d0d, 0x3cc4757d, 0xc0c8681a, 0xb41607f0, 0x35a978f4, 0xb7469834,
    0x38fa195d, 0xbab1e099, 0x3caad8a2, 0xc0c7b10d, 0xb64bdfe3, 0x378a1c5b, 0xb8c04e16, 0x3a115123,
    0xbb781575, 0x3d0eff29, 0xc0c6c6ec, 0xb574650b, 0x36ca697f, 0xb82d2122, 0x399fe8bf, 0xbb26d7c9,
    0x3ceb22b3, 0xc0c5c40a, 0xb4b38105, 0x362fbb27, 0xb7b22ada, 0x39427e52, 0xbaefd74a, 0x3cc7c674,
    0xc0c4eb8e, 0xb4185188, 0x35ac143a, 0xb749aeea, 0x38fe0c3b, 0xbab4c07d, 0x3cadbffc, 0xc0c43168,
    0xb64f01cf, 0x378c4064, 0xb8c351eb, 0x3a13a14a, 0xbb7c2062, 0x3d1172d5, 0xc0c34347, 0xb5782ed5,
    0x36cd93d8, 0xb82fde35, 0x39a27a44, 0xbb299644, 0x3cef34ee, 0xc0c23bef, 0xb4b64e93, 0x36327fed,
    0xb7b501bc, 0x3945a422, 0xbaf3d0fd, 0x3ccb433e, 0xc0c15fb0, 0xb41ab648, 0x35aeceb9, 0xb74ceb0c,
    0x390117d7, 0xbab7c49d, 0x3cb0cdfb, 0xc0c0a247, 0xb6524935, 0x378e7e45, 0xb8c67a93, 0x3a160e23,
    0xbb802f59, 0x3d14076d, 0xc0bfaff2, 0xb57c265a, 0x36d0e4c0, 0xb832bd09, 0x39a52bf2, 0xbb2c77f4,
    0x3cf37e60, 0xc0bea3e7, 0xb4b93e37, 0x363566ae, 0xb7b7fbdf, 0x3948f1a7, 0xbaf7fe1a, 0x3cceefb9,
    0xc0bdc3b1, 0xb41d3854, 0x35b1aaec, 0xb7504f9c, 0x390343d8, 0xbabaf002, 0x3cb4060e, 0xc0bd02d8,
    0xb655b910, 0x3790d810, 0xb8c9cb0b, 0x3a189a0b, 0xbb826a5f, 0x3d16bfe6, 0xc0bc0c15, 0xb58027a2,
    0x36d45f55, 0xb835c060, 0x39a80074, 0xbb2f7fdc, 0x3cf8040b, 0xc0bafb16, 0xb4bc52b3, 0x36387230,
    0xb7bb1c2e, 0x394c6a37, 0xbafc630e, 0x3cd2d043, 0xc0ba16b2, 0xb41fda0e, 0x35b4ab98, 0xb753dff7,
    0x39058c59, 0xbabe4615, 0x3cb76c15, 0xc0b95239, 0xb65954b2, 0x37935015, 0xb8cd46a9, 0x3a1b47a9,
    0xbb84c3b4, 0x3d199f96, 0xc0b856c7, 0xb58256d5, 0x36d80713, 0xb838eb52, 0x39aafacb, 0xbb32b15b,
    0x3cfccb97, 0xc0b7408d, 0xb4bf8f19, 0x363ba589, 0xb7be65e8, 0x3950118d, 0xbb008268, 0x3cd6e9cb,
    0xc0b657bc, 0xb4229e1e, 0x35b7d3d4, 0xb7579fdf, 0x3907f3d6, 0xbac1caa8, 0x3cbb0476, 0xc0b58f6d,
    0xb65d1fcd, 0x3795e8e9, 0xb8d0f129, 0x3a1e19f3, 0xbb873e14, 0x3d1caa46, 0xc0b48f07, 0xb584a30f,
    0x36dbdfe0, 0xb83c4154, 0x39ae1e52, 0xbb361040, 0x3d00edbb, 0xc0b37343, 0xb4c2f6d9, 0x363f0431,
    0xb7c1dcb5, 0x3953ebdb, 0xbb02f47f, 0x3cdb41f1, 0xc0b285c3, 0xb425877f, 0x35bb2716, 0xb75b938b,
    0x390a7d1c, 0xbac5820e, 0x3cbed431, 0xc0b1b963, 0xb6611e8b, 0x3798a573, 0xb8d4cebe, 0x3a211443,
    0xbb89dc9a, 0x3d1fe448, 0xc0b0b3bc, 0xb5870ee0, 0x36dfee1d, 0xb83fc64d, 0x39b16ed6, 0xbb39a0d6,
    0x3d039d7e, 0xc0af9217, 0xb4c68dd0, 0x36429210, 0xb7c584b1, 0x3957fdde, 0xbb058af8, 0x3cdfdf1f,
    0xc0ae9f9f, 0xb428998a, 0x35bea946, 0xb75fbfbf, 0x390d2b54, 0xbac9712c, 0x3cc2e0ff, 0xc0adceed,
    0xb6655598, 0x379b88f8, 0xb8d8e426, 0x3a243a60, 0xbb8ca2ca, 0x3d23528d, 0xc0acc3b1, 0xb5899d2c,
    0x36e436bb, 0xb8437ea2, 0x39b4f0a3, 0xbb3d6803, 0x3d06794b, 0xc0ab9bcb, 0xb4ca5859, 0x3646538b,
    0xb7c96283, 0x395c4cf2, 0xbb084971, 0x3ce4c8b3, 0xc0aaa407, 0xb42bd807, 0x35c25ecd, 0xb76429db,
    0x39100214, 0xbacd9d96, 0x3cc73174, 0xc0a9cebc, 0xb669ca3c, 0x379e9728, 0xb8dd36be, 0x3a279096,
    0xbb8f94a7, 0x3d26fac6, 0xc0a8bd8c, 0xb58c5139, 0x36e8bf51, 0xb8476f52, 0x39b8a89a, 0xbb416b5a,
    0x3d0985ff, 0xc0a78efc, 0xb4ce5b64, 0x364a4da1, 0xb7cd7b72, 0x3960df34, 0xbb0b3409, 0x3cea0733,
    0xc0a69192, 0xb42f473f, 0x35c64cac, 0xb768d801, 0x39130574, 0xbad20dad, 0x3ccbcd2c, 0xc0a5b75d,
    0xb66e8276, 0x37a1d439, 0xb8e1cca4, 0x3a2b1bca, 0xbb92b6c8, 0x3d2ae38c, 0xc0a49fd2, 0xb58f2ebd,
    0x36ed8e3f, 0xb84b9e0e, 0x39bc9c51, 0xbb45b143, 0x3d0cc93b, 0xc0a36a20, 0xb4d29c8c, 0x364e8601,
    0xb7d1d586, 0x3965bba2, 0xbb0e4f7e, 0x3cefa483, 0xc0a266aa, 0xb432ec12, 0x35ca7897, 0xb76dd12c,
    0x39163a21, 0xbad6c8c6, 0x3cd0bd01, 0xc0a18733, 0xb673851b, 0x37a544f4, 0xb8e6acd3, 0x3a2ee19c,
    0xbb960e77, 0x3d2f148e, 0xc0a068d8, 0xb59239f5, 0x36f2aaca, 0xb850115c, 0x39c0d230, 0xbb4a411e,
    0x3d104994, 0xc09f2b7f, 0xb4d7223b, 0x3653032d, 0xb7d677a7, 0x396aea43, 0xbb11a14c, 0x3cf5ac37,
    0xc09e218c, 0xb436cc14, 0x35cee916, 0xb7731d65, 0x3919a57e, 0xbadbd75c, 0x3cd60b51, 0xc09d3c6e,
    0xb678d9fd, 0x37a8eed9, 0xb8ebdf56, 0x3a32e884, 0xbb99a1d3, 0x3d3396d2, 0xc09c16bf, 0xb59577be,
    0x36f81d4f, 0xb854d0ba, 0x39c5519d, 0xbb4f237e, 0x3d140ec8, 0xc09ad12b, 0xb4dbf3cd, 0x3657cca1,
    0xb7db69cc, 0x39707462, 0xbb152fcd, 0x3cfc2bf0, 0xc099c03a, 0xb43aedaf, 0x35d3a5b1, 0xb778c5ec,
    0x391d4dc6, 0xbae1434b, 0x3cdbc45b, 0xc098d504, 0xb67e8a20, 0x37acd840, 0xb8f16d72, 0x3a373803,
    0xbb9d7800, 0x3d387500, 0xc097a76d, 0xb598edb4, 0x36fdef74, 0xb859e4d9, 0x39ca232f, 0xbb546260,
    0x3d182204, 0xc09658f5, 0xb4e119c4, 0x365ceb03, 0xb7e0b530, 0x397664ca, 0xbb190270, 0x3d0199f1,
    0xc0954073, 0xb43f584d, 0x35d8b71d, 0xb77ed581, 0x39213a3c, 0xbae71820, 0x3ce1f6ab, 0xc0944ea5,
    0xb6824ff7, 0x37b10882, 0xb8f761f3, 0x3a3bd8da, 0xbba1995a, 0x3d3dbbd2, 0xc093187e, 0xb59ca256,
    0x37021638, 0xb85f57d4, 0x39cf50ee, 0xbb5a0982, 0x3d1c8e3f, 0xc091c060, 0xb4e69dfc, 0x36626865,
    0xb7e66495, 0x397cc81e, 0xbb1d21f7, 0x3d056bb9, 0xc0909fa9, 0xb444148b, 0x35de277f, 0xb782ac58,
    0x39257360, 0xbaed6373, 0x3ce8b3bc, 0xc08fa6b0, 0xb68593c7, 0x37b58833, 0xb8fdc975, 0x3a40d54f,
    0xbba60fc1, 0x3d437a93, 0xc08e6736, 0xb5a09d39, 0x370570af, 0xb8653585, 0x39d4e6a8, 0xbb6026c9,
    0x3d2160b4, 0xc08d0496, 0xb4ec8bfe, 0x3668508f, 0xb7ec849e, 0x3981d6a0, 0xbb2198be, 0x3d09970c,
    0xc08bdaea, 0xb4492c7d, 0x35e402be, 0xb7862f1b, 0x392a033a, 0xbaf4356d, 0x3cf010ba, 0xc08ada1d,
    0xb689179b, 0x37ba6164, 0xb902596a, 0x3a463983, 0xbbaae6f6, 0x3d49c3dc, 0xc0899072, 0xb5a4e745,
    0x37090ed5, 0xb86b8be5, 0x39daf255, 0xbb66cac6, 0x3d26a985, 0xc0882250, 0xb4f2f159, 0x366eb165,
    0xb7f3243a, 0x398592ec, 0xbb26732b, 0x3d0e2a40, 0xc086eed2, 0xb44eac05, 0x35ea56e1, 0xb789fbc4,
    0x392ef5b6, 0xbafba160, 0x3cf82797, 0xc085e56c, 0xb68ce3d9, 0x37bf9fff, 0xb90617d8, 0x3a4c13ee,
    0xbbb02d0f, 0x3d50ae88, 0xc084908d, 0xb5a98b00, 0x370cf9cd, 0xb8726b92, 0x39e184a7, 0xbb6e0963,
    0x3d2c7c95, 0xc08315bf, 0xb4f9de1d, 0x36759b64, 0xb7fa552f, 0x3989a384, 0xbb2bc02a, 0x3d133713,
    0xc081d76b, 0xb454a137, 0x35f1349d, 0xb78e1cbd, 0x3934591c, 0xbb01df52, 0x3d008c41, 0xc080c486,
    0xb691027b, 0x37c55234, 0xb90a2a8b, 0x3a5275ec, 0xbbb5f31b, 0x3d585708, 0xc07ec684, 0xb5ae94f4,
    0x37113c80, 0xb879e877, 0x39e8b1b2, 0xbb75facc, 0x3d32f2c3, 0xc07bb4d0, 0xb500b2bc, 0x367d2249,
    0xb801166c, 0x398e1526, 0xbb3191e4, 0x3d18d3c3, 0xc0792019, 0xb45b1cec, 0x35f8aff4, 0xb7929e8a,
    0x393a3eb2, 0xbb0654d2, 0x3d0585fa, 0xc076e531, 0xb6957f75, 0x37cb8910, 0xb90e9e37, 0x3a597485,
    0xbbbc4ded, 0x3d60e147, 0xc074070b, 0xb5b41435, 0x3715e414, 0xb8810d52, 0x39f091df, 0xbb7ebc9d,
    0x3d3a2b93, 0xc070d5fb, 0xb504cf40, 0x3682aef3, 0xb805628a, 0x3992f756, 0xbb37fea5, 0x3d1f1ca2,
    0xc06e2659, 0xb4623374, 0x3600708e, 0xb7979061, 0x3940bb85, 0xbb0b42af, 0x3d0b1ad1, 0xc06bd3c6,
    0xb69a693c, 0x37d2593e, 0xb913824e, 0x3a612974, 0xbbc3573a, 0x3d6a7b58, 0xc068d69c, 0xb5ba1b04,
    0x371b0084, 0xb8858fbb, 0x39f9431b, 0xbb8439bd, 0x3d424fb0, 0xc065823e, 0xb509529f, 0x368735a1,
    0xb80a1ec1, 0x39985d27, 0xbb3f2216, 0x3d26365e, 0xc062b43b, 0xb469fd89, 0x3604f2d0, 0xb79d04df,
    0x3947e98c, 0xbb10beac, 0x3d116c62, 0xc06046e3, 0xb69fd171, 0x37d9dc09, 0xb918e9cd, 0x3a69b484,
    0xbbcb2f12, 0x3d756178, 0xc05d2691, 0xb5c0bfb9, 0x3720a56a, 0xb88a8d8f, 0x3a017540, 0xbb89a69f,
    0x3d4b9491, 0xc059aa10, 0xb50e4e0c, 0x368c3707, 0xb80f5e9c, 0x399e5e4f, 0xbb471eeb, 0x3d2e5173,
    0xc056b96c, 0xb472998e, 0x3609f0f7, 0xb7a31316, 0x394fe91a, 0xbb16e420, 0x3d18a751, 0xc0542d7b,
    0xb6a5cdcf, 0x37e230b5, 0xb91eec46, 0x3a733d6b, 0xbbd3fddc, 0x3d80f20f, 0xc050e4dd, 0xb5c81df3,
    0x3726eb1a, 0xb8901d58, 0x3a06db45, 0xbb8fc1ef, 0x3d564220, 0xc04d3a35, 0xb513d6d6, 0x3691c95a,
    0xb8153a83, 0x39a51897, 0xbb502121, 0x3d37af7e, 0xc04a219c, 0xb47c2d41, 0x360f81b7, 0xb7a9d7e5,
    0x3958e2e4, 0xbb1dd5ca, 0x3d210857, 0xc0477243, 0xb6ac7968, 0x37eb7e58, 0xb925a74f, 0x3a7df650,
    0xbbddf711, 0x3d8838c6, 0xc043fadd, 0xb5d05835, 0x372df012, 0xb8965b79, 0x3a0cf113, 0xbb96b0b1,
    0x3d62bbb7, 0xc0401a67, 0xb51a07b1, 0x36980883, 0xb81bd147, 0x39acb1d9, 0xbb5a60ff, 0x3d42abc8,
    0xc03cd309, 0xb4837404, 0x3615c1ac, 0xb7b177d5, 0x39630ac3, 0xbb25c02d, 0x3d2ae47e, 0xc039fa17,
    0xb6b3f651, 0x37f5f656, 0xb92d407b, 0x3a850fa1, 0xbbe95cbe, 0x3d90d2b9, 0xc0364b84, 0xb5d99a1c,
    0x3735dafc, 0xb89d6c1b, 0x3a13dc64, 0xbb9ea275, 0x3d718f0a, 0xc0322b49, 0xb5210273, 0x369f17fe,
    0xb8234a45, 0x39b55ab3, 0xbb6626e5, 0x3d4fc9a6, 0xc02eac34, 0xb489830c, 0x361cd54d, 0xb7ba21af,
    0x396ea373, 0xbb2edc8a, 0x3d36b710, 0xc02ba17e, 0xb6bc6ff8, 0x3800ebe9, 0xb935e806, 0x3a8c0578,
    0xbbf683c8, 0x3d9b31f7, 0xc027b091, 0xb5e41b65, 0x373edd71, 0xb8a57dcd, 0x3a1bce0f, 0xbba7d43c,
    0x3d81c71e, 0xc023432f, 0xb528f276, 0x36a7256e, 0xb82bd84d, 0x39bf522c, 0xbb73cf58, 0x3d5fcdf7,
    0xc01f8045, 0xb4906a62, 0x3624eb95, 0xb7c411f5, 0x397c039e, 0xbb3973c6, 0x3d453aa8, 0xc01c38a0,
    0xb6c61e4a, 0x3807ba30, 0xb93fdc76, 0x3a941272, 0xbc02ebbe, 0x3da80564, 0xc017f5f4, 0xb5f0240f,
    0x374937ad, 0xb8aecd0f, 0x3a2505b8, 0xbbb29237, 0x3d8d003c, 0xc01328c0, 0xb5320fe0, 0x36b06c11,
    0xb835bd81, 0x39caea88, 0xbb81e626, 0x3d73ef6d, 0xc00f10ea, 0xb4985c2d, 0x362e419c, 0xb7cf977d,
    0x3985ce3c, 0xbb45de33, 0x3d57996e, 0xc00b7c6a, 0xb6d149fe, 0x380f9b1f, 0xb94b6f5f, 0x3a9d7ce3,
    0xbc0beb1a, 0x3db86922, 0xc006d1c8, 0xb5fe11eb, 0x37553d82, 0xb8b9a8de, 0x3a2fd6b3, 0xbbbf320b,
    0x3d9b81fd, 0xc0018970, 0xb53ca3f1, 0x36bb3946, 0xb8415039, 0x39d88fa3, 0xbb8b4b54, 0x3d871d1d,
    0xbffa0683, 0xb4a199f1, 0x3639273c, 0xb7dd192a, 0x398f0161, 0xbb54731b, 0x3d6fd2b2, 0xbff213cd,
    0xb6de5222, 0x3818d42a, 0xb9590b08, 0x3aa8a1a1, 0xbc167624, 0x3dce4f7c, 0xbfe7aa8d, 0xb6072fd4,
    0x37635c79, 0xb8c677cb, 0x3a3cb019, 0xbbcdea1b, 0x3daf34c8, 0xbfdbce22, 0xb5490e72, 0x36c7f20f,
    0xb84f0004, 0x39e8d380, 0xbb962bcf, 0x3d993b0d, 0xbfd193e1, 0xb4ac7945, 0x3646048a, 0xb7ed1b11,
    0x399a0219, 0xbb652db8, 0x3d88d60a, 0xbfc88940, 0xb6edb2b2, 0x3823bfa6, 0xb9693610, 0x3ab606ff,
    0xbc225965, 0x3ded83a9, 0xbfbc9a96, 0xb610d661, 0x377422b1, 0xb8d5b825, 0x3a4c4129, 0xbbde0270,
    0x3dcbf620, 0xbfaedfc4, 0xb557cb58, 0x36d71977, 0xb85f502c, 0x39fcb884, 0xbba1977a, 0x3db449b8,
    0xbfa2e7ca, 0xb4b9684a, 0x36556134, 0xb80016b6, 0x39a7a18c, 0xbb75d710, 0x3da2abcd, 0xbf98368a,
    0xb700048f, 0x3830d619, 0xb97c66a3, 0x3ac70763, 0xbc2cf3d1, 0x3e0f561f, 0xbf89ec08, 0xb61c5e1f,
    0x37842faa, 0xb8e79186, 0x3a61008f, 0xbbe943d2, 0x3dfb246a, 0xbf72604a, 0xb569639b, 0x36e998bf,
    0xb871d06f, 0x3a0c9c6f, 0xbba66ae3, 0x3de27d26, 0xbf549c5c, 0xb4c8c025, 0x3668916b, 0xb80a3dd4,
    0x39bd3226, 0xbb763bc9, 0x3dd09251, 0xbf3979c6, 0xb70a7f66, 0x384288d7, 0xb986526e, 0x3ae8175f,
    0xbc22d7a4, 0x3e3db6d5, 0xbf144201, 0xb6267cca, 0x37966f12, 0xb8e940cd, 0x3a8db7f2, 0xbbbe29d8,
    0x3e2df141, 0xbecdf3b8, 0xb5635e6e, 0x3713bbeb, 0xb84d0d4e, 0x3a4b5b6c, 0xbb49cf81, 0x3e25005d,
    0xbe72e51c, 0xb464bc6b, 0x36c423b5, 0xb76b3a60, 0x3a2ba2ee, 0xba7dceca, 0x3e20eb0c, 0xbda096b0,
];
