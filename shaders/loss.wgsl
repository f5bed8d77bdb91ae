// Per-item losses, value and gradient in one pass. Logits z and targets y are
// [batch × rows × cols] (rows samples of cols classes per item; y soft labels, may be a stride-0
// broadcast); loss is one value per item = mean of the per-row values; grad (value_grad only)
// has the logits' shape.
//
// LOSS selects the per-row value (an override, so CE and KL share every line but one):
//   0  softmax cross-entropy  −Σ_c y_c log softmax(z)_c
//   1  KL divergence           Σ_c y_c (log y_c − log softmax(z)_c), 0·log 0 = 0
//   2  squared error           Σ_c (z_c − y_c)²            (mean over rows·cols: norm says which)
//   3  accuracy                [argmax z == argmax y], ties → lowest index
//   4  half squared error      ½ Σ_c (z_c − y_c)²          (a mean over rows, like 0, 1, 3)
// Gradient of the row value (CE, KL): softmax(z)·Σ_c y_c − y, which is softmax − y for
// probability rows; (MSE, half squared error): z − y. All are multiplied by gscale (set by the
// host to grad_scale / rows, resp. 2·grad_scale / (rows·cols) for MSE).
//
// Row weights (the *_masked entries): binding 6 holds one weight per row, [batch × rows × 1]
// (0/1 for a row mask: demonstration steps after the episode ended). The item's value is
// Σ_r w_r·value_r / Σ_r w_r and every gradient row gets the factor w_r / Σ_r w_r (gscale is then
// grad_scale alone): a weighted mean over the item's rows. A row of weight 0 contributes nothing,
// not even a NaN of its own, and an item whose weights sum to 0 has value 0 and gradient 0. The
// weight sum is reduced first, by the same fixed tree as the values, so every invocation of the
// item sees the same factor.
//
// grad_tangent (CE and KL, whose gradients agree): the gradient's derivative along a tangent dz
// of the logits (binding 5), written to binding 4 (grad): gscale·Σy·(p⊙dz − p·(p·dz)) per row,
// p = softmax(z) from the row statistics of `row`; for the half squared error gscale·dz. It writes no loss: binding 3 is unused (the
// launcher binds a read-only stand-in; a pipeline layout covers what its entry uses).
//
// Determinism and layout: one workgroup per item. Invocation t handles rows t, t + WG, ... in
// that order and sums their values sequentially; the WG partial sums are then combined by a
// fixed binary tree in workgroup memory. The order of every addition is thus fixed by (rows,
// WG) alone, independent of scheduling, without atomics or a second pass. One workgroup per
// item suits the meta-learning shapes this serves (a few tasks × tens of samples × few
// classes); each invocation walks its row's classes serially, which keeps the softmax
// statistics in registers between the value and the gradient.

struct Params {
    rows: u32, cols: u32, batch: u32, _pad1: u32,  // batch: read by the native kernel only (here each workgroup is an item)
    z_off: u32, z_stride: u32, t_off: u32, t_stride: u32,
    l_off: u32, l_stride: u32, g_off: u32, g_stride: u32,
    norm: f32,    // 1 / (number of terms of the mean)
    gscale: f32,  // factor of the per-element gradient
    d_off: u32, d_stride: u32,  // dz (grad_tangent)
    m_off: u32, m_stride: u32,  // row weights (the *_masked entries)
    _pad2: u32, _pad3: u32,
}

override LOSS: u32 = 0u;

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> t: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read> dz: array<f32>;
@group(0) @binding(6) var<storage, read> mask: array<f32>;

var<workgroup> sums: array<f32, WG>;

// One row's value and the statistics its gradient reuses: log softmax(z)_c = (z_c − m) − log_s.
struct Row { value: f32, m: f32, log_s: f32, tsum: f32 }

fn row(zb: u32, tb: u32) -> Row {
    var o = Row(0.0, 0.0, 0.0, 0.0);
    switch LOSS {
        case 2u, 4u: {
            for (var c = 0u; c < p.cols; c++) {
                let d = z[zb + c] - t[tb + c];
                o.value = fma(d, d, o.value);
            }
            if (LOSS == 4u) { o.value *= 0.5; }
        }
        case 3u: {
            var iz = 0u;
            var it = 0u;
            for (var c = 1u; c < p.cols; c++) {
                // Strict > keeps the lowest index on ties.
                if (z[zb + c] > z[zb + iz]) { iz = c; }
                if (t[tb + c] > t[tb + it]) { it = c; }
            }
            o.value = select(0.0, 1.0, iz == it);
        }
        default: {
            // Subtracting the row max keeps every exp argument ≤ 0: no overflow, and the
            // largest term is exactly 1 so the sum cannot underflow either.
            o.m = z[zb];
            for (var c = 1u; c < p.cols; c++) { o.m = max(o.m, z[zb + c]); }
            var s = 0.0;
            for (var c = 0u; c < p.cols; c++) { s += exp(z[zb + c] - o.m); }
            o.log_s = log(s);
            for (var c = 0u; c < p.cols; c++) {
                let y = t[tb + c];
                o.tsum += y;
                o.value -= y * ((z[zb + c] - o.m) - o.log_s);
                if (LOSS == 1u && y > 0.0) { o.value += y * log(y); }
            }
        }
    }
    return o;
}

// softmax(z)_c of a row from its statistics.
fn softmax(zc: f32, o: Row) -> f32 {
    return exp((zc - o.m) - o.log_s);
}

fn row_base(off: u32, stride: u32, item: u32, r: u32) -> u32 {
    return off + item * stride + r * p.cols;
}

// Tree-sums the invocations' partial sums: every invocation returns the total.
fn tree_sum(lane: u32, acc: f32) -> f32 {
    sums[lane] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) { sums[lane] += sums[lane + s]; }
        workgroupBarrier();
    }
    let total = sums[0];
    // No invocation may write `sums` again before every one has read the total.
    workgroupBarrier();
    return total;
}

// Tree-sums the invocations' partial sums and writes the item's mean (the sum times `norm`).
fn finish(item: u32, lane: u32, acc: f32, norm: f32) {
    let total = tree_sum(lane, acc);
    if (lane == 0u) { loss[p.l_off + item * p.l_stride] = total * norm; }
}

// The raw gradient of one element of a row (before gscale).
fn elem_grad(zc: f32, yc: f32, o: Row) -> f32 {
    if (LOSS == 2u || LOSS == 4u) { return zc - yc; }
    return softmax(zc, o) * o.tsum - yc;
}

fn weight(item: u32, r: u32) -> f32 {
    return mask[p.m_off + item * p.m_stride + r];
}

// 1 / Σ_r w_r of the item (0 when the weights sum to 0), the same in every invocation.
fn inv_weight(item: u32, lane: u32) -> f32 {
    var acc = 0.0;
    for (var r = lane; r < p.rows; r += WG) { acc += weight(item, r); }
    let total = tree_sum(lane, acc);
    return select(0.0, 1.0 / total, total != 0.0);
}

@compute @workgroup_size(WG)
fn value(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let item = wid.x;
    var acc = 0.0;
    for (var r = lid.x; r < p.rows; r += WG) {
        acc += row(row_base(p.z_off, p.z_stride, item, r), row_base(p.t_off, p.t_stride, item, r)).value;
    }
    finish(item, lid.x, acc, p.norm);
}

@compute @workgroup_size(WG)
fn value_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let item = wid.x;
    var acc = 0.0;
    for (var r = lid.x; r < p.rows; r += WG) {
        let zb = row_base(p.z_off, p.z_stride, item, r);
        let tb = row_base(p.t_off, p.t_stride, item, r);
        let gb = row_base(p.g_off, p.g_stride, item, r);
        let o = row(zb, tb);
        acc += o.value;
        for (var c = 0u; c < p.cols; c++) {
            grad[gb + c] = p.gscale * elem_grad(z[zb + c], t[tb + c], o);
        }
    }
    finish(item, lid.x, acc, p.norm);
}

@compute @workgroup_size(WG)
fn grad_tangent(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let item = wid.x;
    for (var r = lid.x; r < p.rows; r += WG) {
        let zb = row_base(p.z_off, p.z_stride, item, r);
        row_tangent(zb, row_base(p.t_off, p.t_stride, item, r), row_base(p.d_off, p.d_stride, item, r), row_base(p.g_off, p.g_stride, item, r), p.gscale);
    }
}

// The tangent of one row's gradient along dz, times k (gscale, and the row's weight factor).
fn row_tangent(zb: u32, tb: u32, db: u32, gb: u32, k: f32) {
    if (LOSS == 2u || LOSS == 4u) {
        for (var c = 0u; c < p.cols; c++) { grad[gb + c] = k * dz[db + c]; }
        return;
    }
    let o = row(zb, tb);
    var pdz = 0.0;
    for (var c = 0u; c < p.cols; c++) { pdz += softmax(z[zb + c], o) * dz[db + c]; }
    let ks = k * o.tsum;
    for (var c = 0u; c < p.cols; c++) {
        let pc = softmax(z[zb + c], o);
        grad[gb + c] = ks * (pc * dz[db + c] - pc * pdz);
    }
}

@compute @workgroup_size(WG)
fn value_masked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let item = wid.x;
    let inv = inv_weight(item, lid.x);
    var acc = 0.0;
    for (var r = lid.x; r < p.rows; r += WG) {
        let w = weight(item, r);
        if (w != 0.0) {
            acc += w * row(row_base(p.z_off, p.z_stride, item, r), row_base(p.t_off, p.t_stride, item, r)).value;
        }
    }
    finish(item, lid.x, acc, inv);
}

@compute @workgroup_size(WG)
fn value_grad_masked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let item = wid.x;
    let inv = inv_weight(item, lid.x);
    var acc = 0.0;
    for (var r = lid.x; r < p.rows; r += WG) {
        let zb = row_base(p.z_off, p.z_stride, item, r);
        let tb = row_base(p.t_off, p.t_stride, item, r);
        let gb = row_base(p.g_off, p.g_stride, item, r);
        let w = weight(item, r);
        if (w == 0.0) {
            for (var c = 0u; c < p.cols; c++) { grad[gb + c] = 0.0; }
            continue;
        }
        let o = row(zb, tb);
        acc += w * o.value;
        let k = p.gscale * (w * inv);
        for (var c = 0u; c < p.cols; c++) {
            grad[gb + c] = k * elem_grad(z[zb + c], t[tb + c], o);
        }
    }
    finish(item, lid.x, acc, inv);
}

@compute @workgroup_size(WG)
fn grad_tangent_masked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let item = wid.x;
    let inv = inv_weight(item, lid.x);
    for (var r = lid.x; r < p.rows; r += WG) {
        let zb = row_base(p.z_off, p.z_stride, item, r);
        let gb = row_base(p.g_off, p.g_stride, item, r);
        let w = weight(item, r);
        if (w == 0.0) {
            for (var c = 0u; c < p.cols; c++) { grad[gb + c] = 0.0; }
            continue;
        }
        row_tangent(zb, row_base(p.t_off, p.t_stride, item, r), row_base(p.d_off, p.d_stride, item, r), gb, p.gscale * (w * inv));
    }
}
