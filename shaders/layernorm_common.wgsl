// Pieces shared by layernorm.wgsl and layernorm_tangent.wgsl (prepended to each; they declare
// `p` with g_off/g_stride, `gamma`, the WG and HAS_GAMMA overrides).

var<workgroup> red: array<vec4<f32>, WG>;

// Fixed-shape tree sum of one vec4 per invocation; every invocation gets the total.
fn reduce(v: vec4<f32>, lid: u32) -> vec4<f32> {
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

// The same for two sums (lane-wise, so the same bits as a vec2 tree).
fn reduce2(v: vec2<f32>, lid: u32) -> vec2<f32> {
    return reduce(vec4<f32>(v, 0.0, 0.0), lid).xy;
}

fn gamma_at(item: u32, c: u32) -> f32 {
    if (HAS_GAMMA) { return gamma[p.g_off + item * p.g_stride + c]; }
    return 1.0;
}
