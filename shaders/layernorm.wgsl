// LayerNorm over the last axis (cols) of each row of x [batch × rows × cols] (haiku semantics:
// biased variance, y = (x − μ)·rstd·γ + β, rstd = 1/√(var + eps)).
//
// Entry points (one file, shared reduction helper):
//   forward:  one workgroup per row; writes y, mean and rstd ([batch × rows × 1]).
//   backward: one workgroup per row; dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ, x̂ = (x − μ)·rstd.
//   dparams:  one invocation per (item, col); dγ = Σ_r dy·x̂, dβ = Σ_r dy over rows in order.
// Row reductions are deterministic: invocation i sums cols i, i + WG, … in order, then a fixed
// tree over the workgroup. γ, β, dγ, dβ hold `cols` values per item (γ/β stride 0 = shared).
//
// Bindings keep one access mode across entry points (the module declares each once):
//   1 x (read)  2 γ (read)  3 β or dy (read)  4 y, dx or dγ (rw)  5 mean (rw)  6 rstd (rw)  7 dβ (rw)
// mean/rstd are read_write because the forward writes them; the backward only reads them.

struct Params {
    batch: u32, rows: u32, cols: u32, eps: f32,
    x_off: u32, x_stride: u32, g_off: u32, g_stride: u32,
    in3_off: u32, in3_stride: u32, out4_off: u32, out4_stride: u32,
    m_off: u32, m_stride: u32, r_off: u32, r_stride: u32,
    out7_off: u32, out7_stride: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 256u;        // power of two
override HAS_GAMMA: bool = false;
override HAS_BETA: bool = false; // forward: β given; dparams: dβ wanted
override HAS_DGAMMA: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> in3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean_t: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_t: array<f32>;
@group(0) @binding(7) var<storage, read_write> out7: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x; // workgroup-uniform, so the early return keeps barriers uniform
    if (row >= p.batch * p.rows) { return; }
    let item = row / p.rows;
    let r = row % p.rows;
    let xb = p.x_off + item * p.x_stride + r * p.cols;
    let n = f32(p.cols);
    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) { s += x[xb + c]; }
    let mu = reduce2(vec2<f32>(s, 0.0), lid).x / n;
    // Two passes: Σ(x − μ)² does not cancel like Σx² − nμ².
    var q = 0.0;
    for (var c = lid; c < p.cols; c += WG) { let d = x[xb + c] - mu; q += d * d; }
    let rstd = 1.0 / sqrt(reduce2(vec2<f32>(q, 0.0), lid).x / n + p.eps);
    let yb = p.out4_off + item * p.out4_stride + r * p.cols;
    for (var c = lid; c < p.cols; c += WG) {
        var v = (x[xb + c] - mu) * rstd * gamma_at(item, c);
        if (HAS_BETA) { v += in3[p.in3_off + item * p.in3_stride + c]; }
        out4[yb + c] = v;
    }
    if (lid == 0u) {
        mean_t[p.m_off + item * p.m_stride + r] = mu;
        rstd_t[p.r_off + item * p.r_stride + r] = rstd;
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x; // workgroup-uniform, so the early return keeps barriers uniform
    if (row >= p.batch * p.rows) { return; }
    let item = row / p.rows;
    let r = row % p.rows;
    let xb = p.x_off + item * p.x_stride + r * p.cols;
    let db = p.in3_off + item * p.in3_stride + r * p.cols;
    let mu = mean_t[p.m_off + item * p.m_stride + r];
    let rstd = rstd_t[p.r_off + item * p.r_stride + r];
    var acc = vec2<f32>(0.0);
    for (var c = lid; c < p.cols; c += WG) {
        let g = in3[db + c] * gamma_at(item, c);
        acc += vec2<f32>(g, g * (x[xb + c] - mu) * rstd);
    }
    let sums = reduce2(acc, lid) / f32(p.cols);
    let ob = p.out4_off + item * p.out4_stride + r * p.cols;
    for (var c = lid; c < p.cols; c += WG) {
        let g = in3[db + c] * gamma_at(item, c);
        let xh = (x[xb + c] - mu) * rstd;
        out4[ob + c] = rstd * (g - sums.x - xh * sums.y);
    }
}

@compute @workgroup_size(WG)
fn dparams(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let item = i / p.cols;
    let c = i % p.cols;
    if (item >= p.batch) { return; }
    var dg = 0.0;
    var dbeta = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let dy = in3[p.in3_off + item * p.in3_stride + r * p.cols + c];
        let xh = (x[p.x_off + item * p.x_stride + r * p.cols + c]
                  - mean_t[p.m_off + item * p.m_stride + r]) * rstd_t[p.r_off + item * p.r_stride + r];
        dg += dy * xh;
        dbeta += dy;
    }
    if (HAS_DGAMMA) { out4[p.out4_off + item * p.out4_stride + c] = dg; }
    if (HAS_BETA) { out7[p.out7_off + item * p.out7_stride + c] = dbeta; }
}
