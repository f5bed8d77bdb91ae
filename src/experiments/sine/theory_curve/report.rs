//! The `sine-theory` command's evaluation: the curves for given or fitted Ω, next to a sweep's
//! empirical points, written as CSV, JSON and plots.

use super::*;

/// Where Ω came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OmegaSource {
    /// Given (`--omega`).
    Given,
    /// Fitted to the sweep ([`fit_omega`]).
    Fitted,
    /// [`DEFAULT_OMEGA`] (no sweep, or nothing in it to fit).
    Default,
}

/// What the curves are evaluated for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TheoryOptions {
    /// p of every theory curve but the p curve (default: [`monolithic_params`] of the default
    /// widths, per m), and of the sweep's runs whose widths it does not vary.
    pub p: Option<usize>,
    /// n of the p and m curves (default [`DEFAULT_N`]; the m curve also at 10⁵, or with a sweep
    /// at up to three of its n).
    pub n: Option<usize>,
    /// Ω (default: fitted to the sweep, else [`DEFAULT_OMEGA`]).
    pub omega: Option<f64>,
}

/// The evaluated theory, its Ω, and the empirical points set next to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Theory {
    /// The spectrum's constants (Ω as used).
    pub spectrum: Spectrum,
    /// Where Ω came from.
    pub omega_source: OmegaSource,
    /// The fit, when Ω was fitted.
    pub fit: Option<Fit>,
    /// √(mean squared log error) of the Ω used on the empirical points, if any.
    pub rms_log_error: Option<f64>,
    /// Every theory point, curve by curve.
    pub curves: Vec<CurvePoint>,
    /// The sweep's monolithic mean test MSE per (m, n, p) (empty without a sweep).
    pub empirical: Vec<EmpiricalPoint>,
    /// The m values of the n and p curves.
    #[serde(skip)]
    ms: Vec<usize>,
    /// The (m, n) of the p curves.
    #[serde(skip)]
    vs_p: Vec<(usize, usize)>,
    /// The n of the m curves.
    #[serde(skip)]
    vs_m: Vec<usize>,
    /// p of the theory curves, per m.
    #[serde(skip)]
    p_given: Option<usize>,
}

impl Theory {
    /// p of the theory's n and m curves at input dimension m.
    pub fn p_of(&self, m: usize) -> usize {
        self.p_given
            .unwrap_or_else(|| monolithic_params(m, &DEFAULT_HIDDEN))
    }
}

fn sorted_unique(v: impl IntoIterator<Item = usize>) -> Vec<usize> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

/// Evaluates the curves (and, given a sine sweep's `runs.csv`, its monolithic mean test MSE and
/// the Ω fit):
///
/// - loss vs n for each m (the sweep's monolithic m, else 2, 4, 6, 8), p = `opts.p` or the
///   default MLP's parameter count, n from 10² to max(10⁵, 2p);
/// - loss vs p for each m at n = `opts.n` or 1000 (or, where the sweep varies the width, at each
///   of its (m, n)), p from 10² to max(10⁵, 10n);
/// - loss vs m (2…9 and the sweep's m) at n = `opts.n` (else up to three of the sweep's n, else
///   1000 and 10⁵: both sides of the default MLP's threshold n ≈ p ≈ 6.7·10⁴).
pub fn evaluate(opts: &TheoryOptions, sweep: Option<&RunsTable>) -> Result<Theory> {
    if opts.p == Some(0) || opts.n == Some(0) {
        return Err(arg_err("sine-theory", "--p and --n must be at least 1"));
    }
    if let Some(w) = opts.omega {
        if !(w.is_finite() && w > 1.0) {
            return Err(arg_err(
                "sine-theory",
                format!("--omega {w}: Ω must be finite and > 1 (α = Ω^(−m) falls with m)"),
            ));
        }
    }
    let p_given = opts.p;
    let p_of = |m: usize| p_given.unwrap_or_else(|| monolithic_params(m, &DEFAULT_HIDDEN));
    let empirical = match sweep {
        Some(t) => empirical(t, p_of)?,
        None => Vec::new(),
    };
    if sweep.is_some() && empirical.is_empty() {
        return Err(arg_err(
            "sine-theory",
            "the sweep's runs.csv has no finished monolithic run",
        ));
    }
    let (c, d) = (DEFAULT_C, 1);
    let (omega, omega_source, fit) = match (opts.omega, fit_omega(c, d, &empirical)) {
        (Some(w), _) => (w, OmegaSource::Given, None),
        (None, Some(f)) => (f.omega, OmegaSource::Fitted, Some(f)),
        (None, None) => (DEFAULT_OMEGA, OmegaSource::Default, None),
    };
    let spectrum = Spectrum { omega, c, d };
    // The empirical points at the theory's p (the n and m curves) and those of varied widths.
    let at_default: Vec<&EmpiricalPoint> = empirical.iter().filter(|e| e.p == p_of(e.m)).collect();
    let ms = if empirical.is_empty() {
        vec![2, 4, 6, 8]
    } else {
        sorted_unique(empirical.iter().map(|e| e.m))
    };
    let n_fixed = opts.n.unwrap_or(DEFAULT_N);
    let mut widths: BTreeMap<(usize, usize), BTreeSet<usize>> = BTreeMap::new();
    for e in &empirical {
        widths.entry((e.m, e.n)).or_default().insert(e.p);
    }
    let mut vs_p: Vec<(usize, usize)> = widths
        .iter()
        .filter(|(_, ps)| ps.len() > 1)
        .map(|(&k, _)| k)
        .collect();
    if vs_p.is_empty() {
        vs_p = ms.iter().map(|&m| (m, n_fixed)).collect();
    }
    let vs_m = match (opts.n, at_default.is_empty()) {
        (Some(n), _) => vec![n],
        (None, true) => vec![DEFAULT_N, 100_000],
        (None, false) => {
            let ns = sorted_unique(at_default.iter().map(|e| e.n));
            sorted_unique([ns[0], ns[ns.len() / 2], ns[ns.len() - 1]])
        }
    };
    let max_emp_n = empirical.iter().map(|e| e.n).max().unwrap_or(1);
    let min_emp_n = empirical.iter().map(|e| e.n).min().unwrap_or(100);
    let mut curves = Vec::new();
    for &m in &ms {
        let p = p_of(m);
        let hi = 100_000.max(2 * p).max(max_emp_n);
        let mut ns = log_grid(min_emp_n.min(100), hi, 24, &[p.div_ceil(d)]);
        ns.extend(at_default.iter().filter(|e| e.m == m).map(|e| e.n));
        curves.extend(curve_vs_n(&spectrum, m, p, &sorted_unique(ns)));
    }
    for &(m, n) in &vs_p {
        let max_emp_p = empirical.iter().map(|e| e.p).max().unwrap_or(1);
        let min_emp_p = empirical.iter().map(|e| e.p).min().unwrap_or(100);
        let hi = 100_000.max(10 * d * n).max(max_emp_p);
        let mut ps = log_grid(min_emp_p.min(100), hi, 24, &[d * n]);
        ps.extend(
            empirical
                .iter()
                .filter(|e| (e.m, e.n) == (m, n))
                .map(|e| e.p),
        );
        curves.extend(curve_vs_p(&spectrum, m, n, &sorted_unique(ps)));
    }
    let m_values = sorted_unique(M_RANGE.chain(ms.iter().copied()));
    for &n in &vs_m {
        curves.extend(curve_vs_m(&spectrum, n, &m_values, p_of));
    }
    Ok(Theory {
        spectrum,
        omega_source,
        fit,
        rms_log_error: rms_log_error(omega, c, d, &empirical),
        curves,
        empirical,
        ms,
        vs_p,
        vs_m,
        p_given,
    })
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "inf".into()
    }
}

/// `theory_curves.csv`: `curve,x,m,n,p,train,test`, one row per theory point (`curve` is
/// `vs_n`, `vs_p` or `vs_m`; a diverging loss is `inf`).
pub fn curves_csv(theory: &Theory) -> String {
    let mut out = String::from("curve,x,m,n,p,train,test\n");
    for c in &theory.curves {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            c.curve.name(),
            c.x,
            c.m,
            c.n,
            c.p,
            num(c.train),
            num(c.test)
        );
    }
    out
}

/// Writes `theory_curves.csv` and `theory_fit.json` (Ω, its source, the fit and the empirical
/// points) into `dir` (created if needed); returns their paths.
pub fn write(dir: &Path, theory: &Theory) -> Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let csv = dir.join("theory_curves.csv");
    write_atomic(&csv, curves_csv(theory).as_bytes())?;
    let json = dir.join("theory_fit.json");
    #[derive(Serialize)]
    struct FitFile<'a> {
        model: &'static str,
        spectrum: &'a Spectrum,
        omega_source: OmegaSource,
        fit: Option<Fit>,
        rms_log_error: Option<f64>,
        empirical: &'a [EmpiricalPoint],
    }
    write_json(
        &json,
        &FitFile {
            model: "[inferred] spec §1.3 reconstruction of Boopathy et al. Theorem 1; \
                    overparameterised form: our derivation (whitened min-norm interpolator)",
            spectrum: &theory.spectrum,
            omega_source: theory.omega_source,
            fit: theory.fit,
            rms_log_error: theory.rms_log_error,
            empirical: &theory.empirical,
        },
    )?;
    Ok(vec![csv, json])
}

fn series(name: String, points: impl IntoIterator<Item = (f64, f64)>) -> LineSeries {
    LineSeries {
        name,
        points: points.into_iter().filter(|q| q.1.is_finite()).collect(),
    }
}

/// A theory series of a plot: its name and which curve points it takes.
type Key<'a> = (String, Box<dyn Fn(&CurvePoint) -> bool + 'a>);

/// One test panel (log-log, or log y over m) and one train panel (linear y) of `kind`, a theory
/// series per `keys` entry and the empirical series given.
fn panels(
    theory: &Theory,
    kind: CurveKind,
    caption: &str,
    x_desc: &str,
    x_log: bool,
    keys: &[Key<'_>],
    empirical: Vec<LineSeries>,
) -> [LinePanel; 2] {
    let pts = |f: &dyn Fn(&CurvePoint) -> bool, y: fn(&CurvePoint) -> f64| {
        theory
            .curves
            .iter()
            .filter(|c| c.curve == kind && f(c))
            .map(|c| (c.x, y(c)))
            .collect::<Vec<_>>()
    };
    let mut test: Vec<LineSeries> = keys
        .iter()
        .map(|(name, f)| series(format!("theory {name}"), pts(f.as_ref(), |c| c.test)))
        .collect();
    test.extend(empirical);
    let train = keys
        .iter()
        .map(|(name, f)| series(format!("theory {name}"), pts(f.as_ref(), |c| c.train)))
        .collect();
    let s = &theory.spectrum;
    let omega = match theory.omega_source {
        OmegaSource::Given => format!("Ω = {:.3} (given)", s.omega),
        OmegaSource::Fitted => format!("Ω = {:.3} (fitted)", s.omega),
        OmegaSource::Default => format!("Ω = {:.3} (default)", s.omega),
    };
    [
        LinePanel {
            caption: format!("test, {caption}, {omega}"),
            x_desc: x_desc.into(),
            y_desc: "test MSE / Var(y)".into(),
            x_log,
            y_log: true,
            series: test,
            hline: None,
            legend_left: false,
        },
        LinePanel {
            caption: format!("train, {caption}"),
            x_desc: x_desc.into(),
            y_desc: "train MSE / Var(y)".into(),
            x_log,
            y_log: false,
            series: train,
            hline: None,
            legend_left: false,
        },
    ]
}

/// `theory_vs_n`, `theory_vs_p`, `theory_vs_m` (`.svg` and `.png`) in `dir`: per curve a test
/// panel (log y; diverging points left out) with the sweep's empirical mean test MSE overlaid
/// ("empirical …" next to "theory …"), and a train panel (the sweep records no train loss).
pub fn plot(dir: &Path, theory: &Theory) -> std::result::Result<Vec<PathBuf>, PlotError> {
    let emp = &theory.empirical;
    // Loss vs n: a series per m at the theory's p.
    let keys: Vec<Key> = theory
        .ms
        .iter()
        .map(|&m| {
            (
                format!("m={m}"),
                Box::new(move |c: &CurvePoint| c.m == m) as _,
            )
        })
        .collect();
    let emp_n = theory
        .ms
        .iter()
        .map(|&m| {
            let p = theory.p_of(m);
            series(
                format!("empirical m={m}"),
                emp.iter()
                    .filter(|e| e.m == m && e.p == p)
                    .map(|e| (e.n as f64, e.test_mse)),
            )
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let p_desc = match theory.p_given {
        Some(p) => format!("p = {p}"),
        None => "p = MLP params".into(),
    };
    let mut files = plot_line_panels(
        dir,
        "theory_vs_n",
        &panels(
            theory,
            CurveKind::VsN,
            &p_desc,
            "training samples n",
            true,
            &keys,
            emp_n,
        ),
        2,
    )?;
    // Loss vs p: a series per (m, n).
    let keys: Vec<Key> = theory
        .vs_p
        .iter()
        .map(|&(m, n)| {
            (
                format!("m={m} n={n}"),
                Box::new(move |c: &CurvePoint| c.m == m && c.n == n) as _,
            )
        })
        .collect();
    let emp_p = theory
        .vs_p
        .iter()
        .map(|&(m, n)| {
            series(
                format!("empirical m={m} n={n}"),
                emp.iter()
                    .filter(|e| e.m == m && e.n == n)
                    .map(|e| (e.p as f64, e.test_mse)),
            )
        })
        .filter(|s| s.points.len() > 1)
        .collect();
    files.extend(plot_line_panels(
        dir,
        "theory_vs_p",
        &panels(
            theory,
            CurveKind::VsP,
            "n fixed",
            "model parameters p",
            true,
            &keys,
            emp_p,
        ),
        2,
    )?);
    // Loss vs m: a series per n.
    let keys: Vec<Key> = theory
        .vs_m
        .iter()
        .map(|&n| {
            (
                format!("n={n}"),
                Box::new(move |c: &CurvePoint| c.n == n) as _,
            )
        })
        .collect();
    let emp_m = theory
        .vs_m
        .iter()
        .map(|&n| {
            series(
                format!("empirical n={n}"),
                emp.iter()
                    .filter(|e| e.n == n && e.p == theory.p_of(e.m))
                    .map(|e| (e.m as f64, e.test_mse)),
            )
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    files.extend(plot_line_panels(
        dir,
        "theory_vs_m",
        &panels(
            theory,
            CurveKind::VsM,
            &p_desc,
            "input dimension m",
            false,
            &keys,
            emp_m,
        ),
        2,
    )?);
    Ok(files)
}
