//! The layers of `hypermod::nn`: GPU launches vs their CPU twins on random shapes (odd sizes,
//! batch 1, shared and per-item bindings, strided inputs, every activation), finite-difference
//! checks of the twins' backward in f64, and the shape errors.

mod common;

use hypermod::gpu::{Device, Step, Tensor};
use hypermod::nn::{
    activation_backward, activation_forward, linear_backward, linear_forward, DeepBank,
    DeepBankTangent, Dense, DenseBackward, LayerNorm, LayerParams, Mlp, Param,
};
use hypermod::ops::Activation;
use rand::rngs::ChaCha8Rng;

/// f32 unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Tolerance of a length-K f32 dot product whose terms are bounded by 1 in magnitude (inputs in
/// [−1, 1], |act'| ≤ 1): |err| ≤ K·u·Σ|terms| ≤ K²·u (Higham's γ_K); ×4 covers the epilogue's
/// roundings and the activation derivative taken from a rounded output.
fn dot_tol(k: usize) -> f64 {
    4.0 * (k * k) as f64 * U + 1e-7
}

fn read(gpu: &Device, t: &Tensor) -> Vec<f32> {
    gpu.read(t).unwrap()
}

fn run<'a>(gpu: &Device, launches: impl IntoIterator<Item = &'a hypermod::gpu::Dispatch>) {
    let mut step = Step::new(gpu);
    step.run_all(launches);
    step.finish().unwrap();
}

/// A parameter of `rows × cols` for `items`: shared (one item uploaded, broadcast) or per item;
/// returns the binding and the logical host values of every item.
fn param(
    gpu: &Device,
    rng: &mut ChaCha8Rng,
    items: usize,
    rows: usize,
    cols: usize,
    shared: bool,
) -> (Param, Vec<f32>) {
    let host = common::data(rng, items, rows * cols, shared);
    if shared {
        let v = gpu.upload(&host[..rows * cols], 1, rows, cols).unwrap();
        let g = gpu.zeros(1, rows, cols).unwrap();
        (Param::shared(&v, Some(&g), items).unwrap(), host)
    } else {
        let v = gpu.upload(&host, items, rows, cols).unwrap();
        let g = gpu.zeros(items, rows, cols).unwrap();
        (Param::per_item(&v, Some(&g)).unwrap(), host)
    }
}

/// The host gradient of a parameter as the layer must write it: per item, or summed.
fn expected_grad(per_item: &[Vec<f64>], shared: bool) -> Vec<f64> {
    if !shared {
        return per_item.concat();
    }
    let mut sum = vec![0.0; per_item[0].len()];
    for g in per_item {
        sum.iter_mut().zip(g).for_each(|(s, v)| *s += v);
    }
    sum
}

struct DenseCase {
    items: usize,
    n: usize,
    layer: Dense,
    bias: bool,
    shared_w: bool,
    shared_b: bool,
    strided_x: bool,
}

fn dense_case(rng: &mut ChaCha8Rng, i: usize) -> DenseCase {
    let (fi, fo) = (common::size(rng, 1, 37), common::size(rng, 1, 37));
    let act = Activation::ALL[i % 3];
    let layer = Dense::new(fi, fo).with_activation(act);
    DenseCase {
        items: if i.is_multiple_of(5) {
            1
        } else {
            common::size(rng, 2, 4)
        },
        n: common::size(rng, 1, 9),
        layer: if i.is_multiple_of(2) {
            layer.reparametrized()
        } else {
            layer
        },
        bias: i % 4 != 3,
        shared_w: i % 3 == 1,
        shared_b: i % 2 == 1,
        strided_x: i % 4 == 2,
    }
}

fn check_dense(gpu: &Device, rng: &mut ChaCha8Rng, c: &DenseCase, ctx: &str) {
    let l = c.layer;
    let (items, n, fi, fo) = (c.items, c.n, l.fan_in, l.fan_out);
    let x_host = common::uniform(rng, items * n * fi);
    let x = if c.strided_x {
        common::padded(gpu, &x_host, items, n, fi)
    } else {
        gpu.upload(&x_host, items, n, fi).unwrap()
    };
    let (w, w_host) = param(gpu, rng, items, fi, fo, c.shared_w);
    let b = c.bias.then(|| param(gpu, rng, items, 1, fo, c.shared_b));
    let dy_host = common::uniform(rng, items * n * fo);
    let dy = gpu.upload(&dy_host, items, n, fo).unwrap();
    let (y, dz, dx) = (
        gpu.zeros(items, n, fo).unwrap(),
        gpu.zeros(items, n, fo).unwrap(),
        gpu.zeros(items, n, fi).unwrap(),
    );
    let bp = b.as_ref().map(|b| &b.0);
    let mut launches = vec![l.forward(gpu, &x, &w, bp, &y).unwrap()];
    let io = DenseBackward {
        x: &x,
        y: &y,
        dy: &dy,
        dz: &dz,
        dx: Some(&dx),
    };
    launches.extend(l.backward(gpu, &w, bp, &io).unwrap());
    run(gpu, &launches);

    let (mut want_y, mut want_dx, mut dws, mut dbs) = (vec![], vec![], vec![], vec![]);
    for it in 0..items {
        let xi = common::widen(&x_host[it * n * fi..(it + 1) * n * fi]);
        let wi = common::widen(&w_host[it * fi * fo..(it + 1) * fi * fo]);
        let bi = b
            .as_ref()
            .map(|b| common::widen(&b.1[it * fo..(it + 1) * fo]));
        let z = linear_forward(&xi, &wi, bi.as_deref(), fi, fo, l.scale as f64);
        let yi = activation_forward(&z, l.activation);
        let dyi = common::widen(&dy_host[it * n * fo..(it + 1) * n * fo]);
        let g = linear_backward(
            &xi,
            &wi,
            &activation_backward(&dyi, &yi, l.activation),
            fi,
            fo,
            l.scale as f64,
            true,
        );
        want_y.extend(yi);
        want_dx.extend(g.dx);
        dws.push(g.dw);
        dbs.push(g.db);
    }
    let rows = if c.shared_w { items * n } else { n };
    common::assert_close(
        &read(gpu, &y),
        &want_y,
        |_| dot_tol(fi),
        &format!("{ctx}: y"),
    );
    common::assert_close(
        &read(gpu, &dx),
        &want_dx,
        |_| dot_tol(fo),
        &format!("{ctx}: dx"),
    );
    let dw = read(gpu, w.grad.as_ref().unwrap());
    let want_dw = expected_grad(&dws, c.shared_w);
    common::assert_close(&dw, &want_dw, |_| dot_tol(rows), &format!("{ctx}: dw"));
    if let Some((b, _)) = &b {
        let db = read(gpu, b.grad.as_ref().unwrap());
        let rows = if c.shared_b { items * n } else { n };
        let want = expected_grad(&dbs, c.shared_b);
        common::assert_close(&db, &want, |_| dot_tol(rows), &format!("{ctx}: db"));
    }
}

#[test]
fn dense_matches_twin_on_random_shapes_and_bindings() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(11);
    for i in 0..24 {
        let c = dense_case(&mut rng, i);
        let ctx = format!(
            "case {i}: items {} n {} {}→{} {:?} shared w/b {}/{} strided x {}",
            c.items,
            c.n,
            c.layer.fan_in,
            c.layer.fan_out,
            c.layer.activation,
            c.shared_w,
            c.shared_b,
            c.strided_x
        );
        check_dense(gpu, &mut rng, &c, &ctx);
    }
}

/// An MLP whose first layer is shared and frozen (no gradient): the backward must stop above it
/// and leave its gradient buffer untouched, while the per-item layers above match the twin.
#[test]
fn mlp_backward_stops_at_the_lowest_trained_layer() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(12);
    for case in 0..6 {
        let items = common::size(&mut rng, 1, 3);
        let n = common::size(&mut rng, 1, 6);
        let dims: Vec<usize> = (0..4).map(|_| common::size(&mut rng, 1, 19)).collect();
        let mlp = Mlp::new(&dims, Activation::Relu, Activation::Identity);
        let mut params = Vec::new();
        let mut host = Vec::new();
        let mut frozen = None;
        for (l, layer) in mlp.layers.iter().enumerate() {
            let (mut w, wh) = param(gpu, &mut rng, items, layer.fan_in, layer.fan_out, l == 0);
            let (mut b, bh) = param(gpu, &mut rng, items, 1, layer.fan_out, l == 0);
            if l == 0 {
                let g = w.grad.take().unwrap();
                gpu.write(&g, &vec![7.0; layer.fan_in * layer.fan_out])
                    .unwrap();
                frozen = Some(g);
                b.grad = None;
            }
            params.push(LayerParams { w, b: Some(b) });
            host.push((wh, bh));
        }
        let x_host = common::uniform(&mut rng, items * n * dims[0]);
        let x = gpu.upload(&x_host, items, n, dims[0]).unwrap();
        let out = gpu.zeros(items, n, dims[3]).unwrap();
        let dout_host = common::uniform(&mut rng, items * n * dims[3]);
        let dout = gpu.upload(&dout_host, items, n, dims[3]).unwrap();
        let p = mlp.program(gpu, &params, &x, &out, Some(&dout)).unwrap();
        run(gpu, p.forward.iter().chain(&p.backward));

        let mut want_out = Vec::new();
        let mut want_g: Vec<Vec<Vec<f64>>> = vec![Vec::new(); 3];
        for it in 0..items {
            let item = |v: &[f32], len: usize, shared: bool| {
                let at = if shared { 0 } else { it * len };
                common::widen(&v[at..at + len])
            };
            let ps: Vec<(Vec<f64>, Vec<f64>)> = (0..3)
                .map(|l| {
                    let (fi, fo) = (dims[l], dims[l + 1]);
                    (
                        item(&host[l].0, fi * fo, l == 0),
                        item(&host[l].1, fo, l == 0),
                    )
                })
                .collect();
            let refs: Vec<(&[f64], &[f64])> = ps
                .iter()
                .map(|(w, b)| (w.as_slice(), b.as_slice()))
                .collect();
            let xi = item(&x_host, n * dims[0], false);
            let cache = hypermod::nn::mlp_forward(&dims, &refs, &xi, false, false);
            let di = item(&dout_host, n * dims[3], false);
            let (g, _) = hypermod::nn::mlp_backward(&dims, &refs, &cache, &di, false, false, false);
            want_out.extend(cache.acts[3].clone());
            for l in 1..3 {
                want_g[l].push(g[l].0.clone());
            }
        }
        let k = dims.iter().max().unwrap() * dims.iter().max().unwrap();
        let ctx = format!("case {case}: dims {dims:?} items {items} n {n}");
        common::assert_close(&read(gpu, &out), &want_out, |_| dot_tol(k), &ctx);
        for l in 1..3 {
            let got = read(gpu, params[l].w.grad.as_ref().unwrap());
            let want = want_g[l].concat();
            common::assert_close(&got, &want, |_| dot_tol(k * n), &format!("{ctx}: dw{l}"));
        }
        // Layer 0 is frozen: its gradient buffer was never written.
        let untouched = read(gpu, &frozen.take().unwrap());
        assert!(
            untouched.iter().all(|&v| v == 7.0),
            "{ctx}: frozen layer written"
        );
    }
}

/// The DeepBank launches vs its twin, over `m` rows as one matrix, every parameter shared.
#[test]
fn deep_bank_matches_twin() {
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(13);
    for case in 0..5 {
        let (bank, m) = random_bank(&mut rng);
        let names = bank_names(&bank);
        let uploaded: Vec<(String, Param, Vec<f32>)> = names
            .iter()
            .map(|(name, r, c)| {
                let (p, h) = param(gpu, &mut rng, 1, *r, *c, true);
                (name.clone(), p, h)
            })
            .collect();
        let lookup = |name: &str| uploaded.iter().find(|u| u.0 == name).unwrap();
        let resolve = |name: &str, _r: usize, _c: usize| Ok(lookup(name).1.clone());
        let e_host = common::uniform(&mut rng, m * bank.templates);
        let ehat = gpu.upload(&e_host, 1, m, bank.templates).unwrap();
        let dehat = gpu.zeros(1, m, bank.templates).unwrap();
        let gen = gpu.zeros(1, m, bank.chunk).unwrap();
        let dgen_host = common::uniform(&mut rng, m * bank.chunk);
        let dgen = gpu.upload(&dgen_host, 1, m, bank.chunk).unwrap();
        let p = bank
            .program(gpu, &resolve, &ehat, &dehat, &gen, &dgen, None)
            .unwrap();
        run(gpu, p.forward.iter().chain(&p.backward));

        let wide: Vec<(String, Vec<f64>)> = uploaded
            .iter()
            .map(|(n, _, h)| (n.clone(), common::widen(h)))
            .collect();
        let pv = |name: &str| -> &[f64] { &wide.iter().find(|w| w.0 == name).unwrap().1 };
        let e = common::widen(&e_host);
        let cache = bank.forward_cpu(&pv, &e);
        let mut grads: Vec<(String, Vec<f64>)> = Vec::new();
        let mut add = |name: &str, g: &[f64]| grads.push((name.to_string(), g.to_vec()));
        let de = bank.backward_cpu(&pv, &mut add, &e, &cache, &common::widen(&dgen_host));
        let ctx = format!("case {case}: {bank:?} m {m}");
        common::assert_close(&read(gpu, &gen), &cache.gen, rel(&cache.gen), &ctx);
        common::assert_close(&read(gpu, &dehat), &de, rel(&de), &format!("{ctx}: dê"));
        for (name, g) in &grads {
            let got = read(gpu, lookup(name).1.grad.as_ref().unwrap());
            common::assert_close(&got, g, rel(g), &format!("{ctx}: d{name}"));
        }
    }
}

/// The DeepBank's tangent passes (ê moving along ė̂, the tangent of ∂L/∂gen given, the
/// parameters still) vs its twin run on dual numbers, which differentiates it exactly: ġen, the
/// tangent of ∂L/∂ê and every parameter's gradient tangent.
#[test]
fn deep_bank_tangents_match_the_dual_twin() {
    use hypermod::ops::dual::Dual;
    let gpu = gpu_or_skip!();
    let mut rng = common::rng(17);
    for case in 0..5 {
        let (bank, m) = random_bank(&mut rng);
        let (t, c) = (bank.templates, bank.chunk);
        let uploaded: Vec<(String, Param, Vec<f32>, Tensor)> = bank_names(&bank)
            .into_iter()
            .map(|(name, r, cols)| {
                let (p, h) = param(gpu, &mut rng, 1, r, cols, true);
                (name, p, h, gpu.zeros(1, r, cols).unwrap())
            })
            .collect();
        let lookup = |name: &str| uploaded.iter().find(|u| u.0 == name).unwrap();
        let resolve = |name: &str, _r: usize, _c: usize| Ok(lookup(name).1.clone());
        let grad_dot = |name: &str, _r: usize, _c: usize| Ok(lookup(name).3.clone());
        let host = |rng: &mut ChaCha8Rng, n: usize| common::uniform(rng, n);
        let (e, e_dot) = (host(&mut rng, m * t), host(&mut rng, m * t));
        let (dg, dg_dot) = (host(&mut rng, m * c), host(&mut rng, m * c));
        let up = |v: &[f32], cols: usize| gpu.upload(v, 1, m, cols).unwrap();
        let zeros = |cols: usize| gpu.zeros(1, m, cols).unwrap();
        let (ehat, ehat_dot, dgen, dgen_dot) =
            (up(&e, t), up(&e_dot, t), up(&dg, c), up(&dg_dot, c));
        let (dehat, dehat_dot, gen, gen_dot) = (zeros(t), zeros(t), zeros(c), zeros(c));
        let tangent = DeepBankTangent {
            ehat_dot: &ehat_dot,
            dehat_dot: &dehat_dot,
            gen_dot: &gen_dot,
            dgen_dot: &dgen_dot,
            grad_dot: &grad_dot,
        };
        let p = bank
            .program(gpu, &resolve, &ehat, &dehat, &gen, &dgen, Some(&tangent))
            .unwrap();
        let all = [
            &p.forward,
            &p.backward,
            &p.tangent_forward,
            &p.tangent_backward,
        ];
        run(gpu, all.into_iter().flatten());

        let duals: Vec<(String, Vec<Dual>)> = uploaded
            .iter()
            .map(|(n, _, h, _)| (n.clone(), Dual::constants(&common::widen(h))))
            .collect();
        let pv = |name: &str| -> &[Dual] { &duals.iter().find(|w| w.0 == name).unwrap().1 };
        let ed = Dual::seed(&common::widen(&e), &common::widen(&e_dot));
        let cache = bank.forward_cpu(&pv, &ed);
        let mut grads: Vec<(String, Vec<f64>)> = Vec::new();
        let mut add = |name: &str, g: &[Dual]| grads.push((name.to_string(), Dual::tangents(g)));
        let dgd = Dual::seed(&common::widen(&dg), &common::widen(&dg_dot));
        let de = bank.backward_cpu(&pv, &mut add, &ed, &cache, &dgd);
        let ctx = format!("case {case}: {bank:?} m {m}");
        let gen_t = Dual::tangents(&cache.gen);
        common::assert_close(
            &read(gpu, &gen_dot),
            &gen_t,
            rel(&gen_t),
            &format!("{ctx}: ġen"),
        );
        let de_t = Dual::tangents(&de);
        common::assert_close(
            &read(gpu, &dehat_dot),
            &de_t,
            rel(&de_t),
            &format!("{ctx}: (dê)˙"),
        );
        for (name, g) in &grads {
            let got = read(gpu, &lookup(name).3);
            common::assert_close(&got, g, rel(g), &format!("{ctx}: (d{name})˙"));
        }
    }
}

/// A DeepBank of random small shape and a row count `m` for it.
fn random_bank(rng: &mut ChaCha8Rng) -> (DeepBank, usize) {
    let bank = DeepBank {
        templates: common::size(rng, 2, 9),
        body_dim: common::size(rng, 2, 11),
        body_layers: common::size(rng, 1, 3),
        chunk: common::size(rng, 1, 23),
    };
    (bank, common::size(rng, 1, 7))
}

/// LayerNorm amplifies by rstd (≤ 1/√eps in theory, O(1) for random rows): a relative
/// tolerance per element against the largest magnitude of each output.
fn rel(want: &[f64]) -> impl Fn(usize) -> f64 {
    let big = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
    move |_| 1e-4 * big
}

fn bank_names(b: &DeepBank) -> Vec<(String, usize, usize)> {
    let (t, bd) = (b.templates, b.body_dim);
    let mut v = vec![("ln0.scale".into(), 1, t), ("ln0.offset".into(), 1, t)];
    for i in 0..b.body_layers {
        let fi = if i == 0 { t } else { bd };
        v.push((format!("lin{i}.w"), fi, bd));
        v.push((format!("lin{i}.b"), 1, bd));
        v.push((format!("ln{}.scale", i + 1), 1, bd));
        v.push((format!("ln{}.offset", i + 1), 1, bd));
    }
    v.push(("head".into(), bd, b.chunk));
    v
}

// ---------------------------------------------------------------------------------------------
// Finite differences of the twins (f64)
// ---------------------------------------------------------------------------------------------

const H: f64 = 1e-6;

fn wide(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    common::widen(&common::uniform(rng, n))
}

#[test]
fn dense_twin_backward_matches_finite_differences() {
    let mut rng = common::rng(14);
    // ELU and the identity are smooth; ReLU is checked away from its kink by the students'
    // tests, which use it, so the smooth activations suffice here.
    for act in [Activation::Identity, Activation::Elu] {
        let (n, fi, fo, scale) = (3, 4, 5, 0.5);
        let (x, w, b, dy) = (
            wide(&mut rng, n * fi),
            wide(&mut rng, fi * fo),
            wide(&mut rng, fo),
            wide(&mut rng, n * fo),
        );
        let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
            let y = activation_forward(&linear_forward(x, w, Some(b), fi, fo, scale), act);
            y.iter().zip(&dy).map(|(a, d)| a * d).sum()
        };
        let y = activation_forward(&linear_forward(&x, &w, Some(&b), fi, fo, scale), act);
        let g = linear_backward(
            &x,
            &w,
            &activation_backward(&dy, &y, act),
            fi,
            fo,
            scale,
            true,
        );
        common::assert_fd("dx", &g.dx, &common::fd(H, &x, |q| loss(q, &w, &b)));
        common::assert_fd("dw", &g.dw, &common::fd(H, &w, |q| loss(&x, q, &b)));
        common::assert_fd("db", &g.db, &common::fd(H, &b, |q| loss(&x, &w, q)));
    }
}

#[test]
fn deep_bank_twin_backward_matches_finite_differences() {
    let mut rng = common::rng(15);
    let bank = DeepBank {
        templates: 3,
        body_dim: 4,
        body_layers: 2,
        chunk: 5,
    };
    let m = 2;
    let names = bank_names(&bank);
    let params: Vec<Vec<f64>> = names
        .iter()
        .map(|(_, r, c)| wide(&mut rng, r * c))
        .collect();
    let e = wide(&mut rng, m * bank.templates);
    let dgen = wide(&mut rng, m * bank.chunk);
    let index = |name: &str| names.iter().position(|n| n.0 == name).unwrap();
    let loss = |ps: &[Vec<f64>], e: &[f64]| -> f64 {
        let pv = |name: &str| -> &[f64] { &ps[index(name)] };
        let c = bank.forward_cpu(&pv, e);
        c.gen.iter().zip(&dgen).map(|(a, d)| a * d).sum()
    };
    let pv = |name: &str| -> &[f64] { &params[index(name)] };
    let cache = bank.forward_cpu(&pv, &e);
    let mut grads = vec![Vec::new(); names.len()];
    let mut add = |name: &str, g: &[f64]| grads[index(name)] = g.to_vec();
    let de = bank.backward_cpu(&pv, &mut add, &e, &cache, &dgen);
    common::assert_fd("dê", &de, &common::fd(H, &e, |q| loss(&params, q)));
    for (i, (name, _, _)) in names.iter().enumerate() {
        let numeric = common::fd(H, &params[i], |q| {
            let mut ps = params.clone();
            ps[i] = q.to_vec();
            loss(&ps, &e)
        });
        common::assert_fd(name, &grads[i], &numeric);
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_bindings_and_shapes_are_typed_errors_naming_them() {
    let gpu = gpu_or_skip!();
    let x = gpu.zeros(2, 3, 4).unwrap();
    let y = gpu.zeros(2, 3, 5).unwrap();
    let w_wrong = gpu.zeros(1, 5, 5).unwrap();
    let w = Param::shared(&w_wrong, None, 2).unwrap();
    let err = Dense::new(4, 5).forward(gpu, &x, &w, None, &y).unwrap_err();
    assert!(
        matches!(err, hypermod::gpu::DeviceError::Shape { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("4→5") && msg.contains("[2×5×5]"), "{msg}");

    let batched = gpu.zeros(2, 4, 5).unwrap();
    let msg = Param::shared(&batched, None, 2).unwrap_err().to_string();
    assert!(msg.contains("[2×4×5]"), "{msg}");
    let g_wrong = gpu.zeros(2, 5, 4).unwrap();
    let msg = Param::per_item(&batched, Some(&g_wrong))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("[2×5×4]") && msg.contains("[2×4×5]"), "{msg}");

    // A γ shared by several items with a gradient: the LN kernel cannot sum it over them.
    let ln = LayerNorm::new(4);
    let g = gpu.zeros(1, 1, 4).unwrap();
    let shared = Param::shared(&g, Some(&gpu.zeros(1, 1, 4).unwrap()), 2).unwrap();
    let stats = ln.stats(gpu, 2, 3).unwrap();
    let out = gpu.zeros(2, 3, 4).unwrap();
    let msg = ln
        .forward(gpu, &x, &shared, &shared, &out, &stats)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("2 items"), "{msg}");

    let mlp = Mlp::new(&[4, 5], Activation::Relu, Activation::Identity);
    let msg = mlp.program(gpu, &[], &x, &y, None).unwrap_err().to_string();
    assert!(
        msg.contains("1 layers need as many parameter sets, got 0"),
        "{msg}"
    );
}
