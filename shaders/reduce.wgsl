// Deterministic strided sums:  y[b, j] = alpha · Σ_k f(x[x_off + b·x_stride + j·j_step + k·k_step])
//                                        + beta · y[b, j]
// with f(v) = v (or v² when SQUARE). Output o = b·per_item + j is stored at y_off + b·y_stride + j.
// Every reduction of the family is this one mapping with different strides (see src/ops/reduce.rs):
// sum over the batch, row sums, column sums, and both passes of the two-pass sum of squares.
//
// Terms whose offset inside the item (j·j_step + k·k_step) reaches `limit` are skipped: that is the
// ragged last chunk of sum-of-squares pass 1; other reductions pass limit = 0xffffffff.
//
// Order is fixed by the shapes only (no atomics, nothing timing-dependent), so results are
// bit-identical run to run: a workgroup holds WG_X outputs × WG_Y partial sums; partial ly sums the
// terms k ≡ ly (mod WG_Y) in increasing k, then the WG_Y partials are added as a pairwise tree.

struct Params {
    n_out: u32, per_item: u32, n_red: u32, limit: u32,
    j_step: u32, k_step: u32, x_off: u32, x_stride: u32,
    y_off: u32, y_stride: u32, alpha: f32, beta: f32,
}

// Outputs per workgroup (along the contiguous output axis when the reduction is strided).
override WG_X: u32 = 64u;
// Partial sums per output; a power of two (tree reduction).
override WG_Y: u32 = 4u;
// Sum of squares instead of sum.
override SQUARE: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, WG_X * WG_Y>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn reduce_axis(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let o = (wid.x + wid.y * nwg.x) * WG_X + lid.x;
    let live = o < p.n_out;
    let b = o / p.per_item;
    let j = o % p.per_item;
    var acc = 0.0;
    if (live) {
        let base = p.x_off + b * p.x_stride + j * p.j_step;
        for (var k = lid.y; k < p.n_red; k += WG_Y) {
            if (j * p.j_step + k * p.k_step < p.limit) {
                let v = x[base + k * p.k_step];
                acc += select(v, v * v, SQUARE);
            }
        }
    }
    // Dead invocations still join every barrier (uniform control flow) with a 0 partial.
    part[lid.y * WG_X + lid.x] = acc;
    workgroupBarrier();
    for (var s = WG_Y / 2u; s > 0u; s = s / 2u) {
        if (lid.y < s) {
            part[lid.y * WG_X + lid.x] += part[(lid.y + s) * WG_X + lid.x];
        }
        workgroupBarrier();
    }
    if (live && lid.y == 0u) {
        let idx = p.y_off + b * p.y_stride + j;
        var v = p.alpha * part[lid.x];
        // beta == 0 must not read y: it may hold garbage (NaN · 0 = NaN).
        if (p.beta != 0.0) { v += p.beta * y[idx]; }
        y[idx] = v;
    }
}
