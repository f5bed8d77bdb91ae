// Counter-based random fills: Philox4x32-10 (Salmon et al. 2011) keyed by (seed, stream).
//
// Shared keying (PER_ITEM = false): element at LOGICAL index i = b·rows·cols + r·cols + c takes
// word i % 4 of
//   philox4x32_10(counter = (i / 4, 0, stream_lo, stream_hi), key = (seed_lo, seed_hi)).
// Per-item keying (PER_ITEM = true): element j = r·cols + c of item b takes word j % 4 of
//   philox4x32_10(counter = (j / 4, 0, stream_lo, stream_hi), key = (seeds[2b], seeds[2b + 1])),
// i.e. what a batch-1 shared fill with item b's seed gives.
// Either way values do not depend on where the tensor lives (offset, batch stride). One
// invocation computes one Philox block (4 consecutive elements; per item, blocks do not
// straddle items).
//
// Everything that decides a value is integer arithmetic (exact on every driver) except the
// final affine map and the normal's polynomial, which use only f32 +, − and × (correctly rounded
// in Vulkan/WebGPU). Each product passes through `nc`, an XOR with the opaque uniform zero
// `p.zero`: the compiler cannot see through it, so it cannot contract a·b + c into an FMA (whose
// single rounding would differ from the CPU twin). No transcendental built-in is used.

struct Params {
    len: u32, item_len: u32, out_off: u32, out_stride: u32,
    seed_lo: u32, seed_hi: u32, stream_lo: u32, stream_hi: u32,
    a: f32,     // lo (uniform) or mean (normals)
    s: f32,     // hi − lo (uniform) or std (normals)
    zero: u32,  // always 0; opaque to the compiler (see `nc`)
    blocks: u32,  // Philox blocks of the launch: ceil(len / 4), per item B·ceil(item_len / 4)
}

// Truncated normal: the inverse CDF is evaluated on p ∈ [P_LO, 2^32 − P_LO] / 2^32, with
// P_LO = round(Φ(−2)·2^32). Set by the launcher.
override P_LO: u32 = 97711073u;
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// Piecewise polynomials of Φ⁻¹ (see `NORMAL_TABLE` in src/ops/rng.rs), f32 bit patterns.
@group(0) @binding(2) var<storage, read> table: array<u32>;
// Per-item seeds (low, high words per item); bound to the table, and unread, when shared.
@group(0) @binding(3) var<storage, read> seeds: array<u32>;

override PER_ITEM: bool = false;

// DEG, nc and normal_icdf come from normal.wgsl (prepended by the launcher).

// DIST: 0 = uniform [a, a + s), 1 = normal, 2 = truncated normal (both a + s·z).
override DIST: u32 = 0u;

fn value(bits: u32) -> f32 {
    if (DIST == 0u) {
        return nc(p.s * (f32(bits >> 8u) * 5.9604644775390625e-8)) + p.a;
    }
    var m = bits;
    if (DIST == 2u) {
        // Affine map of [0, 2^32) onto [P_LO, 2^32 − P_LO) in integers: floor(m·span / 2^32).
        m = P_LO + mulhilo(bits, 0u - 2u * P_LO).x;
    }
    var z = normal_icdf(m);
    if (DIST == 2u) {
        // The polynomial is within ~3e-7 of Φ⁻¹; the clamp makes the support exactly [−2, 2].
        z = clamp(z, -2.0, 2.0);
    }
    return nc(p.s * z) + p.a;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let block = (wid.x + wid.y * nwg.x) * WG + lid;
    if (block >= p.blocks) { return; }
    if (PER_ITEM) {
        let per_item = (p.item_len + 3u) / 4u;
        let item = block / per_item;
        let local = block - item * per_item;
        let key = vec2<u32>(seeds[2u * item], seeds[2u * item + 1u]);
        let r = philox(vec4<u32>(local, 0u, p.stream_lo, p.stream_hi), key);
        for (var w = 0u; w < 4u; w++) {
            let j = local * 4u + w;
            if (j < p.item_len) {
                out[p.out_off + item * p.out_stride + j] = value(r[w]);
            }
        }
        return;
    }
    let r = philox(vec4<u32>(block, 0u, p.stream_lo, p.stream_hi), vec2<u32>(p.seed_lo, p.seed_hi));
    for (var w = 0u; w < 4u; w++) {
        let i = block * 4u + w;
        if (i < p.len) {
            let item = i / p.item_len;
            out[p.out_off + item * p.out_stride + (i - item * p.item_len)] = value(r[w]);
        }
    }
}
