// The standard normal of the engine's RNG, shared by every kernel that draws normals (rng.wgsl,
// sine.wgsl): Φ⁻¹ by a piecewise degree-6 polynomial from the `NORMAL_TABLE` of src/ops/rng.rs,
// using only correctly rounded f32 +, −, ×, so every backend and the CPU twin give the same bits.
// The including shader declares the uniform `p` (with a `zero: u32` field, always 0) and the
// storage `table: array<u32>` (the polynomial table); WGSL resolves them wherever declared.

const DEG: u32 = 6u;

fn nc(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ p.zero);
}

// Φ⁻¹((m + 1/2) / 2^32) for any 32-bit m: symmetric (m and !m give opposite values).
fn normal_icdf(m: u32) -> f32 {
    let upper = m >= 0x80000000u;
    // a / 2^33 = min(u, 1 − u) ∈ (0, 1/2), a odd.
    let a = 2u * select(m, ~m, upper) + 1u;
    let j = 31u - countLeadingZeros(a);       // a ∈ [2^j, 2^(j+1))
    let n = a << (31u - j);                    // leading one at bit 31
    let seg = (n >> 29u) & 3u;
    // t ∈ [0, 1): an integer < 2^24 converts to f32 exactly; × 2^-24 is exact.
    let x = f32((n >> 5u) & 0xffffffu) * 5.9604644775390625e-8 - 0.5;
    let base = (j * 4u + seg) * (DEG + 1u);
    var y = bitcast<f32>(table[base]);
    for (var d = 1u; d <= DEG; d++) {
        y = nc(y * x) + bitcast<f32>(table[base + d]);
    }
    return select(y, -y, upper);
}

