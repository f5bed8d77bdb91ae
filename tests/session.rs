//! `Session` (an experiment stepped from outside the loop, as the Python bindings do): `steps`
//! calls of `step()` and one `evaluate()` give the final metrics `hypermod train` reports, bit for
//! bit; a state dict round trip continues identically; bad state dicts are argument errors.

mod common;

use hypermod::experiments::session::Session;
use hypermod::experiments::ExperimentConfig;
use hypermod::Error;

const SET: &[&str] = &["train.steps_outer=30", "train.eval_every=15"];

fn config() -> ExperimentConfig {
    let set: Vec<String> = SET.iter().map(|s| s.to_string()).collect();
    ExperimentConfig::load("tests/data/tiny_hyperteacher.toml".as_ref(), &set)
        .unwrap()
        .0
}

fn device() -> Option<hypermod::gpu::Device> {
    common::gpu()?;
    let choice = common::device_name().parse().unwrap();
    Some(hypermod::gpu::Device::open(choice, Default::default()).unwrap())
}

#[test]
fn step_loop_gives_the_final_metrics_of_train() {
    let Some(gpu) = device() else { return };
    let out = std::env::temp_dir().join(format!("hypermod-session-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = common::hypermod_bin();
    cmd.args(["train", "tests/data/tiny_hyperteacher.toml", "--out"])
        .arg(&out);
    for s in SET {
        cmd.args(["--set", s]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let mut s = Session::new(gpu, &config()).unwrap();
    for i in 0..s.schedule().steps {
        assert_eq!(s.step().unwrap()["step"], i + 1);
    }
    assert_eq!(s.evaluate().unwrap(), summary["final"]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn state_dict_round_trip_continues_identically() {
    let (Some(g1), Some(g2)) = (device(), device()) else {
        return;
    };
    let mut a = Session::new(g1, &config()).unwrap();
    for _ in 0..4 {
        a.step().unwrap();
    }
    let state = a.state_dict().unwrap();
    let mut b = Session::new(g2, &config()).unwrap();
    b.load_state_dict(state.clone(), 4).unwrap();
    assert_eq!(a.step().unwrap(), b.step().unwrap());
    assert_eq!(a.evaluate().unwrap(), b.evaluate().unwrap());

    let mut short = state.clone();
    short.get_mut("meta").unwrap().pop();
    let e = b.load_state_dict(short, 4).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let mut missing = state;
    missing.remove("meta");
    let e = b.load_state_dict(missing, 4).unwrap_err();
    assert!(e.to_string().contains("missing tensor `meta`"), "{e}");
}
