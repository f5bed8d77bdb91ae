// Activation functions shared by gemm.wgsl (epilogue) and elementwise.wgsl.
// Prepended to those files at build time (see `Shader` definitions in src/ops/).
// Codes: 0 = identity, 1 = ReLU, 2 = ELU (alpha = 1).

fn act_forward(x: f32, kind: u32) -> f32 {
    switch kind {
        case 1u: { return max(x, 0.0); }
        case 2u: { return select(exp(x) - 1.0, x, x > 0.0); }
        default: { return x; }
    }
}

// Derivative expressed through the activation's OUTPUT y, so the backward pass needs only the
// stored activations: ReLU' = [y > 0]; ELU' = 1 if y > 0 else y + 1 (= e^x).
fn act_backward(dy: f32, y: f32, kind: u32) -> f32 {
    switch kind {
        case 1u: { return select(0.0, dy, y > 0.0); }
        case 2u: { return select(dy * (y + 1.0), dy, y > 0.0); }
        default: { return dy; }
    }
}

// act''(x)/act'(x) from the output y, for the tangent of the backward: with the output's tangent
// ẏ = act'(x)·ẋ, the curvature term act''(x)·ẋ·dy is act_curvature(y)·ẏ·dy, so it needs only
// stored outputs. ELU: act'' = act' = eˣ for x ≤ 0 (y ≤ 0; x = 0 takes the eˣ − 1 branch, as
// the forward does), 0 above; ReLU and the identity: 0.
fn act_curvature(y: f32, kind: u32) -> f32 {
    switch kind {
        case 2u: { return select(1.0, 0.0, y > 0.0); }
        default: { return 0.0; }
    }
}
