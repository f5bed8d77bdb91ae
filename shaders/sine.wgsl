// Samples of Boopathy et al.'s sine-wave modular regression task (src/ops/sine.rs), drawn on the
// device: one invocation writes one row (sample) of one run.
//
// A run's samples are IMPLICIT: sample `idx` of its training set is x = σ·z with z_j the normal of
// element idx·m + j of the run's data stream (Philox keyed by the run's seed, the counter layout
// of rng.wgsl), so a training set of any size n costs no memory and runs with different n share
// a batch. PICK = true draws the row's sample index uniformly from [0, n) (a minibatch with
// replacement; bits from the pick stream, which changes every step); PICK = false takes
// idx = row0 + row (a fixed evaluation set, in chunks).
//
// Targets: module i sees the b inputs z_ik = u_ikᵀx (u_ik unit rows of the task tensor); its
// component l is a_il·sin(ω_il·w_ilᵀz_i + ψ_il) with w_il ∈ ℝ^b (w = 1 when b = 1), and
// y = ((1/√K)·Σ_i Σ_l a_il·sin(ω_il·w_ilᵀz_i + ψ_il) − mean)·inv_std.
// FOLD moves samples to keep a combination of module inputs out of (1) or inside (2) a region of
// the plane of z_0 = u_00ᵀx and z_1 = u_10ᵀx (the first inputs of modules 0 and 1), by
// reflections x ← x − 2·z·u (measure-preserving; u_00 ⟂ u_10 is set up by the host):
//   1: training without the combination {z_0 > 0, z_1 > 0}: such a sample is reflected in u_00;
//   2: the held-out combination itself: z_0 < 0 is reflected in u_00, then z_1 < 0 in u_10.
//
// The task tensor of item b (task_off + b·task_stride):
//   [0] n (training-set size, an integer in f32), [1] mean, [2] inv_std, [3] unused,
//   [4 .. 4 + K·b·m) the projections u_ik as K·b rows of m (module-major),
//   then (a, ω, ψ, w_1..w_b) for module i, component l at 4 + K·b·m + (3 + b)·(i·L + l).
// x is written to x_rep consecutive items per run (the modules of a modular network each read
// their own copy), y to y_rep.
// philox.wgsl and normal.wgsl are prepended by the launcher.

struct Params {
    batch: u32, rows: u32, m: u32, modules: u32,
    comps: u32, x_rep: u32, y_rep: u32, task_stride: u32,
    row0: u32, zero: u32, data_lo: u32, data_hi: u32,
    pick_lo: u32, pick_hi: u32, x_off: u32, x_stride: u32,
    y_off: u32, y_stride: u32, task_off: u32, sigma: f32,
    dim: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 64u;
override PICK: bool = true;
override FOLD: u32 = 0u;
// Largest module input dimension b (the launcher checks it).
const MAX_B: u32 = 8u;
const TWO_PI: f32 = 6.2831853071795864;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> task: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read> seeds: array<u32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;


// u_k · v for projection row k (module k / b, input k % b) of the row being built (held in x
// at `xb`).
fn proj(tb: u32, k: u32, xb: u32) -> f32 {
    var s = 0.0;
    let ub = tb + 4u + k * p.m;
    for (var j = 0u; j < p.m; j++) {
        s += task[ub + j] * x[xb + j];
    }
    return s;
}

// x ← x − 2·z_k·u_k (u_k unit): negates z_k.
fn reflect(tb: u32, k: u32, xb: u32, zk: f32) {
    let ub = tb + 4u + k * p.m;
    for (var j = 0u; j < p.m; j++) {
        x[xb + j] = x[xb + j] - 2.0 * zk * task[ub + j];
    }
}

// sin(t) after reducing t to [−π, π]: GPU sin loses accuracy far from 0.
fn sin_reduced(t: f32) -> f32 {
    return sin(t - TWO_PI * floor(t / TWO_PI + 0.5));
}

@compute @workgroup_size(WG)
fn sample(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WG + lid;
    if (g >= p.batch * p.rows) { return; }
    let b = g / p.rows;
    let r = g - b * p.rows;
    let key = vec2<u32>(seeds[2u * b], seeds[2u * b + 1u]);
    let tb = p.task_off + b * p.task_stride;
    var idx = p.row0 + r;
    if (PICK) {
        let bits = philox(vec4<u32>(r / 4u, 0u, p.pick_lo, p.pick_hi), key)[r % 4u];
        idx = bits % u32(task[tb]);
    }
    // Build the row in the first copy, fold it there, then copy it to the others.
    let xb = p.x_off + b * p.x_rep * p.x_stride + r * p.m;
    // x_j is element idx·m + j of the data stream (one Philox block per 4 elements), times σ.
    var words = vec4<u32>();
    for (var j = 0u; j < p.m; j++) {
        let e = idx * p.m + j;
        if (j == 0u || e % 4u == 0u) {
            words = philox(vec4<u32>(e / 4u, 0u, p.data_lo, p.data_hi), key);
        }
        x[xb + j] = nc(p.sigma * normal_icdf(words[e % 4u]));
    }
    if (FOLD == 1u) {
        let z0 = proj(tb, 0u, xb);
        if (z0 > 0.0 && proj(tb, p.dim, xb) > 0.0) { reflect(tb, 0u, xb, z0); }
    } else if (FOLD == 2u) {
        let z0 = proj(tb, 0u, xb);
        if (z0 < 0.0) { reflect(tb, 0u, xb, z0); }
        let z1 = proj(tb, p.dim, xb);
        if (z1 < 0.0) { reflect(tb, p.dim, xb, z1); }
    }
    var sum = 0.0;
    let cb = tb + 4u + p.modules * p.dim * p.m;
    var z: array<f32, MAX_B>;
    for (var i = 0u; i < p.modules; i++) {
        for (var k = 0u; k < p.dim; k++) {
            z[k] = proj(tb, i * p.dim + k, xb);
        }
        for (var l = 0u; l < p.comps; l++) {
            let c = cb + (3u + p.dim) * (i * p.comps + l);
            var arg = 0.0;
            for (var k = 0u; k < p.dim; k++) {
                arg += task[c + 3u + k] * z[k];
            }
            sum += task[c] * sin_reduced(task[c + 1u] * arg + task[c + 2u]);
        }
    }
    let value = (sum / sqrt(f32(p.modules)) - task[tb + 1u]) * task[tb + 2u];
    for (var c = 1u; c < p.x_rep; c++) {
        let dst = p.x_off + (b * p.x_rep + c) * p.x_stride + r * p.m;
        for (var j = 0u; j < p.m; j++) {
            x[dst + j] = x[xb + j];
        }
    }
    for (var c = 0u; c < p.y_rep; c++) {
        y[p.y_off + (b * p.y_rep + c) * p.y_stride + r] = value;
    }
}
