//! Native `shaders/sine.wgsl`: `sample`, one row (sample) of one run per task. The row's index,
//! its normals and the folds are the shader's integer and f32 operations in the shader's order
//! (the normals through the twin's own [`random_bits`] and [`normal_icdf`], so x is bit-identical
//! to the shader's), the rows of all runs in parallel; then each row is copied to its run's
//! `x_rep` and `y_rep` output items.

use rayon::prelude::*;

use super::{Params, SineShape, MAX_MODULE_DIM};
use crate::gpu::error::Result;
use crate::native::rows_mut;
use crate::native::{item, Launch};
use crate::ops::rng::{normal_icdf, random_bits, RngKey};

const TWO_PI: f32 = std::f32::consts::TAU;

/// Runs one launch of `sine::sample`.
pub(crate) fn run(l: &mut Launch<'_>) -> Result<()> {
    if l.entry != "sample" {
        return Err(l.unknown_entry());
    }
    let p: Params = l.params()?;
    let (runs, rows, m) = (p.batch as usize, p.rows as usize, p.m as usize);
    if runs == 0 || rows == 0 {
        return Ok(());
    }
    let pick = l.flag("PICK");
    let fold = l.constant("FOLD", 0.0) as u32;
    let shape = SineShape {
        m,
        modules: p.modules as usize,
        dim: p.dim as usize,
        comps: p.comps as usize,
    };
    let task_len = shape.task_len();
    let task = l.read(1)?;
    let words = l.read(3)?;
    let runs_in = (0..runs)
        .map(|b| {
            let t = item(
                task,
                p.task_off as usize,
                p.task_stride as usize,
                b,
                task_len,
            )?;
            let w = item(words, 2 * b, 0, 0, 2)?;
            Ok((
                t,
                u64::from(w[1].to_bits()) << 32 | u64::from(w[0].to_bits()),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let made: Vec<(Vec<f32>, f32)> = (0..runs * rows)
        .into_par_iter()
        .map(|g| {
            let (task, seed) = runs_in[g / rows];
            one_row(&p, shape, task, seed, g % rows, pick, fold)
        })
        .collect();
    let (x_rep, y_rep) = (p.x_rep as usize, p.y_rep as usize);
    let x = l.write(4)?;
    let mut xs = rows_mut(
        x,
        p.x_off as usize,
        p.x_stride as usize,
        (runs * x_rep, rows, m),
    )?;
    let y = l.write(5)?;
    let mut ys = rows_mut(
        y,
        p.y_off as usize,
        p.y_stride as usize,
        (runs * y_rep, rows, 1),
    )?;
    for (g, (row, target)) in made.iter().enumerate() {
        let (b, r) = (g / rows, g % rows);
        for c in 0..x_rep {
            xs[(b * x_rep + c) * rows + r].copy_from_slice(row);
        }
        for c in 0..y_rep {
            ys[(b * y_rep + c) * rows + r][0] = *target;
        }
    }
    Ok(())
}

/// Row `r` of the run with `task` and `seed`: its x and y, as the shader computes them.
fn one_row(
    p: &Params,
    s: SineShape,
    task: &[f32],
    seed: u64,
    r: usize,
    pick: bool,
    fold: u32,
) -> (Vec<f32>, f32) {
    let m = s.m;
    let idx = if pick {
        let key = RngKey::new(seed, u64::from(p.pick_hi) << 32 | u64::from(p.pick_lo));
        random_bits(key, r as u32) % task[0] as u32
    } else {
        p.row0 + r as u32
    };
    let data = RngKey::new(seed, u64::from(p.data_hi) << 32 | u64::from(p.data_lo));
    let mut x: Vec<f32> = (0..m as u32)
        .map(|j| p.sigma * normal_icdf(random_bits(data, idx * p.m + j)))
        .collect();
    let u = |k: usize| &task[4 + k * m..4 + (k + 1) * m];
    let proj = |k: usize, x: &[f32]| u(k).iter().zip(x).fold(0.0f32, |s, (&a, &b)| s + a * b);
    let reflect = |k: usize, x: &mut [f32], zk: f32| {
        x.iter_mut()
            .zip(u(k))
            .for_each(|(v, &uj)| *v -= 2.0 * zk * uj);
    };
    let second = s.dim;
    if fold == 1 {
        let z0 = proj(0, &x);
        if z0 > 0.0 && proj(second, &x) > 0.0 {
            reflect(0, &mut x, z0);
        }
    } else if fold == 2 {
        let z0 = proj(0, &x);
        if z0 < 0.0 {
            reflect(0, &mut x, z0);
        }
        let z1 = proj(second, &x);
        if z1 < 0.0 {
            reflect(second, &mut x, z1);
        }
    }
    let mut sum = 0.0f32;
    let mut z = [0.0f32; MAX_MODULE_DIM];
    for i in 0..s.modules {
        for (k, zk) in z[..s.dim].iter_mut().enumerate() {
            *zk = proj(i * s.dim + k, &x);
        }
        for l in 0..s.comps {
            let c = &task[s.comp_at(i, l)..];
            let arg = z[..s.dim]
                .iter()
                .zip(&c[3..])
                .fold(0.0f32, |a, (&zk, &w)| a + w * zk);
            let t = c[1] * arg + c[2];
            sum += c[0] * (t - TWO_PI * (t / TWO_PI + 0.5).floor()).sin();
        }
    }
    let target = (sum / (s.modules as f32).sqrt() - task[1]) * task[2];
    (x, target)
}
