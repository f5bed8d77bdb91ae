// Row-wise embedding normalisation of the hypernetwork students (spec §4.2), strided-batched
// over the leading axis. One invocation per row (rows are short: T templates), so each row's sum
// of squares is a plain sequential loop: fixed order, deterministic, no workgroup memory.
//
//   MODE 0 (normalise): s[row] = √C / ‖x[row]‖₂ and y[row] = x[row] · s[row]   (writes y and s)
//   MODE 1 (scale):     y[row] = x[row] · s[row]                               (s only read)
//
//   MODE 2 (unit columns): s[col] = 1 / ‖x[:, col]‖₂ and y[:, col] = x[:, col] · s[col]; one
//                          invocation per column, `total` = batch · cols, s is [batch × 1 × C]
//
// MODE 1 is the backward of MODE 0 under stop-gradient on the scale (de = dê · s). MODE 2 keeps
// projection vectors on the unit sphere (the sine experiment's kernel initialisation). `s` is
// one read_write binding in every mode so that a single pipeline layout serves them.

struct Params {
    rows: u32,     // rows per item
    cols: u32,     // C (row length)
    total: u32,    // batch · rows
    _pad0: u32,
    x_off: u32, x_stride: u32,
    y_off: u32, y_stride: u32,
    s_off: u32, s_stride: u32,
    _pad1: u32, _pad2: u32,
}

override MODE: u32 = 0u;

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> s: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (g >= p.total) { return; }
    if (MODE == 2u) {
        let item = g / p.cols;
        let c = g % p.cols;
        let xb = p.x_off + item * p.x_stride + c;
        let yb = p.y_off + item * p.y_stride + c;
        var ss = 0.0;
        for (var r = 0u; r < p.rows; r++) {
            let v = x[xb + r * p.cols];
            ss = fma(v, v, ss);
        }
        let sc = 1.0 / sqrt(ss);
        s[p.s_off + item * p.s_stride + c] = sc;
        for (var r = 0u; r < p.rows; r++) {
            y[yb + r * p.cols] = x[xb + r * p.cols] * sc;
        }
        return;
    }
    let item = g / p.rows;
    let r = g % p.rows;
    let xb = p.x_off + item * p.x_stride + r * p.cols;
    let yb = p.y_off + item * p.y_stride + r * p.cols;
    let sk = p.s_off + item * p.s_stride + r;
    var sc: f32;
    if (MODE == 0u) {
        var ss = 0.0;
        for (var c = 0u; c < p.cols; c++) {
            let v = x[xb + c];
            ss = fma(v, v, ss);
        }
        // A zero row gives +∞ (and NaN outputs), as the CPU twin does.
        sc = sqrt(f32(p.cols)) / sqrt(ss);
        s[sk] = sc;
    } else {
        sc = s[sk];
    }
    for (var c = 0u; c < p.cols; c++) {
        y[yb + c] = x[xb + c] * sc;
    }
}
