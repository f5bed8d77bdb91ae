// Element-wise kernels, strided-batched over the leading axis (activation.wgsl is prepended).
// One invocation per logical element of the output `y` (batch · len elements, len = rows·cols);
// each operand has its own element offset and batch stride (stride 0 = one item shared by the
// batch; only inputs may be shared).
//
// Three entry points that differ only in which buffers they touch, because a binding that an
// entry point statically uses must be in its pipeline layout, and an in-place kernel has no
// second buffer that could stand in for an unused input (the device layer forbids binding the
// written buffer twice). `y` is binding 1 in all of them so the layouts nest:
//   apply_inplace  (y)        OP 0: y = alpha·y            OP 1: y = alpha (fill; y not read)
//   apply_unary    (y, a)     OP 0: y = act(a)             OP 1: y += alpha·a
//                             OP 2: y += a[i mod cols]     (bias: one value per column)
//   apply_binary   (y, a, b)  y = act'(·)·a from the activation output b (a = dy, b = act output)
//   apply_tangent  (y, a, b, c, d)  the tangent of the activation backward (forward-over-reverse):
//                  y = act'(·)·a + act''(·)·ẋ·d with a = ḋy, b = act output, c = its tangent ẏ,
//                  d = dy (act''·ẋ = act_curvature(b)·c)

struct Params {
    len: u32,      // elements per item
    total: u32,    // batch · len
    cols: u32,     // period of the bias operand (OP 2 of apply_unary)
    _pad0: u32,
    y_off: u32, y_stride: u32,
    a_off: u32, a_stride: u32,
    b_off: u32, b_stride: u32,
    alpha: f32,
    _pad1: u32,
    c_off: u32, c_stride: u32,
    d_off: u32, d_stride: u32,
}

override OP: u32 = 0u;
override ACT: u32 = 0u;

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> c: array<f32>;
@group(0) @binding(5) var<storage, read> d: array<f32>;

// Logical element `g` (row-major over batch · len) split into its item and in-item index.
struct Elem { item: u32, i: u32 }

fn linear(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

fn elem(g: u32) -> Elem {
    return Elem(g / p.len, g % p.len);
}

fn y_idx(e: Elem) -> u32 { return p.y_off + e.item * p.y_stride + e.i; }
fn a_idx(e: Elem) -> u32 { return p.a_off + e.item * p.a_stride + e.i; }
fn b_idx(e: Elem) -> u32 { return p.b_off + e.item * p.b_stride + e.i; }

@compute @workgroup_size(WG)
fn apply_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = linear(wid, nwg, lid);
    if (g >= p.total) { return; }
    let k = y_idx(elem(g));
    switch OP {
        // Fill must not read y: it may hold NaN garbage and NaN · 0 would stay NaN.
        case 1u: { y[k] = p.alpha; }
        default: { y[k] = p.alpha * y[k]; }
    }
}

@compute @workgroup_size(WG)
fn apply_unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = linear(wid, nwg, lid);
    if (g >= p.total) { return; }
    let e = elem(g);
    let k = y_idx(e);
    switch OP {
        case 1u: { y[k] = fma(p.alpha, a[a_idx(e)], y[k]); }
        case 2u: { y[k] += a[p.a_off + e.item * p.a_stride + e.i % p.cols]; }
        default: { y[k] = act_forward(a[a_idx(e)], ACT); }
    }
}

@compute @workgroup_size(WG)
fn apply_binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = linear(wid, nwg, lid);
    if (g >= p.total) { return; }
    let e = elem(g);
    y[y_idx(e)] = act_backward(a[a_idx(e)], b[b_idx(e)], ACT);
}

@compute @workgroup_size(WG)
fn apply_tangent(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = linear(wid, nwg, lid);
    if (g >= p.total) { return; }
    let e = elem(g);
    let out = b[b_idx(e)];
    let curv = act_curvature(out, ACT) * c[p.c_off + e.item * p.c_stride + e.i]
        * d[p.d_off + e.item * p.d_stride + e.i];
    y[y_idx(e)] = act_backward(a[a_idx(e)], out, ACT) + curv;
}
