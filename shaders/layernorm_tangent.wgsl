// Tangent (JVP) passes of LayerNorm (layernorm.wgsl), for Hessian-vector products by
// forward-over-reverse. The input moves along ẋ; γ and β hold still (the reverse sweep moves
// task parameters only, and a layer norm's parameters are meta-parameters). Per row, with
// x̂ = (x − μ)·r from the forward's saved μ and r = rstd:
//
//   tm = mean(ẋ), tp = mean(x̂·ẋ)           ṙ = −r·r·tp
//   x̂̇ = r·(ẋ − tm − x̂·tp)
//
//   forward:  ẏ = γ·x̂̇; writes ẏ and tstats = (tm, tp) per row (backward and dparams read them).
//   backward: the tangent of dx = r·(g − mean g − x̂·c), g = dy·γ, c = mean(g·x̂), ġ = ḋy·γ:
//             ḋx = −r·tp·dx + r·(ġ − mean ġ − x̂̇·c − x̂·ċ),   ċ = mean(ġ·x̂ + g·x̂̇)
//   dparams:  one invocation per (item, col): ḋγ = Σ_r (ḋy·x̂ + dy·x̂̇) over rows in order
//             (ḋβ = Σ_r ḋy is a column sum; the caller launches it).
// Row reductions are deterministic as in layernorm.wgsl: invocation i sums cols i, i + WG, … in
// order, then a fixed tree over the workgroup.
//
// Bindings (one layout for every entry point; an unused one holds a stand-in):
//   1 x  2 γ  3 ẋ  4 dy  5 ḋy  6 mean  7 rstd (read)  8 out: ẏ, ḋx or ḋγ (rw)  9 tstats (rw)

struct Params {
    batch: u32, rows: u32, cols: u32, _pad0: u32,
    x_off: u32, x_stride: u32, g_off: u32, g_stride: u32,
    xd_off: u32, xd_stride: u32, dy_off: u32, dy_stride: u32,
    dyd_off: u32, dyd_stride: u32, m_off: u32, m_stride: u32,
    r_off: u32, r_stride: u32, out_off: u32, out_stride: u32,
    ts_off: u32, ts_stride: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 256u;        // power of two
override HAS_GAMMA: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> x_dot: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read> dy_dot: array<f32>;
@group(0) @binding(6) var<storage, read> mean_t: array<f32>;
@group(0) @binding(7) var<storage, read> rstd_t: array<f32>;
@group(0) @binding(8) var<storage, read_write> out: array<f32>;
@group(0) @binding(9) var<storage, read_write> tstats: array<f32>;

// One row's place: its item, its row within the item, and the forward's μ and r.
struct Row { item: u32, r: u32, mu: f32, rstd: f32 }

fn row_of(row: u32) -> Row {
    let item = row / p.rows;
    let r = row % p.rows;
    return Row(item, r, mean_t[p.m_off + item * p.m_stride + r],
               rstd_t[p.r_off + item * p.r_stride + r]);
}

fn at(off: u32, stride: u32, w: Row, c: u32) -> u32 {
    return off + w.item * stride + w.r * p.cols + c;
}

fn ts_at(w: Row) -> u32 { return p.ts_off + w.item * p.ts_stride + 2u * w.r; }

fn xhat(w: Row, c: u32) -> f32 { return (x[at(p.x_off, p.x_stride, w, c)] - w.mu) * w.rstd; }

// x̂̇ of element c from the row's tangent statistics.
fn xhat_dot(w: Row, c: u32, tm: f32, tp: f32) -> f32 {
    return w.rstd * (x_dot[at(p.xd_off, p.xd_stride, w, c)] - tm - xhat(w, c) * tp);
}

// (g, ġ) = (dy·γ, ḋy·γ) of element c.
fn grads(w: Row, c: u32) -> vec2<f32> {
    let ga = gamma_at(w.item, c);
    return vec2<f32>(dy[at(p.dy_off, p.dy_stride, w, c)],
                     dy_dot[at(p.dyd_off, p.dyd_stride, w, c)]) * ga;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x; // workgroup-uniform, so the early return keeps barriers uniform
    if (row >= p.batch * p.rows) { return; }
    let w = row_of(row);
    var acc = vec4<f32>(0.0);
    for (var c = lid; c < p.cols; c += WG) {
        let xd = x_dot[at(p.xd_off, p.xd_stride, w, c)];
        acc += vec4<f32>(xd, xhat(w, c) * xd, 0.0, 0.0);
    }
    let s = reduce(acc, lid) / f32(p.cols);
    for (var c = lid; c < p.cols; c += WG) {
        out[at(p.out_off, p.out_stride, w, c)] = gamma_at(w.item, c) * xhat_dot(w, c, s.x, s.y);
    }
    if (lid == 0u) {
        tstats[ts_at(w)] = s.x;
        tstats[ts_at(w) + 1u] = s.y;
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.batch * p.rows) { return; }
    let w = row_of(row);
    let tm = tstats[ts_at(w)];
    let tp = tstats[ts_at(w) + 1u];
    var acc = vec4<f32>(0.0);
    for (var c = lid; c < p.cols; c += WG) {
        let g = grads(w, c);
        let xh = xhat(w, c);
        acc += vec4<f32>(g.x, g.x * xh, g.y, g.y * xh + g.x * xhat_dot(w, c, tm, tp));
    }
    let s = reduce(acc, lid) / f32(p.cols);
    for (var c = lid; c < p.cols; c += WG) {
        let g = grads(w, c);
        let xh = xhat(w, c);
        let dx = w.rstd * (g.x - s.x - xh * s.y);
        out[at(p.out_off, p.out_stride, w, c)] =
            -w.rstd * tp * dx + w.rstd * (g.y - s.z - xhat_dot(w, c, tm, tp) * s.y - xh * s.w);
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
    for (var r = 0u; r < p.rows; r++) {
        let w = row_of(item * p.rows + r);
        let tm = tstats[ts_at(w)];
        let tp = tstats[ts_at(w) + 1u];
        dg += dy_dot[at(p.dyd_off, p.dyd_stride, w, c)] * xhat(w, c)
            + dy[at(p.dy_off, p.dy_stride, w, c)] * xhat_dot(w, c, tm, tp);
    }
    out[p.out_off + item * p.out_stride + c] = dg;
}
