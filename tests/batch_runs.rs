//! Independent runs on the batch axis, end to end ([`hypermod::train::supervised`]): a run trained
//! alone (B = 1) and as item 3 of a batch of 8 runs with other seeds, learning rates and weight
//! decays has bitwise identical per-step losses and final parameters; its loss decreases; other
//! seeds give other losses; bad specs are typed errors.

mod common;

use hypermod::gpu::Device;
use hypermod::train::supervised::{DataSpec, MlpSpec, RunCurve, RunSpec, SupervisedRuns};
use hypermod::Error;

const STEPS: usize = 60;

fn mlp() -> MlpSpec {
    MlpSpec {
        widths: vec![5, 16, 16, 1],
    }
}

fn data() -> DataSpec {
    DataSpec {
        samples_per_step: 32,
        teacher_hidden: vec![16],
    }
}

const TARGET: RunSpec = RunSpec {
    seed: 1234,
    lr: 1e-2,
    weight_decay: 1e-4,
};

/// Trains `runs` for [`STEPS`] steps; returns the curves and the final parameters.
fn train(gpu: &Device, runs: &[RunSpec]) -> (Vec<RunCurve>, Vec<Vec<f32>>) {
    let mut r = SupervisedRuns::new(gpu, runs, &mlp(), &data()).unwrap();
    let curves = r.train(gpu, STEPS).unwrap();
    assert_eq!(r.steps_done(), STEPS as u64);
    (curves, r.params(gpu).unwrap())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len() as f32
}

#[test]
fn a_run_trains_to_the_same_bits_alone_and_inside_a_batch() {
    let gpu = gpu_or_skip!();
    let (alone, alone_params) = train(gpu, &[TARGET]);
    // Seven other runs with other seeds, learning rates (3e-3 … 3e-2) and weight decays.
    let mut batch: Vec<RunSpec> = (0..7u64)
        .map(|k| RunSpec {
            seed: 77 + 1000 * k,
            lr: [3e-3, 2e-2, 5e-3, 3e-2, 1e-3, 1.5e-2, 8e-3][k as usize],
            weight_decay: [0.0, 1e-3, 1e-2, 0.0, 1e-4, 5e-2, 0.0][k as usize],
        })
        .collect();
    batch.insert(3, TARGET);
    let (curves, params) = train(gpu, &batch);

    let l = &alone[0].losses;
    assert_eq!(curves[3].run, TARGET);
    assert_eq!(bits(&curves[3].losses), bits(l), "per-step losses differ");
    assert_eq!(
        bits(&params[3]),
        bits(&alone_params[0]),
        "final params differ"
    );

    // The loss falls: on lavapipe the first five steps average 1.10 and the last ten 0.052 (a
    // factor of 21); 5 leaves room for other devices yet fails if training stalls.
    let (first, last) = (mean(&l[..5]), mean(&l[STEPS - 10..]));
    assert!(
        last * 5.0 < first,
        "loss did not fall enough: first 5 steps {first}, last 10 {last}: {l:?}"
    );
    // Different seeds (teacher, data, initialisation) give different losses at every step.
    for (b, c) in curves.iter().enumerate().filter(|(b, _)| *b != 3) {
        let same = c.losses.iter().zip(l).filter(|(x, y)| x == y).count();
        assert_eq!(
            same, 0,
            "run {b} ({:?}) repeats {same} losses of the target",
            c.run
        );
    }
}

#[test]
fn changing_only_the_learning_rate_changes_the_curve() {
    let gpu = gpu_or_skip!();
    let slow = RunSpec {
        lr: TARGET.lr / 4.0,
        ..TARGET
    };
    let (curves, _) = train(gpu, &[TARGET, slow]);
    // Same seed: the first loss (before any update) is the same, afterwards the runs diverge.
    assert_eq!(curves[0].losses[0].to_bits(), curves[1].losses[0].to_bits());
    assert_ne!(bits(&curves[0].losses[1..]), bits(&curves[1].losses[1..]));
}

#[test]
fn bad_specs_are_typed_errors() {
    let gpu = gpu_or_skip!();
    let bad = |runs: &[RunSpec], m: MlpSpec, d: DataSpec, want: &str| match SupervisedRuns::new(
        gpu, runs, &m, &d,
    ) {
        // An invalid argument, whether the runs' own check or the optimiser's (a device-layer
        // error wrapped as `Error::Device`) rejects it.
        Err(
            e @ (Error::InvalidArgument { .. }
            | Error::Device(hypermod::gpu::DeviceError::InvalidArgument { .. })),
        ) => {
            assert!(e.to_string().contains(want), "{e}")
        }
        Err(e) => panic!("{want}: wrong error kind {e}"),
        Ok(_) => panic!("{want}: accepted"),
    };
    bad(&[], mlp(), data(), "at least one run");
    let one_width = MlpSpec { widths: vec![5] };
    bad(&[TARGET], one_width, data(), "widths");
    let no_samples = DataSpec {
        samples_per_step: 0,
        ..data()
    };
    bad(&[TARGET], mlp(), no_samples, "samples_per_step");
    let nan_lr = RunSpec {
        lr: f32::NAN,
        ..TARGET
    };
    bad(&[TARGET, nan_lr], mlp(), data(), "lr[1] = NaN");
}
