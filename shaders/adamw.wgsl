// AdamW with global-norm clipping, skipped when the gradient is not finite. Semantics of optax
//   apply_if_finite(chain(clip_by_global_norm(max_norm), adamw(lr, b1, b2, eps, eps_root, wd)))
// per batch item b (each item is one parameter group with its own state; B = 1 is a shared one).
//
// Three entries share one binding layout (so one pipeline layout serves all of them):
//   prepare: one invocation per item. Reads the gradient's sum of squares (from reduce.wgsl) and,
//            if it is finite, increments t and writes the item's coefficients (apply = 1, clip
//            scale, bias corrections); otherwise counts the skip and writes apply = 0. Running it
//            before `update` means no update invocation ever reads a t that is being incremented.
//   update:  one invocation per parameter element; uses the coefficients of its item.
//   reset:   zeroes m, v, t and the consecutive-skip counter (a fresh state per task).
//
// `state` holds 9 blocks of B values: t, skipped (total), consecutive skips, apply, clip scale,
// 1 − b1^t, 1 − b2^t, learning rate, weight decay. Counters are f32 holding integers (exact up
// to 2^24). The learning rate and weight decay are per item (written by the host or by other
// kernels), so independent runs with different hyper-parameters share one dispatch.
// `moments` holds m (B·n values) followed by v (B·n values), both contiguous.

struct Params {
    batch: u32, n: u32, w_off: u32, w_stride: u32,
    g_off: u32, g_stride: u32, b1: f32, b2: f32,
    eps: f32, eps_root: f32, max_norm: f32, _pad0: u32,
    _pad1: u32, _pad2: u32, _pad3: u32, _pad4: u32,
}

const WG: u32 = 256u;
const WG_ITEMS: u32 = 64u;

@group(0) @binding(0) var<uniform> cfg: Params;
@group(0) @binding(1) var<storage, read_write> weights: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> moments: array<f32>;
@group(0) @binding(4) var<storage, read> sumsq: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;

// WGSL has no isinf/isnan, and compilers may fold `x != x`: test the exponent bits instead.
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// base^e by binary powering: only correctly rounded multiplies, in an order the CPU twin
// repeats exactly (pow() is exp2·log2 on GPUs, whose error 1 − b^t would amplify ~1/(1 − b) times).
fn powi(base: f32, e0: u32) -> f32 {
    var r = 1.0;
    var sq = base;
    var e = e0;
    loop {
        if ((e & 1u) == 1u) { r = r * sq; }
        e = e >> 1u;
        if (e == 0u) { break; }
        sq = sq * sq;
    }
    return r;
}

@compute @workgroup_size(WG_ITEMS)
fn prepare(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let nb = cfg.batch;
    if (b >= nb) { return; }
    let s = sumsq[b];
    if (is_finite(s)) {
        let t = state[b] + 1.0;
        state[b] = t;
        state[2u * nb + b] = 0.0;
        state[3u * nb + b] = 1.0;
        let norm = sqrt(s);
        let clip = cfg.max_norm > 0.0 && norm > cfg.max_norm;
        state[4u * nb + b] = select(1.0, cfg.max_norm / norm, clip);
        state[5u * nb + b] = 1.0 - powi(cfg.b1, u32(t));
        state[6u * nb + b] = 1.0 - powi(cfg.b2, u32(t));
    } else {
        state[nb + b] += 1.0;
        state[2u * nb + b] += 1.0;
        state[3u * nb + b] = 0.0;
    }
}

@compute @workgroup_size(WG)
fn update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid.x;
    let nb = cfg.batch;
    let total = nb * cfg.n;
    if (e >= total) { return; }
    let b = e / cfg.n;
    let i = e % cfg.n;
    if (state[3u * nb + b] == 0.0) { return; }
    let g = grads[cfg.g_off + b * cfg.g_stride + i] * state[4u * nb + b];
    // Same operation order as optax (and the CPU twin): (1 − β)·g + β·moment.
    let m = (1.0 - cfg.b1) * g + cfg.b1 * moments[e];
    let v = (1.0 - cfg.b2) * (g * g) + cfg.b2 * moments[total + e];
    moments[e] = m;
    moments[total + e] = v;
    let m_hat = m / state[5u * nb + b];
    let v_hat = v / state[6u * nb + b];
    let u = m_hat / (sqrt(v_hat + cfg.eps_root) + cfg.eps);
    let wi = cfg.w_off + b * cfg.w_stride + i;
    let w = weights[wi];
    let lr = state[7u * nb + b];
    let wd = state[8u * nb + b];
    weights[wi] = w - lr * (u + wd * w);
}

@compute @workgroup_size(WG)
fn reset(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid.x;
    let nb = cfg.batch;
    let total = nb * cfg.n;
    if (e < total) {
        moments[e] = 0.0;
        moments[total + e] = 0.0;
    }
    if (e < nb) {
        state[e] = 0.0;
        state[2u * nb + e] = 0.0;
    }
}
