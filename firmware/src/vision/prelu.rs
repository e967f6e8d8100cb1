//! PReLU with one slope per channel as a single in-place pass, for tract plans on x86.
//!
//! tract 0.23.9 runs `max(x, 0) + slope * min(x, 0)` as two element-wise passes, and its pass
//! with the per-channel broadcast `Mul` is slow: SFace's 27 PReLUs took 26% of its embedding
//! (`profile_model`). One pass that scales the negative values in place does the same arithmetic.

use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::{
    AxesMapping, AxisChangeConsequence, AxisOp, EvalContext, EvalOp, InOut, Op, StaticName, TypedOp,
};

/// `x` where `x >= 0`, else `x * slopes[c]`, `c` the index along `axis` (one slope: all of `x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChannelPrelu {
    /// The channel axis of the input.
    pub(crate) axis: usize,
    /// f32 slopes, one per channel, or a single one for every value.
    pub(crate) slopes: Arc<Tensor>,
}

impl ChannelPrelu {
    /// The op for input `x` and a constant `slope` broadcast onto it the ONNX way (aligned to
    /// the right), if the slope varies along at most one axis of an f32 input.
    pub(crate) fn for_inputs(x: &TypedFact, slope: &TypedFact) -> Option<Self> {
        let konst = slope.konst.as_ref()?;
        if x.datum_type != f32::datum_type() || konst.datum_type() != f32::datum_type() {
            return None;
        }
        let (rank, srank) = (x.rank(), konst.rank());
        if rank == 0 || srank > rank {
            return None;
        }
        let varying: Vec<usize> = (0..srank).filter(|&i| konst.shape()[i] != 1).collect();
        let slopes = Arc::new(konst.as_ref().clone().into_shape(&[konst.len()]).ok()?);
        match varying[..] {
            // One slope for all: chunks along axis 0 all use it.
            [] => Some(Self { axis: 0, slopes }),
            [i] => {
                let axis = rank - srank + i;
                (x.shape[axis].to_i64().ok()? == konst.shape()[i] as i64)
                    .then_some(Self { axis, slopes })
            }
            _ => None,
        }
    }
}

impl Op for ChannelPrelu {
    fn name(&self) -> StaticName {
        "ChannelPrelu".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "axis: {}, {} slope(s)",
            self.axis,
            self.slopes.len()
        )])
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for ChannelPrelu {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(x) = inputs.into_iter().next() else {
            return Err(TractError::msg("ChannelPrelu needs one input"));
        };
        // In place when this node is the value's only reader (the usual case).
        let mut t = x.into_tensor();
        let inner: usize = t.shape()[self.axis + 1..].iter().product();
        let slopes = self.slopes.try_as_plain_ram()?;
        let slopes = slopes.as_slice::<f32>()?;
        let mut view = t.try_as_plain_ram_mut()?;
        let data = view.as_slice_mut::<f32>()?;
        if inner > 0 {
            for (ix, block) in data.chunks_exact_mut(inner).enumerate() {
                let s = slopes[ix % slopes.len()];
                for v in block {
                    // The same arithmetic as max(x, 0) + s * min(x, 0); a select with an
                    // unconditional store, so it vectorises and has no branch to mispredict.
                    let x = *v;
                    *v = if x < 0.0 { x * s } else { x };
                }
            }
        }
        Ok(tvec!(t.into_tvalue()))
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(self.eval(&EvalContext::out_of_plan(), inputs)?))
    }
}

impl TypedOp for ChannelPrelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    fn axes_mapping(
        &self,
        inputs: &[&TypedFact],
        outputs: &[&TypedFact],
    ) -> TractResult<AxesMapping> {
        AxesMapping::natural(inputs, outputs)
    }

    // Lets tract move axes (e.g. drop the batch axis) across it, as across any element-wise op.
    fn change_axes(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        _io: InOut,
        change: &AxisOp,
    ) -> TractResult<Option<AxisChangeConsequence>> {
        Ok(change.transform_axis(self.axis).map(|axis| {
            AxisChangeConsequence::new(
                model,
                node,
                Some(Box::new(Self {
                    axis,
                    ..self.clone()
                })),
                change,
            )
        }))
    }

    tract_onnx::tract_core::as_op!();
}

#[cfg(test)]
mod tests {
    use crate::vision::models::ModelSet;
    use crate::vision::net::{parse, ShapedNet};
    use tract_onnx::prelude::*;

    /// SFace's 27 PReLUs all take the one-pass op on x86 (per-channel slopes on NCHW maps), its 4
    /// stride-2 depthwise convs the vectorised op, the int8 form's 14 quantisers the vectorised
    /// one, and each form's embedding is the one stock tract gives (its own PRelu, Conv and
    /// QuantizeLinear).
    #[test]
    fn sface_runs_the_fast_ops_with_the_same_embedding() {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
        let models = ModelSet::from_manifest(std::path::Path::new(manifest)).unwrap();
        for (name, quantizers) in [("sface_2021dec_f32", 0), ("sface_2021dec_int8", 14)] {
            let spec = &models.manifest.embedders[name];
            let bytes = models.read(&spec.file, &spec.sha256).unwrap();
            // `fixed`, as the embedder loads it.
            let ours = ShapedNet::fixed(
                parse(&bytes, &spec.file).unwrap(),
                &["1", "3", "112", "112"],
                &spec.file,
            )
            .unwrap()
            .plan(&[])
            .unwrap();
            let kinds: Vec<String> = ours
                .model()
                .nodes()
                .iter()
                .map(|n| n.op().name().to_string())
                .collect();
            let count = |k: &str| kinds.iter().filter(|n| *n == k).count();
            // The one-pass PReLU is wired on x86 only (see net.rs).
            let x86 = cfg!(target_arch = "x86_64");
            assert_eq!(count("ChannelPrelu"), if x86 { 27 } else { 0 }, "{name}");
            assert_eq!(count("QuantizeI8"), quantizers, "{name}");
            assert_eq!(count("Stride2Depthwise"), 4, "{name}");
            if x86 {
                assert!(
                    !kinds.iter().any(|k| k.contains("Min") || k.contains("Max")),
                    "{name}: {kinds:?}"
                );
            }
            let stock = tract_onnx::onnx()
                .model_for_read(&mut std::io::Cursor::new(&bytes[..]))
                .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, 112, 112]).into()))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .unwrap();
            let input: Tensor =
                tract_ndarray::Array4::from_shape_fn((1, 3, 112, 112), |(_, c, y, x)| {
                    ((c * 89 + y * 13 + x * 7) % 256) as f32
                })
                .into();
            let a = ours.run(tvec!(input.clone().into())).unwrap();
            let b = stock.run(tvec!(input.into())).unwrap();
            let a = a[0].to_plain_array_view::<f32>().unwrap();
            let b = b[0].to_plain_array_view::<f32>().unwrap();
            assert_eq!(a.shape(), b.shape());
            // The same arithmetic in the same order: the same bits.
            assert_eq!(a, b, "{name}");
        }
    }
}
