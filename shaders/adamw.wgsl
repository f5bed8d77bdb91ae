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
// A fourth, for second-order meta-gradients, runs a step backwards (reverse-mode):
//   vjp:     one invocation per element: the adjoint of step `cfg.t` (see `adamw_vjp_cpu`).
//            Binding 1 (`weights`) holds θ̄ (in: θ̄′, out: (1 − lr·wd)·θ̄′) and binding 2
//            (`grads`) the step's gradient g, as in `update`; bindings 6–10 hold m′, v′ (what the
//            step wrote, read) and m̄, v̄ (in/out), ḡ (out), each with its own offset and stride.
//            It reads only the lr and wd blocks of `state`; bindings 3 and 4 are unused (the
//            launcher binds a read-only stand-in: a pipeline layout covers what its entry uses).
//
// `state` holds 9 blocks of B values: t, skipped (total), consecutive skips, apply, clip scale,
// 1 − b1^t, 1 − b2^t, learning rate, weight decay. Counters are f32 holding integers (exact up
// to 2^24). The learning rate and weight decay are per item (written by the host or by other
// kernels), so independent runs with different hyper-parameters share one dispatch.
// `moments` holds m (B·n values) followed by v (B·n values), both contiguous.

struct Params {
    batch: u32, n: u32, w_off: u32, w_stride: u32,
    g_off: u32, g_stride: u32, b1: f32, b2: f32,
    eps: f32, eps_root: f32, max_norm: f32, t: u32,          // t: vjp only
    mn_off: u32, mn_stride: u32, vn_off: u32, vn_stride: u32, // m′, v′ (vjp)
    mb_off: u32, mb_stride: u32, vb_off: u32, vb_stride: u32, // m̄, v̄ (vjp)
    gb_off: u32, gb_stride: u32, _pad0: u32, _pad1: u32,      // ḡ (vjp)
}

const WG: u32 = 256u;
const WG_ITEMS: u32 = 64u;

@group(0) @binding(0) var<uniform> cfg: Params;
@group(0) @binding(1) var<storage, read_write> weights: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> moments: array<f32>;
@group(0) @binding(4) var<storage, read> sumsq: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;
@group(0) @binding(6) var<storage, read> m_new: array<f32>;
@group(0) @binding(7) var<storage, read> v_new: array<f32>;
@group(0) @binding(8) var<storage, read_write> m_bar: array<f32>;
@group(0) @binding(9) var<storage, read_write> v_bar: array<f32>;
@group(0) @binding(10) var<storage, read_write> g_bar: array<f32>;

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

// Element i of item b of an operand at (off, stride).
fn at(off: u32, stride: u32, b: u32, i: u32) -> u32 {
    return off + b * stride + i;
}

// The adjoint of one step, in the CPU twin's operation order (`adamw_vjp_cpu`):
//   D = √(v′/(1−b2ᵗ) + eps_root), den = D + eps, u = (m′/(1−b1ᵗ))/den,
//   M = m̄′ − lr·θ̄′/((1−b1ᵗ)·den), V = v̄′ + lr·θ̄′·u/(2·D·den·(1−b2ᵗ)),
//   θ̄ = (1 − lr·wd)·θ̄′, m̄ = b1·M, v̄ = b2·V, ḡ = (1−b1)·M + 2(1−b2)·g·V.
// The bias corrections come from the step count in the launch parameters (one dispatch per
// inner step), not from `state`, which holds the count of the last forward step.
@compute @workgroup_size(WG)
fn vjp(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid.x;
    let nb = cfg.batch;
    if (e >= nb * cfg.n) { return; }
    let b = e / cfg.n;
    let i = e % cfg.n;
    let lr = state[7u * nb + b];
    let wd = state[8u * nb + b];
    let bc1 = 1.0 - powi(cfg.b1, cfg.t);
    let bc2 = 1.0 - powi(cfg.b2, cfg.t);
    let ti = at(cfg.w_off, cfg.w_stride, b, i);
    let mi = at(cfg.mb_off, cfg.mb_stride, b, i);
    let vi = at(cfg.vb_off, cfg.vb_stride, b, i);
    let a = weights[ti];
    let d = sqrt(v_new[at(cfg.vn_off, cfg.vn_stride, b, i)] / bc2 + cfg.eps_root);
    let den = d + cfg.eps;
    let u = (m_new[at(cfg.mn_off, cfg.mn_stride, b, i)] / bc1) / den;
    let big_m = m_bar[mi] - lr * a / (bc1 * den);
    let big_v = v_bar[vi] + lr * a * u / (2.0 * d * den * bc2);
    weights[ti] = (1.0 - lr * wd) * a;
    m_bar[mi] = cfg.b1 * big_m;
    v_bar[vi] = cfg.b2 * big_v;
    let g = grads[at(cfg.g_off, cfg.g_stride, b, i)];
    g_bar[at(cfg.gb_off, cfg.gb_stride, b, i)] = (1.0 - cfg.b1) * big_m + 2.0 * (1.0 - cfg.b2) * g * big_v;
}
