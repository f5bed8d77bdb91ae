//! `hypermod train`, `train --resume` and `sweep`: runs and sweeps into their directories.

use std::path::PathBuf;

use anyhow::{Context, Result};
use hypermod::experiments::ExperimentConfig;
use hypermod::gpu::Device;
use hypermod::sweep::Shard;

use crate::stoppable;

/// `runs/<file stem>-<unix time>`, the default run or sweep directory.
pub(crate) fn default_out(config: &std::path::Path) -> PathBuf {
    let stem = config.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{stem}-{secs}"))
}

pub(crate) fn run_sweep(
    sweep: PathBuf,
    out: Option<PathBuf>,
    overwrite: bool,
    shard: Option<Shard>,
) -> Result<()> {
    // Expanding validates every run's config before any GPU work starts.
    let (_, runs) = hypermod::sweep::expand(&sweep)?;
    let out = out.unwrap_or_else(|| match shard {
        // Shards started in the same second must not share a directory.
        Some(s) => {
            let mut d = default_out(&sweep).into_os_string();
            d.push(format!("-shard-{}", s.index));
            PathBuf::from(d)
        }
        None => default_out(&sweep),
    });
    hypermod::sweep::check_shard_dir(&sweep, &out, overwrite, shard)?;
    let gpu = Device::new()?;
    match shard {
        None => println!(
            "hypermod sweep {}: {} runs on {} → {}",
            sweep.display(),
            runs.len(),
            gpu.adapter_info().name,
            out.display()
        ),
        Some(s) => {
            let r = s.runs(runs.len());
            let which = if r.is_empty() {
                "no runs".to_string()
            } else {
                format!("runs {:03} to {:03}", r.start, r.end - 1)
            };
            println!(
                "hypermod sweep {}, shard {s}: {} of {} runs ({which}) on {} → {}",
                sweep.display(),
                r.len(),
                runs.len(),
                gpu.adapter_info().name,
                out.display()
            );
        }
    }
    let csv = stoppable(|| hypermod::sweep::run_sweep_shard(&gpu, &sweep, &out, overwrite, shard))?;
    match csv {
        Some(csv) => println!("wrote {}", csv.display()),
        None => println!("shard without runs (more shards than the sweep's runs): nothing to run"),
    }
    Ok(())
}

pub(crate) fn train(
    config: PathBuf,
    set: Vec<String>,
    out: Option<PathBuf>,
    overwrite: bool,
) -> Result<()> {
    // Config errors are reported before any GPU work starts, and so is a run in the way.
    let (cfg, table) = ExperimentConfig::load(&config, &set)?;
    let out = out.unwrap_or_else(|| default_out(&config));
    hypermod::run::check_fresh_run_dir(&out, overwrite)?;
    let resolved = toml::to_string(&table).context("serialising the resolved config")?;
    let gpu = Device::new()?;
    println!(
        "hypermod train {} on {}: {} → {}",
        config.display(),
        gpu.adapter_info().name,
        cfg.describe(),
        out.display()
    );
    let s = stoppable(|| cfg.train(&gpu, &resolved, &out, overwrite))?;
    println!("{}", s.json());
    Ok(())
}

pub(crate) fn resume_run(dir: PathBuf) -> Result<()> {
    let gpu = Device::new()?;
    println!(
        "hypermod train --resume {} on {}",
        dir.display(),
        gpu.adapter_info().name
    );
    let s = stoppable(|| hypermod::experiments::resume(&gpu, &dir))?;
    println!("{}", s.json());
    Ok(())
}
