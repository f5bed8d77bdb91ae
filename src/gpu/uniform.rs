//! A kernel family's uniform `Params` struct, declared once in Rust with [`uniform!`](crate::uniform!) and
//! mirrored by the WGSL struct bound at `@binding(0)`.
//!
//! The WGSL side cannot be generated from the Rust one without giving up readable shaders, so the
//! two are written twice; what keeps them equal is the layout each declaration records here.
//! [`uniform!`](crate::uniform!) derives a [`UniformLayout`] (every field's name, byte offset, size and Rust type)
//! from the struct itself, [`Shader::params`](crate::gpu::Shader::params) names the family's
//! layout, `tests/kernel_layouts.rs` reflects every WGSL `Params` with naga and compares it
//! field by field on every backend, and [`Device::dispatch`](crate::gpu::Device::dispatch) refuses
//! parameters of another layout than the shader's.

/// One field of a uniform struct as Rust lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniformField {
    /// The field's name. Names starting with `_` are padding: the WGSL struct may name its
    /// padding differently (`_pad: [u32; 2]` in Rust, `_pad0: u32, _pad1: u32` in WGSL).
    pub name: &'static str,
    /// Byte offset from the start of the struct.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// The Rust type as written (`u32`, `f32`, `i32`, `[u32; 2]`).
    pub ty: &'static str,
}

/// The byte layout of a `#[repr(C)]` uniform struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniformLayout {
    /// The Rust struct's name (for messages).
    pub name: &'static str,
    /// `size_of` the struct.
    pub size: usize,
    /// Its fields in declaration order.
    pub fields: &'static [UniformField],
}

/// A plain-old-data struct uploaded as a kernel's uniform `Params`; implement it with
/// [`uniform!`](crate::uniform!), never by hand.
pub trait Uniform: bytemuck::Pod {
    /// The struct's layout, derived from its declaration.
    const LAYOUT: UniformLayout;
}

/// Declares a kernel's uniform parameter struct: `#[repr(C)]`, `Pod`, and its [`Uniform`]
/// layout derived from the same field list (so the layout can never disagree with the struct).
///
/// ```ignore
/// uniform! {
///     /// Parameters of `shaders/foo.wgsl`.
///     pub(crate) struct Params {
///         pub(crate) n: u32,
///         pub(crate) scale: f32,
///         pub(crate) _pad: [u32; 2],
///     }
/// }
/// ```
#[macro_export]
macro_rules! uniform {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty ),*
        }

        impl $crate::gpu::Uniform for $name {
            const LAYOUT: $crate::gpu::UniformLayout = $crate::gpu::UniformLayout {
                name: stringify!($name),
                size: ::std::mem::size_of::<$name>(),
                fields: &[
                    $( $crate::gpu::UniformField {
                        name: stringify!($field),
                        offset: ::std::mem::offset_of!($name, $field),
                        size: ::std::mem::size_of::<$ty>(),
                        ty: stringify!($ty),
                    } ),*
                ],
            };
        }
    };
}
