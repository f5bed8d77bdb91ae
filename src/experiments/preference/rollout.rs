//! The behavioural metric a gridworld user expects (the official code has none): after the
//! student adapts to a task on its support demonstrations, its greedy policy (argmax of its
//! predicted Q values) acts in the world from the start state of each of the task's query
//! demonstrations, and its undiscounted return is compared with the expert's on the same
//! episodes. The world steps on the host (the twin's `step_cpu`); the student's forward runs on
//! the device at the adapted parameters, one submit per step for the whole chunk.

use crate::error::Result;
use crate::ops::preference::{
    argmax_action, demonstrate_cpu, observe_cpu, rewards_per_type, step_cpu, WorldShape,
    WorldState, ACTIONS,
};
use crate::ops::rng::RngKey;
use crate::train::meta::Probe;

/// What the rollouts of one evaluation set add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Returns {
    /// Σ of the student's returns.
    pub policy: f64,
    /// Σ of the expert's returns on the same episodes.
    pub expert: f64,
    /// Episodes rolled out.
    pub episodes: usize,
}

/// The probe that rolls the adapted student's policy out, chunk by chunk of an evaluation.
pub struct Rollouts<'a> {
    /// The world.
    pub shape: WorldShape,
    /// The expert's discount.
    pub gamma: f32,
    /// The reward basis, `M × F`.
    pub basis: &'a [f32],
    /// The evaluated tasks' preference vectors, `tasks × M`.
    pub latents: &'a [f32],
    /// Support and query demonstrations per task.
    pub support: usize,
    /// Query demonstrations per task: the episodes rolled out.
    pub query: usize,
    /// Tasks per evaluation chunk.
    pub chunk_tasks: usize,
    /// The key of a chunk's demonstrations, by its data stream.
    pub key: &'a dyn Fn(u64) -> RngKey,
    /// The sums so far.
    pub returns: Returns,
}

impl Probe for Rollouts<'_> {
    fn chunk(
        &mut self,
        first: usize,
        used: usize,
        stream: u64,
        act: &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
    ) -> Result<()> {
        let (shape, b, m) = (self.shape, self.chunk_tasks, self.shape.preferences);
        // The chunk's preference vectors as the evaluation padded them: its tasks, then its
        // first task repeated.
        let mut prefs = self.latents[first * m..(first + used) * m].to_vec();
        while prefs.len() < b * m {
            prefs.extend_from_within(..m);
        }
        let demos = self.support + self.query;
        // The expert's demonstrations of this chunk, as the device drew them (the twin is exact).
        let expert = demonstrate_cpu(
            shape,
            self.gamma,
            b,
            demos,
            &prefs,
            self.basis,
            (self.key)(stream),
        );
        let start_len = shape.start_len();
        let demo = |t: usize, q: usize| t * demos + self.support + q;
        let mut states: Vec<WorldState> = (0..b * self.query)
            .map(|i| {
                let at = demo(i / self.query, i % self.query) * start_len;
                WorldState::from_start(shape, &expert.starts[at..at + start_len])
            })
            .collect();
        let rewards: Vec<Vec<f32>> = prefs
            .chunks(m)
            .map(|p| rewards_per_type(shape, p, self.basis))
            .collect();
        let obs_dim = shape.obs_dim();
        let mut obs = vec![0.0f32; b * self.query * obs_dim];
        let mut got = vec![0.0f64; b * self.query];
        for _ in 0..shape.horizon {
            for (s, o) in states.iter().zip(obs.chunks_mut(obs_dim)) {
                observe_cpu(shape, s, o);
            }
            let q = act(&obs)?;
            for (i, s) in states.iter_mut().enumerate() {
                let a = argmax_action(&q[i * ACTIONS..(i + 1) * ACTIONS]);
                got[i] += step_cpu(shape, s, a, &rewards[i / self.query]) as f64;
            }
        }
        for t in 0..used {
            for q in 0..self.query {
                self.returns.policy += got[t * self.query + q];
                self.returns.expert += expert.returns[demo(t, q)] as f64;
            }
        }
        self.returns.episodes += used * self.query;
        Ok(())
    }
}
