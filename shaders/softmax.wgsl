// Soft targets from teacher logits (Schug et al. hyperteacher, spec §3.2):
//   column_stats:  per item b and column c, mean μ and population std σ of x[b, :, c]
//                  (two passes over the rows, in row order: deterministic and accurate);
//   standardized_softmax: y[b, r, :] = softmax(((x[b, r, :] − μ[b]) / σ[b]) / T), row-wise.
// One invocation per (item, column) or per (item, row): the reductions are short (rows ≈ 1,000,
// classes ≈ 8), so a serial loop in a fixed order is both deterministic and fast enough.

struct Params {
    batch: u32, rows: u32, cols: u32, _pad0: u32,
    x_off: u32, x_stride: u32, y_off: u32, y_stride: u32,
    mean_off: u32, mean_stride: u32, std_off: u32, std_stride: u32,
    inv_temperature: f32, _pad1: u32, _pad2: u32, _pad3: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> sd: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn column_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= p.batch * p.cols) { return; }
    let b = i / p.cols;
    let c = i % p.cols;
    let base = p.x_off + b * p.x_stride + c;
    var s = 0.0;
    for (var r = 0u; r < p.rows; r++) { s += x[base + r * p.cols]; }
    let mu = s / f32(p.rows);
    var q = 0.0;
    for (var r = 0u; r < p.rows; r++) { let d = x[base + r * p.cols] - mu; q += d * d; }
    mean[p.mean_off + b * p.mean_stride + c] = mu;
    sd[p.std_off + b * p.std_stride + c] = sqrt(q / f32(p.rows));
}

@compute @workgroup_size(WG)
fn standardized_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= p.batch * p.rows) { return; }
    let b = i / p.rows;
    let r = i % p.rows;
    let xb = p.x_off + b * p.x_stride + r * p.cols;
    let yb = p.y_off + b * p.y_stride + r * p.cols;
    let mb = p.mean_off + b * p.mean_stride;
    let sb = p.std_off + b * p.std_stride;
    // Scaled logits are written to y first, so the row is read from global memory only once.
    var m = -3.4e38;
    for (var c = 0u; c < p.cols; c++) {
        // A constant unit (σ = 0, e.g. a single row) carries no information: z = 0, not NaN.
        let s = sd[sb + c];
        let z = select(0.0, (x[xb + c] - mean[mb + c]) / s * p.inv_temperature, s > 0.0);
        y[yb + c] = z;
        m = max(m, z);
    }
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let e = exp(y[yb + c] - m);
        y[yb + c] = e;
        s += e;
    }
    for (var c = 0u; c < p.cols; c++) { y[yb + c] = y[yb + c] / s; }
}
