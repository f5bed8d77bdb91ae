// Random row gather: dst[b, i, :] = src[b, j, :] with j = bits mod R. Shared keying
// (PER_ITEM = false): bits = word n % 4 of philox((n / 4, 0, stream_lo, stream_hi),
// (seed_lo, seed_hi)) with n = b·Rd + i. Per-item keying: the same with the item-local index
// n = i and key (seeds[2b], seeds[2b + 1]), so item b picks what a batch-1 gather with its seed
// picks. These are the counter layouts of rng.wgsl, so the host regenerates the row choice with
// `random_bits`. philox.wgsl is prepended by the launcher.
//
// Entry points:
//   main:        one invocation copies one destination row.
//   scatter_add: the adjoint, acc[b, j, :] += Σ_{i : j(i) = j} g[b, i, :] over i in increasing
//                order (so the sum is deterministic): one workgroup per item, invocations over
//                columns, the rows picked computed WG at a time into workgroup memory. Its
//                read operand g (`src_*`, [batch × rows_dst × cols]) has the gather's
//                destination shape; the accumulator (`dst_*`, [batch × rows × cols]) its
//                source's.

struct Params {
    batch: u32, rows: u32, cols: u32, rows_dst: u32,
    src_off: u32, src_stride: u32, dst_off: u32, dst_stride: u32,
    seed_lo: u32, seed_hi: u32, stream_lo: u32, stream_hi: u32,
}

override WG: u32 = 64u;
override PER_ITEM: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// Per-item seeds (low, high words per item); bound to `src`, and unread, when shared.
@group(0) @binding(3) var<storage, read> seeds: array<u32>;

// The source row destination row `i` of item `b` copies (n = b·rows_dst + i).
fn picked_row(b: u32, i: u32) -> u32 {
    var idx = b * p.rows_dst + i;
    var key = vec2<u32>(p.seed_lo, p.seed_hi);
    if (PER_ITEM) {
        idx = i;
        key = vec2<u32>(seeds[2u * b], seeds[2u * b + 1u]);
    }
    let r = philox(vec4<u32>(idx / 4u, 0u, p.stream_lo, p.stream_hi), key);
    return r[idx % 4u] % p.rows;
}

var<workgroup> picked: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let n = (wid.x + wid.y * nwg.x) * WG + lid;
    if (n >= p.batch * p.rows_dst) { return; }
    let b = n / p.rows_dst;
    let i = n - b * p.rows_dst;
    let j = picked_row(b, i);
    let s = p.src_off + b * p.src_stride + j * p.cols;
    let d = p.dst_off + b * p.dst_stride + i * p.cols;
    for (var c = 0u; c < p.cols; c++) {
        dst[d + c] = src[s + c];
    }
}

@compute @workgroup_size(WG)
fn scatter_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let b = wid.x + wid.y * nwg.x; // workgroup-uniform, so the early return keeps barriers uniform
    if (b >= p.batch) { return; }
    for (var i0 = 0u; i0 < p.rows_dst; i0 += WG) {
        if (i0 + lid < p.rows_dst) { picked[lid] = picked_row(b, i0 + lid); }
        workgroupBarrier();
        let n = min(WG, p.rows_dst - i0);
        for (var c = lid; c < p.cols; c += WG) {
            for (var k = 0u; k < n; k++) {
                let g = src[p.src_off + b * p.src_stride + (i0 + k) * p.cols + c];
                let a = p.dst_off + b * p.dst_stride + picked[k] * p.cols + c;
                dst[a] += g;
            }
        }
        workgroupBarrier();
    }
}
