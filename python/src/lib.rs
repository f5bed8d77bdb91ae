//! `hypermod._hypermod`: the native half of the Python package. Thin: every function parses its
//! arguments, releases the GIL, calls the engine, and maps the engine's typed errors to Python
//! exceptions (config → `ValueError`, missing files → `FileNotFoundError`, device and limits →
//! `RuntimeError`, an interrupted run → `KeyboardInterrupt`). Structured results cross as JSON
//! text that `hypermod/__init__.py` decodes; tensors cross as numpy arrays. Nothing panics across
//! the boundary: a panic inside the engine becomes a `RuntimeError`.

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use hypermod::config::ConfigError;
use hypermod::experiments::session::Session;
use hypermod::experiments::ExperimentConfig;
use hypermod::gpu::{Device, DeviceChoice, DeviceError, DeviceOptions};
use hypermod::Error;
use numpy::{
    IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The engine's error as the Python exception a user expects.
fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match &e {
        Error::Config(c)
            if matches!(**c, ConfigError::Io { ref source, .. }
            if source.kind() == std::io::ErrorKind::NotFound) =>
        {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Config(_)
        | Error::Experiment { .. }
        | Error::InvalidArgument { .. }
        | Error::Device(DeviceError::Shape { .. }) => PyValueError::new_err(msg),
        Error::Device(DeviceError::InvalidArgument { op, .. })
            if *op != "device" && *op != "native backend" =>
        {
            PyValueError::new_err(msg)
        }
        Error::File { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Io { .. } => PyFileNotFoundError::new_err(msg),
        Error::Interrupted { .. } => PyKeyboardInterrupt::new_err(msg),
        _ => PyRuntimeError::new_err(msg),
    }
}

/// Runs `f` without the GIL, turning a panic into a `RuntimeError`.
fn engine<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, Error> + Send) -> PyResult<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|p| {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            PyRuntimeError::new_err(format!(
                "internal error in hypermod (please report): {what}"
            ))
        })?
        .map_err(to_py)
}

/// Opens a device: `None` = `$HYPERMOD_DEVICE` or auto, as the CLI.
fn open(device: Option<&str>) -> Result<Device, Error> {
    let choice = match device {
        Some(d) => d.parse::<DeviceChoice>()?,
        None => DeviceChoice::from_env()?,
    };
    Ok(Device::open(choice, DeviceOptions::default())?)
}

/// The device of one name, opened once per process (kernel calls reuse its pipelines).
fn shared_device(device: Option<&str>) -> Result<&'static Device, Error> {
    static DEVICES: OnceLock<Mutex<HashMap<String, &'static Device>>> = OnceLock::new();
    let key = device.unwrap_or("").to_string();
    let mut map = DEVICES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(g) = map.get(&key) {
        return Ok(g);
    }
    let g: &'static Device = Box::leak(Box::new(open(device)?));
    map.insert(key, g);
    Ok(g)
}

/// A config from a path or from JSON text (a Python dict), with `--set` style overrides.
fn load_config(
    config: &str,
    is_json: bool,
    overrides: &[String],
) -> Result<(ExperimentConfig, toml::Table, PathBuf), Error> {
    if !is_json {
        let path = PathBuf::from(config);
        let (cfg, table) = ExperimentConfig::load(&path, overrides)?;
        return Ok((cfg, table, path));
    }
    let origin = PathBuf::from("<dict>");
    let bad = |detail: String| Error::InvalidArgument {
        op: "config",
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_str(config).map_err(|e| bad(format!("not JSON: {e}")))?;
    let table = toml::Table::try_from(value)
        .map_err(|e| bad(format!("the dict is not a TOML table: {e}")))?;
    let (cfg, table) = ExperimentConfig::from_table(table, &origin, overrides)?;
    Ok((cfg, table, origin))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::InvalidArgument {
        op: "result",
        detail: e.to_string(),
    })
}

/// Installs Python's signal check (Ctrl-C → stop after the current step) around `f`.
fn interruptible<T>(f: impl FnOnce() -> T) -> T {
    hypermod::train::interrupt::with_check(|| Python::attach(|py| py.check_signals().is_err()), f)
}

/// Trains a new run into `out`; returns summary.json as text.
#[pyfunction]
#[pyo3(signature = (config, is_json, overrides, out, overwrite, device))]
fn train(
    py: Python<'_>,
    config: String,
    is_json: bool,
    overrides: Vec<String>,
    out: PathBuf,
    overwrite: bool,
    device: Option<String>,
) -> PyResult<String> {
    engine(py, move || {
        let (cfg, table, _) = load_config(&config, is_json, &overrides)?;
        hypermod::run::check_fresh_run_dir(&out, overwrite)?;
        let resolved = toml::to_string(&table)?;
        let gpu = open(device.as_deref())?;
        let summary = interruptible(|| cfg.train(&gpu, &resolved, &out, overwrite))?;
        Ok(summary.json().to_string())
    })
}

/// Continues the run in `dir` from its checkpoint; returns summary.json as text.
#[pyfunction]
#[pyo3(signature = (dir, device))]
fn resume(py: Python<'_>, dir: PathBuf, device: Option<String>) -> PyResult<String> {
    engine(py, move || {
        let gpu = open(device.as_deref())?;
        let summary = interruptible(|| hypermod::experiments::resume(&gpu, &dir))?;
        Ok(summary.json().to_string())
    })
}

/// Runs a sweep into `out`; returns the path of its runs.csv.
#[pyfunction]
#[pyo3(signature = (sweep, out, overwrite, device))]
fn sweep(
    py: Python<'_>,
    sweep: PathBuf,
    out: PathBuf,
    overwrite: bool,
    device: Option<String>,
) -> PyResult<String> {
    engine(py, move || {
        hypermod::sweep::expand(&sweep)?;
        hypermod::sweep::check_sweep_dir(&sweep, &out, overwrite)?;
        let gpu = open(device.as_deref())?;
        let csv = interruptible(|| hypermod::sweep::run_sweep(&gpu, &sweep, &out, overwrite))?;
        Ok(csv.display().to_string())
    })
}

fn read_text(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::File {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A run directory as `load_run` returns it: config (as JSON), metrics.jsonl, summary.json and
/// run.json (when present), and the checkpoint's tensors.
type RunFiles<'py> = (
    String,
    String,
    Option<String>,
    Option<String>,
    Bound<'py, PyDict>,
);

/// Reads a run directory back (see [`RunFiles`]).
#[pyfunction]
fn load_run<'py>(py: Python<'py>, dir: PathBuf) -> PyResult<RunFiles<'py>> {
    let (config, metrics, summary, run, tensors) = engine(py, move || {
        let config_path = dir.join("config.toml");
        let text = read_text(&config_path)?.ok_or_else(|| Error::Io {
            path: dir.display().to_string(),
            message: "not a run directory (no config.toml)".into(),
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| Error::Io {
            path: config_path.display().to_string(),
            message: e.to_string(),
        })?;
        let ck_path = dir.join(hypermod::train::runner::CHECKPOINT);
        let tensors = if ck_path.exists() {
            hypermod::checkpoint::Checkpoint::load(&ck_path)?.tensors
        } else {
            BTreeMap::new()
        };
        Ok((
            to_json(&table)?,
            read_text(&dir.join("metrics.jsonl"))?.unwrap_or_default(),
            read_text(&dir.join("summary.json"))?,
            read_text(&dir.join("run.json"))?,
            tensors,
        ))
    })?;
    let dict = PyDict::new(py);
    for (name, (shape, values)) in tensors {
        let array = PyArray1::from_vec(py, values).reshape(shape)?;
        dict.set_item(name, array)?;
    }
    Ok((config, metrics, summary, run, dict))
}

/// One experiment stepped from Python (see `hypermod.Experiment`).
#[pyclass(name = "_Experiment")]
struct PyExperiment {
    session: Session,
}

#[pymethods]
impl PyExperiment {
    #[new]
    #[pyo3(signature = (config, is_json, overrides, device))]
    fn new(
        py: Python<'_>,
        config: String,
        is_json: bool,
        overrides: Vec<String>,
        device: Option<String>,
    ) -> PyResult<Self> {
        let session = engine(py, move || {
            let (cfg, _, _) = load_config(&config, is_json, &overrides)?;
            Session::new(open(device.as_deref())?, &cfg)
        })?;
        Ok(PyExperiment { session })
    }

    fn step(&mut self, py: Python<'_>) -> PyResult<String> {
        let s = &mut self.session;
        engine(py, move || to_json(&s.step()?))
    }

    fn evaluate(&self, py: Python<'_>) -> PyResult<String> {
        let s = &self.session;
        engine(py, move || to_json(&s.evaluate()?))
    }

    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.session;
        let tensors = engine(py, move || s.state_dict())?;
        let dict = PyDict::new(py);
        for (name, values) in tensors {
            dict.set_item(name, values.into_pyarray(py))?;
        }
        Ok(dict)
    }

    fn load_state_dict(
        &mut self,
        py: Python<'_>,
        tensors: BTreeMap<String, PyReadonlyArrayDyn<'_, f32>>,
        steps_done: usize,
    ) -> PyResult<()> {
        let tensors: BTreeMap<String, Vec<f32>> = tensors
            .into_iter()
            .map(|(k, a)| (k, a.as_array().iter().copied().collect()))
            .collect();
        let s = &mut self.session;
        engine(py, move || s.load_state_dict(tensors, steps_done))
    }

    #[getter]
    fn steps_done(&self) -> usize {
        self.session.steps_done()
    }

    #[getter]
    fn steps(&self) -> usize {
        self.session.schedule().steps
    }

    #[getter]
    fn eval_every(&self) -> usize {
        self.session.schedule().eval_every
    }

    #[getter]
    fn device(&self) -> String {
        self.session.gpu().adapter_info().name.clone()
    }
}

/// `act(alpha·op(A)·op(B) + beta·C + bias)` on the device; A is [B, M, K] (or [K, M] items when
/// transposed), B either [B, K, N] or one [K, N] matrix shared by every item (stride 0).
#[pyfunction]
#[pyo3(signature = (a, b, bias, c, trans_a, trans_b, alpha, beta, activation, device))]
#[allow(clippy::too_many_arguments)]
fn gemm<'py>(
    py: Python<'py>,
    a: PyReadonlyArrayDyn<'py, f32>,
    b: PyReadonlyArrayDyn<'py, f32>,
    bias: Option<PyReadonlyArrayDyn<'py, f32>>,
    c: Option<PyReadonlyArrayDyn<'py, f32>>,
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    activation: String,
    device: Option<String>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (a, b) = (host(&a), host(&b));
    let (bias, c) = (bias.as_ref().map(host), c.as_ref().map(host));
    let call = kernels::GemmCall {
        a,
        b,
        bias,
        c,
        trans_a,
        trans_b,
        alpha,
        beta,
        activation,
    };
    let (shape, values) = engine(py, move || {
        let gpu = shared_device(device.as_deref())?;
        Ok(call.run(gpu)?)
    })?;
    PyArray1::from_vec(py, values).reshape(shape)
}

/// A host array as (shape, values).
fn host(x: &PyReadonlyArrayDyn<'_, f32>) -> kernels::Host {
    (x.shape().to_vec(), x.as_array().iter().copied().collect())
}

/// LayerNorm over the last axis of a [B, R, C] or [R, C] array.
#[pyfunction]
#[pyo3(signature = (x, gamma, beta, eps, device))]
fn layer_norm<'py>(
    py: Python<'py>,
    x: PyReadonlyArrayDyn<'py, f32>,
    gamma: Option<PyReadonlyArrayDyn<'py, f32>>,
    beta: Option<PyReadonlyArrayDyn<'py, f32>>,
    eps: f32,
    device: Option<String>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (x, gamma, beta) = (host(&x), gamma.as_ref().map(host), beta.as_ref().map(host));
    let (shape, values) = engine(py, move || {
        let gpu = shared_device(device.as_deref())?;
        Ok(kernels::layer_norm(
            gpu,
            &x,
            gamma.as_ref(),
            beta.as_ref(),
            eps,
        )?)
    })?;
    PyArray1::from_vec(py, values).reshape(shape)
}

/// An element-wise activation of a [B, R, C] or [R, C] array.
#[pyfunction]
#[pyo3(signature = (x, activation, device))]
fn activation<'py>(
    py: Python<'py>,
    x: PyReadonlyArrayDyn<'py, f32>,
    activation: String,
    device: Option<String>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let x = host(&x);
    let (shape, values) = engine(py, move || {
        let gpu = shared_device(device.as_deref())?;
        Ok(kernels::activation_forward(gpu, &x, &activation)?)
    })?;
    PyArray1::from_vec(py, values).reshape(shape)
}

/// `hypermod info` as JSON text.
#[pyfunction]
#[pyo3(signature = (device))]
fn device_info(py: Python<'_>, device: Option<String>) -> PyResult<String> {
    engine(py, move || {
        to_json(&shared_device(device.as_deref())?.report())
    })
}

mod kernels;

#[pymodule]
fn _hypermod(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // As the CLI does first: keeps Mesa's display probes from printing to stderr on headless
    // machines (sets an environment variable; import time is the earliest point we have).
    hypermod::gpu::quiet_display_probes();
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(resume, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(load_run, m)?)?;
    m.add_function(wrap_pyfunction!(gemm, m)?)?;
    m.add_function(wrap_pyfunction!(layer_norm, m)?)?;
    m.add_function(wrap_pyfunction!(activation, m)?)?;
    m.add_function(wrap_pyfunction!(device_info, m)?)?;
    m.add_class::<PyExperiment>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
