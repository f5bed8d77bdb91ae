//! `runs.csv`, the one-row-per-run table that `hypermod sweep` writes, and its summary over seeds
//! (`summary.md`: mean ± sd per grid point of the experiment's measures, e.g. accuracy, loss, the
//! test − OOD gap and decoder R² for the hyperteacher).
//!
//! The file is real CSV (quoted where a cell holds a comma, a quote or a newline), so grid values
//! such as `[1, 2]` survive the round trip.

use std::path::Path;

use thiserror::Error;

use crate::fs::write_atomic;

/// What can go wrong reading or writing `runs.csv`.
#[derive(Debug, Error)]
pub enum RunsTableError {
    /// The file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS's or the CSV parser's message.
        message: String,
    },
    /// The file is not in the shape `hypermod sweep` writes.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The file has a header but no runs.
    #[error("{path}: empty (no runs)")]
    Empty {
        /// The file.
        path: String,
    },
}

/// The rows of `runs.csv`: the grid keys, then `seed`, `run` (the run's directory), then metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunsTable {
    /// Column names.
    pub header: Vec<String>,
    /// One row per run, as many cells as `header`.
    pub rows: Vec<Vec<String>>,
}

/// The runs of one grid point (all its seeds).
#[derive(Clone, Debug, PartialEq)]
pub struct GridPoint {
    /// The grid values joined by ", " (`base` for a sweep without a grid).
    pub label: String,
    /// Indices into [`RunsTable::rows`].
    pub rows: Vec<usize>,
}

impl RunsTable {
    /// Reads and checks `path` (every row as wide as the header, `seed` and `run` columns present).
    pub fn read(path: &Path) -> Result<Self, RunsTableError> {
        let shown = path.display().to_string();
        let io = |e: csv::Error| RunsTableError::Io {
            path: shown.clone(),
            message: e.to_string(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_path(path)
            .map_err(io)?;
        let header: Vec<String> = reader
            .headers()
            .map_err(io)?
            .iter()
            .map(String::from)
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(io)?;
            if record.len() != header.len() {
                return Err(RunsTableError::Malformed {
                    path: shown,
                    message: format!(
                        "run {}: {} cells but the header has {}",
                        i + 1,
                        record.len(),
                        header.len()
                    ),
                });
            }
            rows.push(record.iter().map(String::from).collect());
        }
        let table = RunsTable { header, rows };
        for name in ["seed", "run"] {
            table
                .column(name)
                .map_err(|message| RunsTableError::Malformed {
                    path: shown.clone(),
                    message,
                })?;
        }
        if table.rows.is_empty() {
            return Err(RunsTableError::Empty { path: shown });
        }
        Ok(table)
    }

    /// Writes the table atomically as CSV.
    pub fn write(&self, path: &Path) -> Result<(), RunsTableError> {
        let err = |message: String| RunsTableError::Io {
            path: path.display().to_string(),
            message,
        };
        let mut writer = csv::Writer::from_writer(Vec::new());
        for record in std::iter::once(&self.header).chain(&self.rows) {
            writer
                .write_record(record)
                .map_err(|e| err(e.to_string()))?;
        }
        let bytes = writer.into_inner().map_err(|e| err(e.to_string()))?;
        write_atomic(path, &bytes).map_err(|e| err(e.to_string()))
    }

    /// The index of column `name`, or a message naming it.
    pub fn column(&self, name: &str) -> Result<usize, String> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no `{name}` column in the header"))
    }

    /// The grid keys: the columns before `seed`.
    pub fn grid_keys(&self) -> &[String] {
        let seed = self.column("seed").unwrap_or(0);
        &self.header[..seed]
    }

    /// The cell at (`row`, `col`) as a number; an empty cell (e.g. no decoder R²) is NaN.
    pub fn number(&self, row: usize, col: usize) -> Result<f64, String> {
        let cell = &self.rows[row][col];
        if cell.is_empty() {
            return Ok(f64::NAN);
        }
        cell.parse().map_err(|_| {
            format!(
                "run {}: `{}` = `{cell}` is not a number",
                row + 1,
                self.header[col]
            )
        })
    }

    /// The runs grouped by grid point, in order of first appearance.
    pub fn grid_points(&self) -> Vec<GridPoint> {
        let keys = self.grid_keys().len();
        let mut points: Vec<GridPoint> = Vec::new();
        for (i, row) in self.rows.iter().enumerate() {
            let label = if keys == 0 {
                "base".to_string()
            } else {
                row[..keys].join(", ")
            };
            match points.iter_mut().find(|p| p.label == label) {
                Some(p) => p.rows.push(i),
                None => points.push(GridPoint {
                    label,
                    rows: vec![i],
                }),
            }
        }
        points
    }
}

/// Mean and sample standard deviation (0 for one value) of the finite values of `v`; NaN when
/// none is finite.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// A column a [`Measure`] reads.
#[derive(Clone, Copy, Debug)]
pub enum Col {
    /// `{final|best}_{name}`, per section of the summary; required.
    Set(&'static str),
    /// `name` as is, one per run (e.g. `seconds`); NaN where the table lacks it.
    Run(&'static str),
}

/// A summary column: its title and how to compute it from a run's cells. Each experiment lists
/// its own (its summary columns).
#[derive(Clone, Copy)]
pub struct Measure {
    title: &'static str,
    cols: &'static [Col],
    /// The value from the cells of `cols`, in order.
    value: fn(&[f64]) -> f64,
    /// Shown with an explicit sign (a gap).
    signed: bool,
}

impl Measure {
    /// A measure titled `title`, computed by `value` from the cells of `cols`.
    pub const fn new(
        title: &'static str,
        cols: &'static [Col],
        value: fn(&[f64]) -> f64,
        signed: bool,
    ) -> Measure {
        Measure {
            title,
            cols,
            value,
            signed,
        }
    }
}

/// Every run's value of every measure in section `which` (`final` or `best`):
/// `values[run][measure]`.
fn measure_values(
    table: &RunsTable,
    measures: &[Measure],
    which: &str,
) -> Result<Vec<Vec<f64>>, String> {
    // Resolve every column once: Some(index), or None for an absent per-run column.
    let index = |c: &Col| match c {
        Col::Set(name) => table.column(&format!("{which}_{name}")).map(Some),
        Col::Run(name) => Ok(table.column(name).ok()),
    };
    let cols: Vec<Vec<Option<usize>>> = measures
        .iter()
        .map(|m| m.cols.iter().map(index).collect())
        .collect::<Result<_, _>>()?;
    (0..table.rows.len())
        .map(|row| {
            measures
                .iter()
                .zip(&cols)
                .map(|(m, cs)| {
                    let cells = cs
                        .iter()
                        .map(|c| c.map_or(Ok(f64::NAN), |c| table.number(row, c)))
                        .collect::<Result<Vec<f64>, String>>()?;
                    Ok((m.value)(&cells))
                })
                .collect()
        })
        .collect()
}

fn markdown_row(cells: impl IntoIterator<Item = String>) -> String {
    let cells: Vec<String> = cells.into_iter().collect();
    format!("| {} |", cells.join(" | "))
}

fn fmt_value(x: f64, signed: bool) -> String {
    match (x.is_finite(), signed) {
        (false, _) => "–".to_string(),
        (true, true) => format!("{x:+.3}"),
        (true, false) => format!("{x:.3}"),
    }
}

/// `summary.md`: per grid point, mean ± sd over seeds of the experiment's `measures` at the
/// final and the best-by-valid step, then one row per run.
pub fn summary_markdown(table: &RunsTable, measures: &[Measure]) -> Result<String, String> {
    let grid = table.grid_keys().join(", ");
    let grid = if grid.is_empty() {
        "grid point".into()
    } else {
        grid
    };
    let points = table.grid_points();
    let seed = table.column("seed")?;
    let run = table.column("run")?;
    let mut out = String::from("# Sweep summary\n");
    for (which, what) in [
        ("final", "at the last step"),
        ("best", "at the best-by-valid step"),
    ] {
        let all = measure_values(table, measures, which)?;
        out += &format!("\n## Mean ± sd over seeds, {what}\n\n");
        out += &markdown_row(
            [grid.clone(), "seeds".into()]
                .into_iter()
                .chain(measures.iter().map(|m| m.title.to_string())),
        );
        out += "\n";
        out += &markdown_row((0..measures.len() + 2).map(|_| "---".to_string()));
        out += "\n";
        for p in &points {
            let stats = measures.iter().enumerate().map(|(j, m)| {
                let v: Vec<f64> = p.rows.iter().map(|&i| all[i][j]).collect();
                let (mean, sd) = mean_std(&v);
                if mean.is_finite() {
                    format!("{} ± {sd:.3}", fmt_value(mean, m.signed))
                } else {
                    "–".to_string()
                }
            });
            out += &markdown_row(
                [p.label.clone(), p.rows.len().to_string()]
                    .into_iter()
                    .chain(stats),
            );
            out += "\n";
        }
    }
    let all = measure_values(table, measures, "final")?;
    out += "\n## Every run, at the last step\n\n";
    out += &markdown_row(
        [grid, "seed".into()]
            .into_iter()
            .chain(measures.iter().map(|m| m.title.to_string()))
            .chain(["run".to_string()]),
    );
    out += "\n";
    out += &markdown_row((0..measures.len() + 3).map(|_| "---".to_string()));
    out += "\n";
    for p in &points {
        for &i in &p.rows {
            out += &markdown_row(
                [p.label.clone(), table.rows[i][seed].clone()]
                    .into_iter()
                    .chain(
                        measures
                            .iter()
                            .enumerate()
                            .map(|(j, m)| fmt_value(all[i][j], m.signed)),
                    )
                    .chain([table.rows[i][run].clone()]),
            );
            out += "\n";
        }
    }
    Ok(out)
}
