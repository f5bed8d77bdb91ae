//! `cargo bench --bench kernels [-- tiny|quick|full]`: the kernel table of `hypermod bench kernels`
//! (same cases, same timing). The tiny table also runs as a test (`tests/cli.rs`).

use hypermod::bench::{kernel_cases, run_cases, table_row, BenchSize};
use hypermod::gpu::Device;

fn main() -> anyhow::Result<()> {
    let gpu = Device::new()?;
    let size = match std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .as_deref()
    {
        Some("tiny") => BenchSize::Tiny,
        Some("quick") => BenchSize::Quick,
        Some("full") => BenchSize::Full,
        Some("cpu") => BenchSize::Cpu,
        _ if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu => BenchSize::Quick,
        _ => BenchSize::Full,
    };
    println!(
        "{} ({:?}), {size:?}",
        gpu.adapter_info().name,
        gpu.adapter_info().backend
    );
    println!("{}", table_row(None));
    run_cases(&gpu, &kernel_cases(size), 3, 20, |r| {
        println!("{}", table_row(Some(r)))
    })?;
    Ok(())
}
