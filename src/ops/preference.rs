//! Expert demonstrations of the compositional-preference gridworld of Schug et al. 2024
//! (`shaders/preference.wgsl`), generated on the device: start states drawn with Philox, the
//! expert's tabular value iteration in workgroup memory, its greedy rollout and the observation,
//! Q-target and mask rows of every demonstration.
//!
//! # The environment
//! The official code is `metax/data/envs/preference.py` (the environment and its `demonstrate`),
//! `metax/data/envs/base.py` (`step`: a finished episode no longer changes) and
//! `metax/data/imitation.py` (what one demonstration holds: the observations, the expert's action
//! values and `mask = ~done`). What this family reproduces:
//!
//! - the fixed 7×7 [`LAYOUT`] with its [`FREE_CELLS`] free cells, numbered in row-major order
//!   (numpy's `np.where(grid == 0)`);
//! - `objects` objects (≤ [`MAX_OBJECTS`]) on distinct free cells and the agent on another one;
//!   each object has a feature type in `0..features` (≤ [`MAX_FEATURES`]), drawn uniformly with
//!   replacement;
//! - [`ACTIONS`] actions: [`NOTHING`], [`UP`] (row − 1), [`RIGHT`] (column + 1), [`DOWN`],
//!   [`LEFT`]. A move into a wall leaves the agent where it is. After the move, an object that is
//!   still available on the agent's cell is picked up, for the reward
//!   `r_f = Σ_m z_m·B[m, f]` of its type `f` (`z` the task's preference vector of length
//!   `M = preferences`, `B` the `M × features` basis); otherwise the reward is 0. The pick-up
//!   check runs after every action, [`NOTHING`] included (`_move`).
//! - the expert: `horizon` Bellman backups `Q_k(s, a) = γ·max_a' Q_{k−1}(s', a') + r(s, a)` from
//!   `Q_0 = 0` over the `19·2^objects` states (cell, availability mask), [`NOTHING`] being a plain
//!   stay inside the backups; then `horizon` greedy steps `a_t = argmax_a Q_H(s_t, a)` (ties to
//!   the lowest action). Row `t` of a demonstration is `(observation of s_t, Q_H(s_t, ·), mask_t)`
//!   with `mask_0 = 1` and `mask_t = 0` once [`NOTHING`] was taken at a step before `t` (the
//!   episode is over; the rows are still written and repeat the final state).
//! - the observation: `7 × 7 × (features + 2)` floats, index `(r·7 + c)·(F + 2) + ch`: channel
//!   `f < F` is 1 on an available object of type `f`, channel `F` on the agent, channel `F + 1`
//!   on every wall.
//!
//! Differences from the official code: the types are drawn uniformly from `0..features` (the
//! official code draws from a fixed random permutation of the features, the same distribution),
//! and the draws themselves use the engine's Philox, not JAX's generator.
//!
//! # Random draws
//! One [`RngKey`] `(seed, stream)` keys the launch (shared keying, [`crate::ops::rng`]);
//! demonstration `g = b·demos + d` (task `b`, demonstration `d`) owns the counter elements
//! `g·32 .. g·32 + 32` ([`DRAWS_PER_DEMO`]): element `g·32 + i` gives object `i`'s type
//! (`bits % features`, `i < objects`), element `g·32 + 8 + i` the `i`-th cell draw
//! (`i = 0..=objects`). The cells are a partial Fisher–Yates shuffle of the free cells
//! `[0, 1, …, 18]`: draw `i` swaps entry `i` with entry `i + bits % (19 − i)` and takes entry
//! `i`; draws `0..objects` place the objects, draw `objects` the agent. The other elements are
//! unused. [`RngDispatch::set_stream`] changes the stream of the next launches (one per outer
//! step).
//!
//! # Numerics
//! The native kernel and the CPU twin [`demonstrate_cpu`] reproduce the shader bit for bit. Every
//! float operation is a correctly rounded f32 `×` or `+` (exact in WGSL and Vulkan as in Rust):
//! the rewards are `acc ← acc + z_m·B[m, f]` over `m = 0..M` from 0, each backup is
//! `γ·V_{k−1}(s') + r(s, a)`, maxima and argmaxima scan the actions in order with a strict `>`,
//! the return adds the rewards in step order. The shader keeps every product unfused (`nc`, an
//! XOR with the opaque uniform zero, as `shaders/normal.wgsl` does), so no compiler contracts it
//! into an FMA. A WGSL `fma` would not do: the language gives it only the accuracy of `x·y + z`,
//! and lavapipe indeed rounds it twice, where a GPU with an FMA unit may round once.

use rayon::prelude::*;

use crate::gpu::error::{arg_err, shape_err, Result};
use crate::gpu::{grid_1d, Access, Cost, Device, KernelSpec, Shader, Tensor};
use crate::ops::rng::{random_bits, RngDispatch, RngKey};
use crate::ops::{check_output, place, to_u32, Real};

mod native;

/// `shaders/preference.wgsl` after the shared Philox.
pub static SHADER: Shader = Shader {
    name: "preference",
    source: concat!(
        include_str!("../../shaders/philox.wgsl"),
        include_str!("../../shaders/preference.wgsl")
    ),
    native: native::run,
    params: <Params as crate::gpu::Uniform>::LAYOUT,
};

/// Invocations per workgroup (one workgroup per demonstration).
const WG: u32 = 64;

/// Side of the square grid.
pub const SIDE: usize = 7;
/// Free cells of [`LAYOUT`].
pub const FREE_CELLS: usize = 19;
/// Actions: [`NOTHING`], [`UP`], [`RIGHT`], [`DOWN`], [`LEFT`].
pub const ACTIONS: usize = 5;
/// Stay (and end the episode in a rollout).
pub const NOTHING: usize = 0;
/// Row − 1.
pub const UP: usize = 1;
/// Column + 1.
pub const RIGHT: usize = 2;
/// Row + 1.
pub const DOWN: usize = 3;
/// Column − 1.
pub const LEFT: usize = 4;
/// Most objects per world (the paper uses 4): `19·2⁴ = 304` states fit workgroup memory.
pub const MAX_OBJECTS: usize = 4;
/// Most feature types (the paper uses 8).
pub const MAX_FEATURES: usize = 8;
/// Longest preference vector `M`.
pub const MAX_PREFERENCES: usize = 16;
/// Longest horizon (the paper uses 8).
pub const MAX_HORIZON: usize = 64;
/// Philox counter elements owned by each demonstration.
pub const DRAWS_PER_DEMO: usize = 32;
/// Element (within a demonstration's range) of object 0's type draw.
pub const TYPE_DRAW: usize = 0;
/// Element (within a demonstration's range) of the first cell draw.
pub const CELL_DRAW: usize = 8;

/// The grid (`w` = wall), as in `metax/data/envs/preference.py`.
pub const LAYOUT: [&str; SIDE] = [
    "wwwwwww", "w  w  w", "w  w  w", "ww   ww", "w  w  w", "w  w  w", "wwwwwww",
];

/// Row `r`, column `c` of [`LAYOUT`] is a wall.
const fn wall_at(r: usize, c: usize) -> bool {
    LAYOUT[r].as_bytes()[c] == b'w'
}

/// Flat position `r·7 + c` of each free cell, in row-major order.
pub const FREE_POS: [usize; FREE_CELLS] = free_positions();

const fn free_positions() -> [usize; FREE_CELLS] {
    let mut out = [0; FREE_CELLS];
    let (mut pos, mut n) = (0, 0);
    while pos < SIDE * SIDE {
        if !wall_at(pos / SIDE, pos % SIDE) {
            out[n] = pos;
            n += 1;
        }
        pos += 1;
    }
    assert!(n == FREE_CELLS, "the layout has 19 free cells");
    out
}

/// Row and column change of each action.
const DELTA: [(isize, isize); ACTIONS] = [(0, 0), (-1, 0), (0, 1), (1, 0), (0, -1)];

/// The free cell reached from each free cell by each action (walls block).
const NEXT: [[usize; ACTIONS]; FREE_CELLS] = next_table();

const fn next_table() -> [[usize; ACTIONS]; FREE_CELLS] {
    let mut out = [[0; ACTIONS]; FREE_CELLS];
    let mut i = 0;
    while i < FREE_CELLS {
        let (r, c) = (FREE_POS[i] / SIDE, FREE_POS[i] % SIDE);
        let mut a = 0;
        while a < ACTIONS {
            let r2 = (r as isize + DELTA[a].0) as usize;
            let c2 = (c as isize + DELTA[a].1) as usize;
            out[i][a] = if wall_at(r2, c2) {
                i
            } else {
                let mut j = 0;
                while FREE_POS[j] != r2 * SIDE + c2 {
                    j += 1;
                }
                j
            };
            a += 1;
        }
        i += 1;
    }
    out
}

/// The flat position `r·7 + c` is a wall.
pub fn is_wall(pos: usize) -> bool {
    wall_at(pos / SIDE, pos % SIDE)
}

/// The free cell the agent on free cell `cell` reaches with `action` (itself when a wall is in
/// the way, or for [`NOTHING`]).
pub fn next_cell(cell: usize, action: usize) -> usize {
    NEXT[cell][action]
}

crate::uniform! {
    #[derive(Debug)]
    pub(crate) struct Params {
        pub(crate) tasks: u32,
        pub(crate) demos: u32,
        pub(crate) objects: u32,
        pub(crate) features: u32,
        pub(crate) prefs: u32,
        pub(crate) horizon: u32,
        pub(crate) gamma: f32,
        pub(crate) seed_lo: u32,
        pub(crate) seed_hi: u32,
        pub(crate) stream_lo: u32,
        pub(crate) stream_hi: u32,
        pub(crate) pref_off: u32,
        pub(crate) pref_stride: u32,
        pub(crate) basis_off: u32,
        pub(crate) basis_stride: u32,
        pub(crate) obs_off: u32,
        pub(crate) obs_stride: u32,
        pub(crate) q_off: u32,
        pub(crate) q_stride: u32,
        pub(crate) mask_off: u32,
        pub(crate) mask_stride: u32,
        pub(crate) ret_off: u32,
        pub(crate) ret_stride: u32,
        pub(crate) start_off: u32,
        pub(crate) start_stride: u32,
        pub(crate) zero: u32,
        pub(crate) _pad: [u32; 2],
    }
}

/// Sizes of one world and its demonstrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorldShape {
    /// Objects per world (1 ..= [`MAX_OBJECTS`]; paper: 4).
    pub objects: usize,
    /// Feature types (1 ..= [`MAX_FEATURES`]; paper: 8).
    pub features: usize,
    /// Length M of the preference vector (1 ..= [`MAX_PREFERENCES`]).
    pub preferences: usize,
    /// Bellman backups and rollout steps (1 ..= [`MAX_HORIZON`]; paper: 8).
    pub horizon: usize,
}

impl WorldShape {
    /// Floats of one observation: `7·7·(features + 2)` (490 in the paper).
    pub fn obs_dim(self) -> usize {
        SIDE * SIDE * (self.features + 2)
    }

    /// States of the value iteration: `19·2^objects`.
    pub fn states(self) -> usize {
        FREE_CELLS << self.objects
    }

    /// Floats of one start state: the objects' types, their free cells, the agent's free cell.
    pub fn start_len(self) -> usize {
        2 * self.objects + 1
    }

    /// Checks every size against the kernel's limits.
    pub fn validate(self, op: &'static str) -> Result<()> {
        let bad = |what: &str, v: usize, hi: usize| {
            arg_err(op, format!("{what} = {v} must be in 1..={hi} ({self:?})"))
        };
        if !(1..=MAX_OBJECTS).contains(&self.objects) {
            return Err(bad("objects", self.objects, MAX_OBJECTS));
        }
        if !(1..=MAX_FEATURES).contains(&self.features) {
            return Err(bad("features", self.features, MAX_FEATURES));
        }
        if !(1..=MAX_PREFERENCES).contains(&self.preferences) {
            return Err(bad("preferences", self.preferences, MAX_PREFERENCES));
        }
        if !(1..=MAX_HORIZON).contains(&self.horizon) {
            return Err(bad("horizon", self.horizon, MAX_HORIZON));
        }
        Ok(())
    }
}

/// The five outputs of [`demonstrate`] for `tasks` tasks of `demos` demonstrations each (any
/// offset and batch stride, not broadcast).
#[derive(Clone, Copy, Debug)]
pub struct DemoOutputs<'a> {
    /// Observations `[tasks × demos·H × obs_dim]` (demonstration `d`'s rows `d·H .. (d+1)·H`).
    pub obs: &'a Tensor,
    /// The expert's action values `Q_H(s_t, ·)`, `[tasks × demos·H × 5]`.
    pub q: &'a Tensor,
    /// 1 while the episode runs, 0 after [`NOTHING`]: `[tasks × demos·H × 1]`.
    pub mask: &'a Tensor,
    /// The expert's undiscounted return over its rollout, `[tasks × demos × 1]`.
    pub returns: &'a Tensor,
    /// Start states ([`WorldState::start`]), `[tasks × demos × start_len]`.
    pub starts: &'a Tensor,
}

/// Host image of the outputs, as [`demonstrate_cpu`] computes them (packed, task-major).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemoData {
    /// `[tasks × demos·H × obs_dim]`.
    pub obs: Vec<f32>,
    /// `[tasks × demos·H × 5]`.
    pub q: Vec<f32>,
    /// `[tasks × demos·H]`.
    pub mask: Vec<f32>,
    /// `[tasks × demos]`.
    pub returns: Vec<f32>,
    /// `[tasks × demos × start_len]`.
    pub starts: Vec<f32>,
    /// The greedy action of every row, `[tasks × demos·H]` (rows after [`NOTHING`] included:
    /// the argmax of the repeated state's values, which no longer acts).
    pub actions: Vec<usize>,
}

/// One world's state: the objects (types and free cells), the agent's free cell, which objects
/// are still available (bit `i` = object `i`) and whether the episode is over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorldState {
    /// Feature type of each object (the first `objects` entries are used).
    pub types: [usize; MAX_OBJECTS],
    /// Free-cell index of each object.
    pub cells: [usize; MAX_OBJECTS],
    /// The agent's free-cell index.
    pub agent: usize,
    /// Availability mask: bit `i` set while object `i` lies on the grid.
    pub available: u32,
    /// The episode ended ([`NOTHING`] was taken): the state no longer changes.
    pub done: bool,
}

impl WorldState {
    /// The start state written to [`DemoOutputs::starts`]: every object available, not done.
    pub fn from_start(shape: WorldShape, start: &[f32]) -> WorldState {
        let k = shape.objects;
        let mut s = WorldState {
            agent: start[2 * k] as usize,
            available: (1 << k) - 1,
            ..WorldState::default()
        };
        for i in 0..k {
            s.types[i] = start[i] as usize;
            s.cells[i] = start[k + i] as usize;
        }
        s
    }

    /// `[types.., cells.., agent]` as f32 (the layout of [`DemoOutputs::starts`]).
    pub fn start(&self, shape: WorldShape) -> Vec<f32> {
        let k = shape.objects;
        let mut out: Vec<f32> = self.types[..k].iter().map(|&t| t as f32).collect();
        out.extend(self.cells[..k].iter().map(|&c| c as f32));
        out.push(self.agent as f32);
        out
    }

    /// Index of (agent cell, availability mask) among the value iteration's states:
    /// `agent·2^objects + available` (`_state_to_idx`).
    pub fn index(&self, shape: WorldShape) -> usize {
        (self.agent << shape.objects) | self.available as usize
    }
}

/// The start state of demonstration `g` (= `b·demos + d`) under `key` (the module's draw layout).
pub fn draw_start(shape: WorldShape, key: RngKey, g: usize) -> WorldState {
    let base = (g * DRAWS_PER_DEMO) as u32;
    let k = shape.objects;
    let mut s = WorldState {
        available: (1 << k) - 1,
        ..WorldState::default()
    };
    for i in 0..k {
        let bits = random_bits(key, base + (TYPE_DRAW + i) as u32);
        s.types[i] = (bits % shape.features as u32) as usize;
    }
    let mut pool: [usize; FREE_CELLS] = std::array::from_fn(|i| i);
    for i in 0..=k {
        let bits = random_bits(key, base + (CELL_DRAW + i) as u32);
        let j = i + (bits % (FREE_CELLS - i) as u32) as usize;
        pool.swap(i, j);
    }
    s.cells[..k].copy_from_slice(&pool[..k]);
    s.agent = pool[k];
    s
}

/// `r_f = Σ_m z_m·B[m, f]` for every type `f`, summed in order `m = 0..M` from 0, each product
/// rounded before its sum (`prefs`: the M values of z, `basis`: `M × F` row-major).
pub fn rewards_per_type<T: Real>(shape: WorldShape, prefs: &[T], basis: &[T]) -> Vec<T> {
    let (m, f) = (shape.preferences, shape.features);
    (0..f)
        .map(|t| (0..m).fold(T::zero(), |acc, k| acc + prefs[k] * basis[k * f + t]))
        .collect()
}

/// The move of `_move` from (cell, mask) with `action`: the next cell, the next mask and the
/// object picked up, if any.
fn transition(
    shape: WorldShape,
    cells: &[usize; MAX_OBJECTS],
    cell: usize,
    mask: u32,
    action: usize,
) -> (usize, u32, Option<usize>) {
    let next = NEXT[cell][action];
    match (0..shape.objects).find(|&i| cells[i] == next && mask >> i & 1 == 1) {
        Some(i) => (next, mask & !(1 << i), Some(i)),
        None => (next, mask, None),
    }
}

/// One environment step (`step` of `metax/data/envs/base.py`): a finished episode stays as it is
/// and earns 0; otherwise the agent moves, picks up an available object on its new cell (the
/// reward of its type) and the episode ends if `action` is [`NOTHING`]. Returns the reward.
pub fn step_cpu<T: Real>(
    shape: WorldShape,
    state: &mut WorldState,
    action: usize,
    rewards_per_type: &[T],
) -> T {
    if state.done {
        return T::zero();
    }
    let (cell, mask, picked) =
        transition(shape, &state.cells, state.agent, state.available, action);
    state.agent = cell;
    state.available = mask;
    state.done = action == NOTHING;
    picked.map_or(T::zero(), |i| rewards_per_type[state.types[i]])
}

/// Writes the observation of `state` (`obs_dim` floats, index `(r·7 + c)·(F + 2) + ch`) into
/// `out`.
pub fn observe_cpu(shape: WorldShape, state: &WorldState, out: &mut [f32]) {
    let ch = shape.features + 2;
    let out = &mut out[..shape.obs_dim()];
    out.fill(0.0);
    for pos in 0..SIDE * SIDE {
        if is_wall(pos) {
            out[pos * ch + shape.features + 1] = 1.0;
        }
    }
    out[FREE_POS[state.agent] * ch + shape.features] = 1.0;
    for i in 0..shape.objects {
        if state.available >> i & 1 == 1 {
            out[FREE_POS[state.cells[i]] * ch + state.types[i]] = 1.0;
        }
    }
}

/// The first action with the largest value (a strict `>` scan from action 0).
pub fn argmax_action<T: Real>(q: &[T]) -> usize {
    (1..ACTIONS).fold(0, |best, a| if q[a] > q[best] { a } else { best })
}

/// `Q_H` (`states × 5`, state index as [`WorldState::index`]) of the world with `start`'s objects
/// (their types, cells; its agent and mask are not used): `horizon` backups
/// `Q_k(s, a) = γ·V_{k−1}(s') + r(s, a)` (product rounded, then the sum) from `V_0 = 0`,
/// `V_k(s) = max_a Q_k(s, a)`.
pub fn value_iteration_cpu<T: Real>(
    shape: WorldShape,
    gamma: T,
    start: &WorldState,
    rewards_per_type: &[T],
) -> Vec<T> {
    let n = shape.states();
    let full = (1u32 << shape.objects) - 1;
    let mut q = vec![T::zero(); n * ACTIONS];
    let mut v = vec![T::zero(); n];
    for _ in 0..shape.horizon {
        for s in 0..n {
            let (cell, mask) = (s >> shape.objects, s as u32 & full);
            for a in 0..ACTIONS {
                let (c2, m2, picked) = transition(shape, &start.cells, cell, mask, a);
                let r = picked.map_or(T::zero(), |i| rewards_per_type[start.types[i]]);
                q[s * ACTIONS + a] = gamma * v[(c2 << shape.objects) | m2 as usize] + r;
            }
        }
        for (s, vs) in v.iter_mut().enumerate() {
            let row = &q[s * ACTIONS..(s + 1) * ACTIONS];
            *vs = row[argmax_action(row)];
        }
    }
    q
}

/// One demonstration's outputs, as slices of the output tensors.
pub(crate) struct DemoRows<'a> {
    /// `H × obs_dim`.
    pub(crate) obs: &'a mut [f32],
    /// `H × 5`.
    pub(crate) q: &'a mut [f32],
    /// `H`.
    pub(crate) mask: &'a mut [f32],
    /// 1.
    pub(crate) ret: &'a mut [f32],
    /// `start_len`.
    pub(crate) start: &'a mut [f32],
    /// `H` greedy actions (the twin's extra output).
    pub(crate) actions: Option<&'a mut [usize]>,
}

/// Demonstration `g` of the task with preferences `prefs` (M) and `basis` (`M × F`): what one
/// workgroup of the shader computes, in the same operations.
pub(crate) fn one_demo(
    shape: WorldShape,
    gamma: f32,
    prefs: &[f32],
    basis: &[f32],
    key: RngKey,
    g: usize,
    out: DemoRows<'_>,
) {
    let rewards = rewards_per_type(shape, prefs, basis);
    let mut state = draw_start(shape, key, g);
    out.start.copy_from_slice(&state.start(shape));
    let q = value_iteration_cpu(shape, gamma, &state, &rewards);
    let od = shape.obs_dim();
    let mut total = 0.0f32;
    let mut actions = out.actions;
    for t in 0..shape.horizon {
        let s = state.index(shape);
        let row = &q[s * ACTIONS..(s + 1) * ACTIONS];
        out.q[t * ACTIONS..(t + 1) * ACTIONS].copy_from_slice(row);
        out.mask[t] = if state.done { 0.0 } else { 1.0 };
        observe_cpu(shape, &state, &mut out.obs[t * od..(t + 1) * od]);
        let a = argmax_action(row);
        if let Some(acts) = actions.as_deref_mut() {
            acts[t] = a;
        }
        if !state.done {
            total += step_cpu(shape, &mut state, a, &rewards);
        }
    }
    out.ret[0] = total;
}

/// Prepares `demos` expert demonstrations for each of `tasks` tasks (`tasks = prefs.batch()`;
/// `demos` from the outputs' rows): `prefs [tasks × 1 × M]` (stride 0 shares one),
/// `basis [1 × M × F]` shared by every task (or `[tasks × M × F]`, per task or broadcast), the
/// outputs in `out`, the draws keyed by `key` (see the module docs; change the stream of later
/// launches with [`RngDispatch::set_stream`]).
pub fn demonstrate(
    gpu: &Device,
    shape: WorldShape,
    gamma: f32,
    prefs: &Tensor,
    basis: &Tensor,
    out: &DemoOutputs<'_>,
    key: RngKey,
) -> Result<RngDispatch> {
    const OP: &str = "preference demonstrate";
    shape.validate(OP)?;
    if !gamma.is_finite() || !(0.0..=1.0).contains(&gamma) {
        return Err(arg_err(
            OP,
            format!("discount γ = {gamma} must be in [0, 1]"),
        ));
    }
    let (m, f, h) = (shape.preferences, shape.features, shape.horizon);
    let tasks = prefs.batch();
    if (prefs.rows(), prefs.cols()) != (1, m) {
        return Err(shape_err(
            OP,
            format!(
                "prefs must be [tasks × 1 × {m}] for {shape:?}, got {}",
                prefs.shape_str()
            ),
        ));
    }
    if !(basis.batch() == 1 || basis.batch() == tasks) || (basis.rows(), basis.cols()) != (m, f) {
        return Err(shape_err(
            OP,
            format!(
                "basis must be [1 × {m} × {f}] (or one per task, [{tasks} × {m} × {f}]), got {}",
                basis.shape_str()
            ),
        ));
    }
    let demos = out.returns.rows();
    let want = [
        ("obs", out.obs, demos * h, shape.obs_dim()),
        ("q", out.q, demos * h, ACTIONS),
        ("mask", out.mask, demos * h, 1),
        ("returns", out.returns, demos, 1),
        ("starts", out.starts, demos, shape.start_len()),
    ];
    if tasks == 0
        || demos == 0
        || want
            .iter()
            .any(|(_, t, r, c)| (t.batch(), t.rows(), t.cols()) != (tasks, *r, *c))
    {
        let got: Vec<String> = want
            .iter()
            .map(|(n, t, _, _)| format!("{n} {}", t.shape_str()))
            .collect();
        return Err(shape_err(
            OP,
            format!(
                "T ≥ 1 tasks (T = batch of prefs, here {tasks}) of D ≥ 1 demonstrations (D = rows of returns) need obs \
                 [{tasks} × D·{h} × {}], q [{tasks} × D·{h} × 5], mask [{tasks} × D·{h} × 1], \
                 returns [{tasks} × D × 1], starts [{tasks} × D × {}]; got {}",
                shape.obs_dim(),
                shape.start_len(),
                got.join(", ")
            ),
        ));
    }
    for (name, t, _, _) in &want {
        check_output(OP, name, t)?;
    }
    // Every index the kernel forms must fit u32: the counter elements and each operand's end.
    let all = tasks as u64 * demos as u64;
    if all * DRAWS_PER_DEMO as u64 > u32::MAX as u64 {
        return Err(shape_err(
            OP,
            format!("{tasks}·{demos} demonstrations exceed the 2³² random elements of one key"),
        ));
    }
    let basis_stride = if basis.batch() == 1 {
        0
    } else {
        basis.batch_stride()
    };
    for (name, t, stride) in [
        ("prefs", prefs, prefs.batch_stride()),
        ("basis", basis, basis_stride),
    ]
    .into_iter()
    .chain(want.iter().map(|(n, t, _, _)| (*n, *t, t.batch_stride())))
    {
        let end = t.offset() + (t.batch() - 1) * stride + t.item_len();
        to_u32(OP, &format!("{name}'s last element"), end)?;
    }
    let (pref_off, pref_stride) = place(OP, "prefs", prefs)?;
    let (obs_off, obs_stride) = place(OP, "obs", out.obs)?;
    let (q_off, q_stride) = place(OP, "q", out.q)?;
    let (mask_off, mask_stride) = place(OP, "mask", out.mask)?;
    let (ret_off, ret_stride) = place(OP, "returns", out.returns)?;
    let (start_off, start_stride) = place(OP, "starts", out.starts)?;
    let params = Params {
        tasks: to_u32(OP, "tasks", tasks)?,
        demos: to_u32(OP, "demos", demos)?,
        objects: shape.objects as u32,
        features: f as u32,
        prefs: m as u32,
        horizon: h as u32,
        gamma,
        seed_lo: key.seed as u32,
        seed_hi: (key.seed >> 32) as u32,
        stream_lo: key.stream as u32,
        stream_hi: (key.stream >> 32) as u32,
        pref_off,
        pref_stride,
        basis_off: to_u32(OP, "basis offset", basis.offset())?,
        basis_stride: to_u32(OP, "basis stride", basis_stride)?,
        obs_off,
        obs_stride,
        q_off,
        q_stride,
        mask_off,
        mask_stride,
        ret_off,
        ret_stride,
        start_off,
        start_stride,
        zero: 0,
        _pad: [0; 2],
    };
    let constants = [("WG", WG as f64)];
    let kernel = KernelSpec {
        shader: &SHADER,
        entry: "demonstrate",
        constants: &constants,
        access: &[
            Access::Read,
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
        ],
    };
    // Per demonstration: H backups of one multiply-add per (state, action) and a 4-compare max
    // per state, the rewards' dot products, and the rows written.
    let n = all as f64;
    let states = shape.states() as f64;
    let per_demo = h as f64 * states * (2.0 * ACTIONS as f64 + 4.0) + 2.0 * (m * f) as f64;
    let written = (h * (shape.obs_dim() + ACTIONS + 1) + 1 + shape.start_len()) as f64;
    let cost = Cost {
        flops: n * per_demo,
        bytes: 4.0 * (n * written + (tasks * m) as f64 + basis.len() as f64),
    };
    let dispatch = gpu.dispatch(
        &kernel,
        &params,
        &[
            prefs,
            basis,
            out.obs,
            out.q,
            out.mask,
            out.returns,
            out.starts,
        ],
        grid_1d(tasks * demos),
        cost,
    )?;
    Ok(RngDispatch::new(
        dispatch,
        &params,
        std::mem::offset_of!(Params, stream_lo),
    ))
}

/// CPU twin of [`demonstrate`], bit-identical to it: `prefs` holds `tasks × M` values, `basis`
/// `M × F` (shared) or `tasks × M × F`. The outputs are packed as [`DemoData`] describes.
///
/// # Panics
/// On a shape [`WorldShape::validate`] rejects or slices of the wrong length (a test helper).
pub fn demonstrate_cpu(
    shape: WorldShape,
    gamma: f32,
    tasks: usize,
    demos: usize,
    prefs: &[f32],
    basis: &[f32],
    key: RngKey,
) -> DemoData {
    shape
        .validate("demonstrate_cpu")
        .expect("a valid world shape");
    let (m, mf, h) = (
        shape.preferences,
        shape.preferences * shape.features,
        shape.horizon,
    );
    assert_eq!(prefs.len(), tasks * m, "prefs: tasks × M values");
    let basis_stride = match basis.len() {
        l if l == mf => 0,
        l if l == tasks * mf => mf,
        l => panic!("basis: {mf} or {} values, got {l}", tasks * mf),
    };
    let (od, sl) = (shape.obs_dim(), shape.start_len());
    let n = tasks * demos;
    let mut d = DemoData {
        obs: vec![0.0; n * h * od],
        q: vec![0.0; n * h * ACTIONS],
        mask: vec![0.0; n * h],
        returns: vec![0.0; n],
        starts: vec![0.0; n * sl],
        actions: vec![0; n * h],
    };
    d.obs
        .par_chunks_mut(h * od)
        .zip(d.q.par_chunks_mut(h * ACTIONS))
        .zip(d.mask.par_chunks_mut(h))
        .zip(d.returns.par_chunks_mut(1))
        .zip(d.starts.par_chunks_mut(sl))
        .zip(d.actions.par_chunks_mut(h))
        .enumerate()
        .for_each(|(g, (((((obs, q), mask), ret), start), actions))| {
            let b = g / demos;
            let rows = DemoRows {
                obs,
                q,
                mask,
                ret,
                start,
                actions: Some(actions),
            };
            let z = &prefs[b * m..(b + 1) * m];
            let basis = &basis[b * basis_stride..b * basis_stride + mf];
            one_demo(shape, gamma, z, basis, key, g, rows);
        });
    d
}
