//! Native `shaders/preference.wgsl`: `demonstrate`, one task per demonstration (what one
//! workgroup of the shader does), all demonstrations in parallel. Each runs the twin's own
//! [`one_demo`] (the same Philox draws, sums, backups and argmax scans as the shader), so
//! the native backend, the twin and the shader agree bit for bit.

use rayon::prelude::*;

use super::{one_demo, DemoRows, Params, WorldShape, ACTIONS};
use crate::gpu::error::Result;
use crate::native::{items, items_mut, Launch};
use crate::ops::rng::RngKey;

/// Runs one launch of `preference::demonstrate`.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    if l.entry != "demonstrate" {
        return Err(l.unknown_entry());
    }
    let p: Params = l.params()?;
    let shape = WorldShape {
        objects: p.objects as usize,
        features: p.features as usize,
        preferences: p.prefs as usize,
        horizon: p.horizon as usize,
    };
    shape
        .validate("native preference")
        .map_err(|e| l.err(e.to_string()))?;
    let (tasks, demos, h) = (p.tasks as usize, p.demos as usize, shape.horizon);
    if tasks == 0 || demos == 0 {
        return Ok(());
    }
    let (m, mf) = (shape.preferences, shape.preferences * shape.features);
    let (od, sl) = (shape.obs_dim(), shape.start_len());
    let key = RngKey::new(
        u64::from(p.seed_hi) << 32 | u64::from(p.seed_lo),
        u64::from(p.stream_hi) << 32 | u64::from(p.stream_lo),
    );
    let prefs = items(
        l.read(1)?,
        p.pref_off as usize,
        p.pref_stride as usize,
        m,
        tasks,
    )?;
    let basis = items(
        l.read(2)?,
        p.basis_off as usize,
        p.basis_stride as usize,
        mf,
        tasks,
    )?;
    // Each output's items, cut into one slice per demonstration (task-major, as g = b·demos + d).
    let mut per_demo = |binding: usize, off: u32, stride: u32, len: usize| -> Result<Vec<_>> {
        let buf = l.write(binding)?;
        let its = items_mut(buf, off as usize, stride as usize, demos * len, tasks)?;
        Ok(its
            .into_iter()
            .flat_map(|it| it.chunks_mut(len))
            .collect::<Vec<&mut [f32]>>())
    };
    let obs = per_demo(3, p.obs_off, p.obs_stride, h * od)?;
    let q = per_demo(4, p.q_off, p.q_stride, h * ACTIONS)?;
    let mask = per_demo(5, p.mask_off, p.mask_stride, h)?;
    let ret = per_demo(6, p.ret_off, p.ret_stride, 1)?;
    let start = per_demo(7, p.start_off, p.start_stride, sl)?;
    obs.into_par_iter()
        .zip(q)
        .zip(mask)
        .zip(ret)
        .zip(start)
        .enumerate()
        .for_each(|(g, ((((obs, q), mask), ret), start))| {
            let b = g / demos;
            let rows = DemoRows {
                obs,
                q,
                mask,
                ret,
                start,
                actions: None,
            };
            one_demo(shape, p.gamma, prefs[b], basis[b], key, g, rows);
        });
    Ok(())
}
