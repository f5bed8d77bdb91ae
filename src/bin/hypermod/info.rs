//! `hypermod info`: which device runs, why, and its limits and features.

use anyhow::Result;
use hypermod::gpu::{list_adapters, Device};

pub(crate) fn info(json: bool) -> Result<()> {
    let gpu = Device::new()?;
    let r = gpu.report();
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("hypermod {}", env!("CARGO_PKG_VERSION"));
    println!("device:       {}", r.name);
    println!("chosen:       {}", r.selection);
    println!("backend:      {}", r.backend);
    println!("device type:  {}", r.device_type);
    println!("driver:       {} ({})", r.driver, r.driver_info);
    println!(
        "subgroups:    {}..{} invocations",
        r.subgroup_size.0, r.subgroup_size.1
    );
    let l = &r.limits;
    println!("limits:");
    println!(
        "  max_storage_buffer_binding_size      {} MiB",
        l.max_storage_buffer_binding_size >> 20
    );
    println!(
        "  max_buffer_size                      {} MiB",
        l.max_buffer_size >> 20
    );
    println!(
        "  max_compute_workgroup_storage_size   {} KiB",
        l.max_compute_workgroup_storage_size >> 10
    );
    println!(
        "  max_compute_invocations_per_workgroup {}",
        l.max_compute_invocations_per_workgroup
    );
    println!(
        "  max_compute_workgroups_per_dimension {}",
        l.max_compute_workgroups_per_dimension
    );
    println!(
        "  max_storage_buffers_per_shader_stage {}",
        l.max_storage_buffers_per_shader_stage
    );
    let on = |b: bool| if b { "on" } else { "off" };
    println!("features:");
    println!("  timestamp_query  {}", on(r.features.timestamp_query));
    println!("  subgroup         {}", on(r.features.subgroup));
    println!("  shader_f16       {}", on(r.features.shader_f16));
    let all = list_adapters();
    println!("wgpu adapters seen ({}):", all.len());
    for a in all {
        println!("  {} ({:?}, {:?})", a.name, a.backend, a.device_type);
    }
    Ok(())
}
