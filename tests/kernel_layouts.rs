//! Every kernel family's uniform `Params`: the Rust declaration (`uniform!`) against the WGSL
//! struct bound at `@group(0) @binding(0)`, reflected with naga (the parser wgpu itself uses).
//!
//! The two are written by hand in two languages; a field added, moved or retyped on one side
//! only would otherwise be noticed only where a kernel test happens to exercise it (or not at
//! all, for a field read on one backend only). This runs on the host, with no device, so a drift
//! fails on every backend CI tests.

use std::collections::BTreeMap;

use hypermod::gpu::{Shader, UniformField, UniformLayout, KERNEL_STORAGE_BUFFERS};
use hypermod::ops::SHADERS;

/// A WGSL struct member: name, byte offset, size and type as WGSL spells it.
#[derive(Debug, Clone)]
struct WgslField {
    name: String,
    offset: usize,
    size: usize,
    ty: String,
}

/// The struct bound as `var<uniform>` at group 0, binding 0 of `source`: its name, members and
/// size.
fn uniform_struct(source: &str) -> Result<(String, Vec<WgslField>, usize), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .map_err(|e| format!("layout: {e}"))?;
    let global = module
        .global_variables
        .iter()
        .map(|(_, g)| g)
        .find(|g| {
            g.space == naga::AddressSpace::Uniform
                && g.binding
                    .as_ref()
                    .is_some_and(|b| b.group == 0 && b.binding == 0)
        })
        .ok_or("no `var<uniform>` at @group(0) @binding(0)")?;
    let ty = &module.types[global.ty];
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        return Err("the uniform at binding 0 is not a struct".into());
    };
    let fields = members
        .iter()
        .map(|m| WgslField {
            name: m.name.clone().unwrap_or_default(),
            offset: m.offset as usize,
            size: layouter[m.ty].size as usize,
            ty: type_name(&module.types[m.ty].inner),
        })
        .collect();
    Ok((ty.name.clone().unwrap_or_default(), fields, *span as usize))
}

/// `u32`, `f32`, `i32`, `vec4<f32>`, ... as the Rust side writes scalars.
fn type_name(inner: &naga::TypeInner) -> String {
    fn scalar(s: &naga::Scalar) -> String {
        let kind = match s.kind {
            naga::ScalarKind::Uint => "u",
            naga::ScalarKind::Sint => "i",
            naga::ScalarKind::Float => "f",
            naga::ScalarKind::Bool => "bool",
            _ => "?",
        };
        format!("{kind}{}", s.width as u32 * 8)
    }
    match inner {
        naga::TypeInner::Scalar(s) => scalar(s),
        naga::TypeInner::Vector { size, scalar: s } => format!("vec{}<{}>", *size as u8, scalar(s)),
        other => format!("{other:?}"),
    }
}

fn is_padding(name: &str) -> bool {
    name.starts_with('_')
}

/// Every disagreement between the Rust layout and the WGSL struct. Padding (fields named `_…`)
/// may be named and split differently on the two sides; every other field must have the same
/// name, offset, size and scalar type, and the structs the same size.
fn layout_problems(rust: &UniformLayout, wgsl: &[WgslField], wgsl_size: usize) -> Vec<String> {
    let mut problems = Vec::new();
    if rust.size != wgsl_size {
        problems.push(format!(
            "size: Rust {} bytes, WGSL {wgsl_size} bytes",
            rust.size
        ));
    }
    let rust_named: BTreeMap<&str, &UniformField> = rust
        .fields
        .iter()
        .filter(|f| !is_padding(f.name))
        .map(|f| (f.name, f))
        .collect();
    let wgsl_named: BTreeMap<&str, &WgslField> = wgsl
        .iter()
        .filter(|f| !is_padding(&f.name))
        .map(|f| (f.name.as_str(), f))
        .collect();
    for (name, r) in &rust_named {
        match wgsl_named.get(name) {
            None => problems.push(format!(
                "`{name}` is in Rust (offset {}) but not in WGSL",
                r.offset
            )),
            Some(w) => {
                if r.offset != w.offset {
                    problems.push(format!(
                        "`{name}`: Rust offset {}, WGSL offset {}",
                        r.offset, w.offset
                    ));
                }
                if r.size != w.size || r.ty != w.ty {
                    problems.push(format!(
                        "`{name}`: Rust `{}` ({} bytes), WGSL `{}` ({} bytes)",
                        r.ty, r.size, w.ty, w.size
                    ));
                }
            }
        }
    }
    for (name, w) in &wgsl_named {
        if !rust_named.contains_key(name) {
            problems.push(format!(
                "`{name}` is in WGSL (offset {}) but not in Rust",
                w.offset
            ));
        }
    }
    problems
}

fn check(shader: &Shader) -> Vec<String> {
    match uniform_struct(shader.source) {
        Err(e) => vec![format!("{}: {e}", shader.name)],
        Ok((_, fields, size)) => layout_problems(&shader.params, &fields, size)
            .into_iter()
            .map(|p| format!("{} (`{}`): {p}", shader.name, shader.params.name))
            .collect(),
    }
}

#[test]
fn every_family_params_matches_its_wgsl_struct() {
    let problems: Vec<String> = SHADERS.iter().flat_map(|s| check(s)).collect();
    assert!(
        problems.is_empty(),
        "Rust `Params` and WGSL disagree:\n  {}",
        problems.join("\n  ")
    );
}

/// Every WGSL file that binds a uniform is a registered family (so a new family cannot miss the
/// check above); the rest are pieces prepended to families (activation, Philox, ...).
#[test]
fn every_wgsl_file_with_a_uniform_is_a_registered_family() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut missing = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("var<uniform>") {
            continue;
        }
        seen += 1;
        let stem = path.file_stem().unwrap().to_str().unwrap();
        if !SHADERS
            .iter()
            .any(|s| s.name == stem && s.source.contains(&text))
        {
            missing.push(stem.to_string());
        }
    }
    assert!(
        seen >= SHADERS.len(),
        "only {seen} WGSL files bind a uniform"
    );
    assert!(
        missing.is_empty(),
        "WGSL files with a uniform `Params` but no entry in hypermod::ops::SHADERS: {missing:?}"
    );
}

fn gemm() -> &'static Shader {
    SHADERS.iter().find(|s| s.name == "gemm").unwrap()
}

/// The check itself catches a drift: a Rust field moved by 4 bytes, a WGSL struct with two
/// fields swapped, and a WGSL field retyped.
#[test]
fn a_shifted_or_retyped_field_fails_the_check() {
    let shader = gemm();
    assert!(check(shader).is_empty());
    let (_, wgsl, size) = uniform_struct(shader.source).unwrap();

    // Rust side: `k` four bytes later.
    let mut fields: Vec<UniformField> = shader.params.fields.to_vec();
    let k = fields.iter().position(|f| f.name == "k").unwrap();
    fields[k].offset += 4;
    let shifted = UniformLayout {
        fields: Box::leak(fields.into_boxed_slice()),
        ..shader.params
    };
    let problems = layout_problems(&shifted, &wgsl, size);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("`k`: Rust offset 12, WGSL offset 8"),
        "{problems:?}"
    );

    // WGSL side: `m` and `n` swapped.
    let swapped = shader
        .source
        .replacen("m: u32, n: u32,", "n: u32, m: u32,", 1);
    assert_ne!(
        swapped, shader.source,
        "the gemm struct's first line moved; update the test"
    );
    let (_, wgsl, size) = uniform_struct(&swapped).unwrap();
    let problems = layout_problems(&shader.params, &wgsl, size);
    assert_eq!(problems.len(), 2, "{problems:?}");

    // WGSL side: `alpha` an integer.
    let retyped = shader.source.replacen("alpha: f32,", "alpha: u32,", 1);
    let (_, wgsl, size) = uniform_struct(&retyped).unwrap();
    let problems = layout_problems(&shader.params, &wgsl, size);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("`alpha`: Rust `f32`"), "{problems:?}");
}

/// Storage buffers a shader binds (its module-level `var<storage>` globals: at least what any of
/// its entry points binds).
fn storage_buffers(source: &str) -> Result<u32, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    Ok(module
        .global_variables
        .iter()
        .filter(|(_, g)| matches!(g.space, naga::AddressSpace::Storage { .. }))
        .count() as u32)
}

/// The storage buffers the device requests ([`KERNEL_STORAGE_BUFFERS`], above WebGPU's default
/// of 8) are exactly what the most demanding kernel binds: no kernel needs more than the device
/// asks for, and the device asks for no more than a kernel needs.
#[test]
fn the_requested_storage_buffers_are_what_the_kernels_bind() {
    let mut counts: Vec<(u32, &str)> = SHADERS
        .iter()
        .map(|s| (storage_buffers(s.source).unwrap(), s.name))
        .collect();
    counts.sort();
    let (most, name) = *counts.last().unwrap();
    assert_eq!(
        most, KERNEL_STORAGE_BUFFERS,
        "{name} binds {most} storage buffers; the device requests {KERNEL_STORAGE_BUFFERS}: \
         {counts:?}"
    );
    let above: Vec<_> = counts
        .iter()
        .filter(|(n, _)| *n > wgpu::Limits::default().max_storage_buffers_per_shader_stage)
        .collect();
    // Named here so that the families a browser must grant more than the default are known.
    assert_eq!(
        above,
        [&(9, "layernorm_tangent"), &(10, "adamw")],
        "families above WebGPU's default of 8 storage buffers"
    );
}
