// Batched GEMM with epilogue:  C[b] = act(alpha · op(A[b]) · op(B[b]) + beta · C[b] + bias[b])
// op(X) = X or Xᵀ (TRANS_A / TRANS_B). Every operand has its own element offset and batch stride
// (stride 0 = one matrix shared by the whole batch). Row-major storage:
//   A: M×K (or K×M when TRANS_A), B: K×N (or N×K when TRANS_B), C: M×N, bias: N per item.
//
// Tiling: a workgroup of WG_X × WG_Y invocations computes a (WG_Y·TM) × (WG_X·TN) tile of C,
// each invocation a TM×TN register block with rows lid.y + i·WG_Y and columns lid.x + j·WG_X
// (interleaved, so stores of neighbouring invocations are contiguous). K is walked in BK-deep
// slabs staged in workgroup memory. Edges are zero-padded on load and masked on store, so any
// M, N, K works.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_stride: u32, b_off: u32, b_stride: u32,
    c_off: u32, c_stride: u32, bias_off: u32, bias_stride: u32,
    alpha: f32, beta: f32, _pad0: u32, _pad1: u32,
}

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override BK: u32 = 16u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACT: u32 = 0u;

const TM: u32 = 4u;
const TN: u32 = 4u;
override TILE_M: u32 = WG_Y * TM;
override TILE_N: u32 = WG_X * TN;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

var<workgroup> a_tile: array<f32, BK * TILE_M>;
var<workgroup> b_tile: array<f32, BK * TILE_N>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let item = wid.z;
    let row0 = wid.y * TILE_M;
    let col0 = wid.x * TILE_N;
    let tid = lid.y * WG_X + lid.x;
    let threads = WG_X * WG_Y;
    let a_base = p.a_off + item * p.a_stride;
    let b_base = p.b_off + item * p.b_stride;

    var acc: array<f32, 16>; // TM * TN
    for (var i = 0u; i < TM * TN; i++) { acc[i] = 0.0; }

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Stage A: iterate so that consecutive invocations read consecutive addresses.
        for (var e = tid; e < BK * TILE_M; e += threads) {
            var kk: u32; var mm: u32;
            if (TRANS_A) { kk = e / TILE_M; mm = e % TILE_M; } else { mm = e / BK; kk = e % BK; }
            let gr = row0 + mm;
            let gk = k0 + kk;
            var v = 0.0;
            if (gr < p.m && gk < p.k) {
                v = a[a_base + select(gr * p.k + gk, gk * p.m + gr, TRANS_A)];
            }
            a_tile[kk * TILE_M + mm] = v;
        }
        for (var e = tid; e < BK * TILE_N; e += threads) {
            var kk: u32; var nn: u32;
            if (TRANS_B) { nn = e / BK; kk = e % BK; } else { kk = e / TILE_N; nn = e % TILE_N; }
            let gc = col0 + nn;
            let gk = k0 + kk;
            var v = 0.0;
            if (gc < p.n && gk < p.k) {
                v = b[b_base + select(gk * p.n + gc, gc * p.k + gk, TRANS_B)];
            }
            b_tile[kk * TILE_N + nn] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a_reg: array<f32, 4>;
            var b_reg: array<f32, 4>;
            for (var i = 0u; i < TM; i++) { a_reg[i] = a_tile[kk * TILE_M + lid.y + i * WG_Y]; }
            for (var j = 0u; j < TN; j++) { b_reg[j] = b_tile[kk * TILE_N + lid.x + j * WG_X]; }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) {
                    acc[i * TN + j] = fma(a_reg[i], b_reg[j], acc[i * TN + j]);
                }
            }
        }
        workgroupBarrier();
    }

    let c_base = p.c_off + item * p.c_stride;
    let bias_base = p.bias_off + item * p.bias_stride;
    for (var i = 0u; i < TM; i++) {
        let r = row0 + lid.y + i * WG_Y;
        for (var j = 0u; j < TN; j++) {
            let col = col0 + lid.x + j * WG_X;
            if (r < p.m && col < p.n) {
                let idx = c_base + r * p.n + col;
                var v = p.alpha * acc[i * TN + j];
                // beta == 0 must not read C: it may hold garbage (NaN · 0 = NaN).
                if (p.beta != 0.0) { v = fma(p.beta, c[idx], v); }
                if (HAS_BIAS) { v += bias[bias_base + col]; }
                c[idx] = act_forward(v, ACT);
            }
        }
    }
}
