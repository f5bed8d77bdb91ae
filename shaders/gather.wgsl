// Random row gather: dst[b, i, :] = src[b, j, :] with j = bits mod R. Shared keying
// (PER_ITEM = false): bits = word n % 4 of philox((n / 4, 0, stream_lo, stream_hi),
// (seed_lo, seed_hi)) with n = b·Rd + i. Per-item keying: the same with the item-local index
// n = i and key (seeds[2b], seeds[2b + 1]), so item b picks what a batch-1 gather with its seed
// picks. These are the counter layouts of rng.wgsl, so the host regenerates the row choice with
// `random_bits`. philox.wgsl is prepended by the launcher. One invocation copies one
// destination row.

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let n = (wid.x + wid.y * nwg.x) * WG + lid;
    if (n >= p.batch * p.rows_dst) { return; }
    let b = n / p.rows_dst;
    let i = n - b * p.rows_dst;
    var idx = n;
    var key = vec2<u32>(p.seed_lo, p.seed_hi);
    if (PER_ITEM) {
        idx = i;
        key = vec2<u32>(seeds[2u * b], seeds[2u * b + 1u]);
    }
    let r = philox(vec4<u32>(idx / 4u, 0u, p.stream_lo, p.stream_hi), key);
    let j = r[idx % 4u] % p.rows;
    let s = p.src_off + b * p.src_stride + j * p.cols;
    let d = p.dst_off + b * p.dst_stride + i * p.cols;
    for (var c = 0u; c < p.cols; c++) {
        dst[d + c] = src[s + c];
    }
}
