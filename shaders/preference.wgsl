// Expert demonstrations of the compositional-preference gridworld (Schug et al. 2024; official
// code: metax/data/envs/preference.py, metax/data/envs/base.py, metax/data/imitation.py),
// generated on the device. Launcher, CPU twin and native kernel: src/ops/preference.rs.
//
// One workgroup per demonstration g = b·demos + d (task b, demonstration d).
//
// The world. The fixed 7×7 grid (w = wall)
//     wwwwwww
//     w  w  w
//     w  w  w
//     ww   ww
//     w  w  w
//     w  w  w
//     wwwwwww
// has 19 free cells, numbered row-major (4, 4, 3, 4, 4 in rows 1..5). `objects` objects lie on
// distinct free cells, each of a feature type in [0, features); the agent stands on another free
// cell. Actions: 0 NOTHING, 1 UP (row − 1), 2 RIGHT (col + 1), 3 DOWN (row + 1), 4 LEFT
// (col − 1); a move into a wall stays. After the move, an available object on the agent's cell
// is picked up (for every action, NOTHING included) and earns r_f = Σ_m z_m·B[m, f] for its type
// f (z = prefs of task b, M values; B = basis, M × F row-major); otherwise the reward is 0.
// A state is s = cell·2^objects + mask (bit i of mask: object i still available).
//
// Random draws (Philox, one key (seed, stream) for the launch, the counter layout of rng.wgsl):
// demonstration g owns counter elements g·32 .. g·32 + 31; element e gives word e % 4 of
// philox(counter = (e / 4, 0, stream_lo, stream_hi), key = (seed_lo, seed_hi)).
//   element g·32 + i       (i < objects):  object i's type = bits % features;
//   element g·32 + 8 + i   (i ≤ objects):  cell draw i, a partial Fisher–Yates shuffle of
//       pool = [0, 1, …, 18]: j = i + bits % (19 − i), swap pool[i] and pool[j], take pool[i];
//       draws 0 .. objects − 1 place the objects, draw `objects` the agent.
// Every other element of the range is unused.
//
// The expert (`demonstrate` of preference.py): `horizon` Bellman backups from Q_0 = 0,
//   Q_k(s, a) = γ·V_{k−1}(s') + r(s, a),   V_k(s) = max_a Q_k(s, a)   (strict > scan a = 0..4),
// NOTHING a plain stay; then `horizon` greedy steps a_t = argmax_a Q_H(s_t, a) (ties → lowest a).
// Row t of the demonstration: the observation of s_t, Q_H(s_t, ·), mask_t = 1 until NOTHING was
// taken at an earlier step (then the state stays, rows repeat it, masked). The return is the sum
// of the rewards in step order. Invocations over states run each backup (barrier, max, barrier);
// invocation 0 draws the start state and rolls out; then all write the rows.
//
// Observation: 7·7·(F + 2) floats, index (r·7 + c)·(F + 2) + ch: channel f < F is 1 on an
// available object of type f, channel F on the agent, channel F + 1 on every wall.
//
// Numerics: only correctly rounded f32 × and + (so the CPU twin gives the same bits): the rewards
// are acc ← acc + z_m·B[m, f] over m = 0..M−1 from 0, each backup value γ·V + r, the maxima
// strict-> scans, the return plain adds in step order. Every product passes through `nc`, an XOR
// with the opaque uniform zero `p.zero`, so the compiler cannot contract it with the sum into an
// FMA. (WGSL's `fma` is no substitute: its accuracy is only that of x·y + z, and lavapipe rounds
// it twice where a GPU with an FMA unit may round once.)
// philox.wgsl is prepended by the launcher.

struct Params {
    tasks: u32, demos: u32, objects: u32, features: u32,
    prefs: u32, horizon: u32, gamma: f32, seed_lo: u32,
    seed_hi: u32, stream_lo: u32, stream_hi: u32, pref_off: u32,
    pref_stride: u32, basis_off: u32, basis_stride: u32, obs_off: u32,
    obs_stride: u32, q_off: u32, q_stride: u32, mask_off: u32,
    mask_stride: u32, ret_off: u32, ret_stride: u32, start_off: u32,
    start_stride: u32,
    zero: u32,  // always 0; opaque to the compiler (see `nc`)
    _pad0: u32, _pad1: u32,
}

override WG: u32 = 64u;
const FREE: u32 = 19u;
const ACTIONS: u32 = 5u;
const MAX_OBJECTS: u32 = 4u;
// 19 cells × 2^4 masks; Q is MAX_STATES × 5.
const MAX_STATES: u32 = 304u;
const MAX_HORIZON: u32 = 64u;
const DRAWS: u32 = 32u;
const TYPE_DRAW: u32 = 0u;
const CELL_DRAW: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> prefs: array<f32>;
@group(0) @binding(2) var<storage, read> basis: array<f32>;
@group(0) @binding(3) var<storage, read_write> obs: array<f32>;
@group(0) @binding(4) var<storage, read_write> qout: array<f32>;
@group(0) @binding(5) var<storage, read_write> mask: array<f32>;
@group(0) @binding(6) var<storage, read_write> ret: array<f32>;
@group(0) @binding(7) var<storage, read_write> start: array<f32>;

var<workgroup> q: array<f32, 1520>;              // MAX_STATES · ACTIONS
var<workgroup> v: array<f32, MAX_STATES>;
var<workgroup> nxt: array<u32, 95>;               // FREE · ACTIONS: the cell each move reaches
var<workgroup> obj_cell: array<u32, MAX_OBJECTS>;
var<workgroup> obj_type: array<u32, MAX_OBJECTS>;
var<workgroup> obj_reward: array<f32, MAX_OBJECTS>;
var<workgroup> agent0: u32;
var<workgroup> total: f32;
var<workgroup> path: array<u32, MAX_HORIZON>;     // the state of row t
var<workgroup> live: array<u32, MAX_HORIZON>;     // mask of row t

// x, unchanged; hides a product from contraction into an FMA.
fn nc(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ p.zero);
}

fn is_wall(r: u32, c: u32) -> bool {
    return r == 0u || r == 6u || c == 0u || c == 6u || (c == 3u && r != 3u)
        || (r == 3u && (c == 1u || c == 5u));
}

// (row, col) of free cell i.
fn free_rc(i: u32) -> vec2<u32> {
    if (i >= 8u && i < 11u) { return vec2<u32>(3u, i - 6u); }
    let j = select(i, i - 3u, i >= 11u);  // rows 1, 2, 4, 5 hold free cells 4j' .. 4j' + 3
    let row = j / 4u;
    let k = j % 4u;
    return vec2<u32>(select(row + 1u, row + 2u, row >= 2u), select(k + 1u, k + 2u, k >= 2u));
}

// Free-cell index of the free cell (r, c).
fn free_index(r: u32, c: u32) -> u32 {
    if (r == 3u) { return c + 6u; }
    let k = select(c - 1u, c - 2u, c > 3u);
    if (r > 3u) { return 11u + (r - 4u) * 4u + k; }
    return (r - 1u) * 4u + k;
}

fn move_cell(i: u32, a: u32) -> u32 {
    let rc = free_rc(i);
    var r = rc.x;
    var c = rc.y;
    if (a == 1u) { r -= 1u; } else if (a == 2u) { c += 1u; }
    else if (a == 3u) { r += 1u; } else if (a == 4u) { c -= 1u; }
    if (is_wall(r, c)) { return i; }
    return free_index(r, c);
}

// The random bits of counter element e.
fn bits(e: u32) -> u32 {
    let w = philox(vec4<u32>(e / 4u, 0u, p.stream_lo, p.stream_hi), vec2<u32>(p.seed_lo, p.seed_hi));
    return w[e % 4u];
}

// State s moved by a: x = the next state, y = the picked object (MAX_OBJECTS if none).
fn transition(s: u32, a: u32) -> vec2<u32> {
    let full = (1u << p.objects) - 1u;
    let cell = s >> p.objects;
    var m = s & full;
    let c2 = nxt[cell * ACTIONS + a];
    var picked = MAX_OBJECTS;
    for (var i = 0u; i < p.objects; i++) {
        if (obj_cell[i] == c2 && ((m >> i) & 1u) == 1u) { picked = i; }
    }
    if (picked < MAX_OBJECTS) { m &= ~(1u << picked); }
    return vec2<u32>((c2 << p.objects) | m, picked);
}

fn reward_of(picked: u32) -> f32 {
    if (picked < MAX_OBJECTS) { return obj_reward[picked]; }
    return 0.0;
}

// The first action with the largest value of state s.
fn greedy(s: u32) -> u32 {
    var best = 0u;
    var value = q[s * ACTIONS];
    for (var a = 1u; a < ACTIONS; a++) {
        if (q[s * ACTIONS + a] > value) { value = q[s * ACTIONS + a]; best = a; }
    }
    return best;
}

@compute @workgroup_size(WG)
fn demonstrate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;  // workgroup-uniform: the return keeps barriers uniform
    if (g >= p.tasks * p.demos) { return; }
    let b = g / p.demos;
    let d = g - b * p.demos;
    let k = p.objects;
    let ns = FREE << k;
    let h = p.horizon;

    for (var i = lid; i < FREE * ACTIONS; i += WG) {
        nxt[i] = move_cell(i / ACTIONS, i % ACTIONS);
    }
    for (var s = lid; s < ns; s += WG) { v[s] = 0.0; }
    if (lid == 0u) {
        let base = g * DRAWS;
        for (var i = 0u; i < k; i++) {
            obj_type[i] = bits(base + TYPE_DRAW + i) % p.features;
        }
        var pool: array<u32, 19>;
        for (var i = 0u; i < FREE; i++) { pool[i] = i; }
        for (var i = 0u; i <= k; i++) {
            let j = i + bits(base + CELL_DRAW + i) % (FREE - i);
            let t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
        }
        for (var i = 0u; i < k; i++) { obj_cell[i] = pool[i]; }
        agent0 = pool[k];
        // r_f of each object's type: products summed in order m = 0..M−1 from 0.
        let zb = p.pref_off + b * p.pref_stride;
        let bb = p.basis_off + b * p.basis_stride;
        for (var i = 0u; i < k; i++) {
            var r = 0.0;
            for (var m = 0u; m < p.prefs; m++) {
                r = r + nc(prefs[zb + m] * basis[bb + m * p.features + obj_type[i]]);
            }
            obj_reward[i] = r;
        }
    }
    workgroupBarrier();

    for (var it = 0u; it < h; it++) {
        for (var s = lid; s < ns; s += WG) {
            for (var a = 0u; a < ACTIONS; a++) {
                let t = transition(s, a);
                q[s * ACTIONS + a] = nc(p.gamma * v[t.x]) + reward_of(t.y);
            }
        }
        workgroupBarrier();
        for (var s = lid; s < ns; s += WG) {
            v[s] = q[s * ACTIONS + greedy(s)];
        }
        workgroupBarrier();
    }

    if (lid == 0u) {
        var s = (agent0 << k) | ((1u << k) - 1u);
        var done = false;
        var sum = 0.0;
        for (var t = 0u; t < h; t++) {
            path[t] = s;
            live[t] = select(1u, 0u, done);
            if (!done) {
                let a = greedy(s);
                let next = transition(s, a);
                sum = sum + reward_of(next.y);
                s = next.x;
                done = a == 0u;
            }
        }
        total = sum;
    }
    workgroupBarrier();

    // The rows: observations, values, masks (rows d·H .. d·H + H − 1 of item b).
    let fc = p.features + 2u;
    let od = 49u * fc;
    let row0 = d * h;
    let ob = p.obs_off + b * p.obs_stride + row0 * od;
    for (var e = lid; e < h * od; e += WG) {
        let t = e / od;
        let rem = e - t * od;
        let pos = rem / fc;
        let ch = rem - pos * fc;
        let r = pos / 7u;
        let c = pos - r * 7u;
        var x = 0.0;
        if (is_wall(r, c)) {
            if (ch == p.features + 1u) { x = 1.0; }
        } else if (ch < fc - 1u) {
            let i = free_index(r, c);
            let s = path[t];
            if (ch == p.features) {
                if ((s >> k) == i) { x = 1.0; }
            } else {
                for (var o = 0u; o < k; o++) {
                    if (obj_cell[o] == i && obj_type[o] == ch && ((s >> o) & 1u) == 1u) { x = 1.0; }
                }
            }
        }
        obs[ob + e] = x;
    }
    let qb = p.q_off + b * p.q_stride + row0 * ACTIONS;
    for (var e = lid; e < h * ACTIONS; e += WG) {
        let t = e / ACTIONS;
        qout[qb + e] = q[path[t] * ACTIONS + (e - t * ACTIONS)];
    }
    let mb = p.mask_off + b * p.mask_stride + row0;
    for (var t = lid; t < h; t += WG) {
        mask[mb + t] = f32(live[t]);
    }
    if (lid == 0u) {
        ret[p.ret_off + b * p.ret_stride + d] = total;
        let sl = 2u * k + 1u;
        let sb = p.start_off + b * p.start_stride + d * sl;
        for (var i = 0u; i < k; i++) {
            start[sb + i] = f32(obj_type[i]);
            start[sb + k + i] = f32(obj_cell[i]);
        }
        start[sb + 2u * k] = f32(agent0);
    }
}
