// Cholesky factorisation and solves of symmetric positive definite n×n matrices, strided-batched
// over the leading axis. All matrices row-major.
//
// Entry points (one file, shared helpers):
//   factor:     one workgroup per item. L = chol(K + ridge·I), ridge = abs + rel·tr(K)/n, reading
//               only the lower triangle of K; L written in place into `out3` (strict upper = 0).
//               A pivot that is not positive and finite makes the whole item's factor NaN.
//   solve:      one workgroup per item. x = (L Lᵀ)⁻¹ b for b [n × r], L read from `in1`. A factor
//               whose diagonal is not positive and finite (e.g. a failed `factor`) gives x = NaN.
//   solve_quad: `solve`, plus quad = Σ b∘x into `out4` (NaN where x is).
//   outer:      one invocation per element: dk = −½ (w aᵀ + a wᵀ) for a (`in1`), w (`in2`) [n × r].
//
// Bindings keep one access mode across entry points (the module declares each once):
//   1 K / L / a (read)  2 b / w (read)  3 L / x / dk (rw)  4 quad (rw)
//
// Algorithms. Row i of an item belongs to invocation i mod WG in every phase, so most data an
// invocation reads back is its own writes; rows read by others are ordered by storageBarrier().
//   factor, left-looking by column j: the owners of rows i ≥ j compute
//     s_i = K_ij (+ ridge if i = j) − Σ_{k<j} L_ik L_jk    (contiguous row prefixes, k ascending);
//   the owner of row j publishes the pivot s_j in workgroup memory; everyone loads it with
//   workgroupUniformLoad (a uniform value, so the failure flag is uniform) and scales its rows.
//   Every row of column j has the same dot length j, so the work is balanced.
//   solves, column-oriented: at step j every invocation computes z_j = x_j / L_jj itself (same
//   inputs, same bits) and updates its own rows; row j is not written during step j, so one
//   barrier per step suffices; a final pass divides each row by its own L_ii.
// Deterministic: every value has one writer and a fixed operation order; the trace and quad sums
// are fixed trees; no atomics. Loop bounds that enclose barriers come from the uniform `p`.

struct Params {
    n: u32,          // matrix order
    r: u32,          // right-hand sides
    batch: u32,
    nan_bits: u32,   // a quiet NaN's bits: WGSL has no NaN literal (a NaN constant is an error)
    ridge_abs: f32,
    ridge_rel: f32,
    in1_off: u32, in1_stride: u32,
    in2_off: u32, in2_stride: u32,
    out3_off: u32, out3_stride: u32,
    out4_off: u32, out4_stride: u32,
    _pad0: u32, _pad1: u32,
}

override WG: u32 = 256u;   // power of two (tree sums)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;

var<workgroup> red: array<f32, WG>;
var<workgroup> piv: f32;

// Fixed-shape tree sum of one value per invocation; every invocation gets the total.
fn tree_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { red[lid] += red[lid + s]; }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

// Positive and finite, decided on the bits: 1 ..= 0x7f7fffff are exactly the positive finite
// floats (0 wraps to 0xffffffff; ±∞, NaN and negatives are ≥ 0x7f800000). Comparisons could be
// folded under the WGSL rule that lets implementations assume no NaN or ∞.
fn good_pivot(d: f32) -> bool {
    return bitcast<u32>(d) - 1u < 0x7f7fffffu;
}

@compute @workgroup_size(WG)
fn factor(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let item = wid.x + wid.y * nwg.x; // workgroup-uniform, so the early return keeps barriers uniform
    if (item >= p.batch) { return; }
    let n = p.n;
    let kb = p.in1_off + item * p.in1_stride;
    let fb = p.out3_off + item * p.out3_stride;
    var t = 0.0;
    for (var i = lid; i < n; i += WG) {
        t += in1[kb + i * n + i];
        for (var k = i + 1u; k < n; k++) { out3[fb + i * n + k] = 0.0; }
    }
    let ridge = p.ridge_abs + p.ridge_rel * (tree_sum(t, lid) / f32(n));
    var ok = true;
    for (var j = 0u; j < n; j++) {
        let lj = fb + j * n;
        for (var i = lid; i < n; i += WG) {
            if (i >= j) {
                let li = fb + i * n;
                var s = in1[kb + i * n + j];
                if (i == j) { s += ridge; }
                var d = 0.0;
                for (var k = 0u; k < j; k++) { d += out3[li + k] * out3[lj + k]; }
                s -= d;
                if (i == j) {
                    piv = s;
                    out3[li + j] = sqrt(s);
                } else {
                    out3[li + j] = s; // scaled below, by this same invocation
                }
            }
        }
        let dj = workgroupUniformLoad(&piv);
        ok = ok && good_pivot(dj);
        let ljj = sqrt(dj);
        for (var i = lid; i < n; i += WG) {
            if (i > j) { out3[fb + i * n + j] /= ljj; }
        }
        // Column j (and row j's prefix) is read by every invocation from the next column on.
        storageBarrier();
    }
    if (!ok) {
        let nan = bitcast<f32>(p.nan_bits);
        for (var i = lid; i < n; i += WG) {
            for (var k = 0u; k < n; k++) { out3[fb + i * n + k] = nan; }
        }
    }
}

// x = (L Lᵀ)⁻¹ b for one item (x in out3, starting as a copy of b). Returns this invocation's
// part of Σ b∘x, or NaN (in every invocation) when the factor's diagonal is not positive finite.
fn solve_item(item: u32, lid: u32) -> f32 {
    let n = p.n;
    let r = p.r;
    let fb = p.in1_off + item * p.in1_stride;
    let bb = p.in2_off + item * p.in2_stride;
    let xb = p.out3_off + item * p.out3_stride;
    // Every invocation checks the whole diagonal (n reads), so all agree without a reduction.
    var ok = true;
    for (var j = 0u; j < n; j++) { ok = ok && good_pivot(in1[fb + j * n + j]); }
    for (var i = lid; i < n; i += WG) {
        for (var c = 0u; c < r; c++) { out3[xb + i * r + c] = in2[bb + i * r + c]; }
    }
    storageBarrier();
    // Forward: L z = b.
    for (var j = 0u; j < n; j++) {
        let ljj = in1[fb + j * n + j];
        for (var i = lid; i < n; i += WG) {
            if (i > j) {
                let lij = in1[fb + i * n + j];
                for (var c = 0u; c < r; c++) {
                    out3[xb + i * r + c] -= lij * (out3[xb + j * r + c] / ljj);
                }
            }
        }
        storageBarrier();
    }
    for (var i = lid; i < n; i += WG) {
        let lii = in1[fb + i * n + i];
        for (var c = 0u; c < r; c++) { out3[xb + i * r + c] /= lii; }
    }
    storageBarrier();
    // Backward: Lᵀ x = z; column j of Lᵀ is row j of L (contiguous across invocations).
    for (var jj = n; jj > 0u; jj--) {
        let j = jj - 1u;
        let ljj = in1[fb + j * n + j];
        for (var i = lid; i < j; i += WG) {
            let lji = in1[fb + j * n + i];
            for (var c = 0u; c < r; c++) {
                out3[xb + i * r + c] -= lji * (out3[xb + j * r + c] / ljj);
            }
        }
        storageBarrier();
    }
    let nan = bitcast<f32>(p.nan_bits);
    var q = 0.0;
    for (var i = lid; i < n; i += WG) {
        let lii = in1[fb + i * n + i];
        for (var c = 0u; c < r; c++) {
            let at = xb + i * r + c;
            var v = out3[at] / lii;
            if (!ok) { v = nan; }
            out3[at] = v;
            q += in2[bb + i * r + c] * v;
        }
    }
    if (!ok) { q = nan; }
    return q;
}

@compute @workgroup_size(WG)
fn solve(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let item = wid.x + wid.y * nwg.x; // workgroup-uniform
    if (item >= p.batch) { return; }
    _ = solve_item(item, lid);
}

@compute @workgroup_size(WG)
fn solve_quad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let item = wid.x + wid.y * nwg.x; // workgroup-uniform
    if (item >= p.batch) { return; }
    let q = tree_sum(solve_item(item, lid), lid);
    if (lid == 0u) { out4[p.out4_off + item * p.out4_stride] = q; }
}

@compute @workgroup_size(WG)
fn outer(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WG + lid;
    let nn = p.n * p.n;
    if (g >= p.batch * nn) { return; }
    let item = g / nn;
    let e = g % nn;
    let i = e / p.n;
    let j = e % p.n;
    let r = p.r;
    let ab = p.in1_off + item * p.in1_stride;
    let wb = p.in2_off + item * p.in2_stride;
    var s = 0.0;
    for (var c = 0u; c < r; c++) {
        s += in2[wb + i * r + c] * in1[ab + j * r + c] + in1[ab + i * r + c] * in2[wb + j * r + c];
    }
    out3[p.out3_off + item * p.out3_stride + e] = -0.5 * s;
}
