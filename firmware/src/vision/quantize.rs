//! ONNX `QuantizeLinear` to int8 as a branch-free pass that vectorises, swapped into optimised
//! tract plans: tract 0.23.9's rounds each value with branches (SFace int8: 14 of them, 16% of
//! its embedding in `profile_model`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::QuantizeLinearI8;
use tract_onnx::tract_hir::internal::{
    AxesMapping, AxisChangeConsequence, AxisOp, EvalContext, EvalOp, InOut, Op, StaticName, TypedOp,
};

/// `clamp(round_half_even(x * scale) + zero_point, -128, 127)`, f32 in, i8 out: what tract's
/// `QuantizeLinearI8` computes (`scale` is the reciprocal of ONNX's `y_scale`, as there).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QuantizeI8 {
    scale: f32,
    zero_point: i8,
}

impl Eq for QuantizeI8 {}

/// Replaces tract's f32 -> i8 `QuantizeLinearI8` nodes of an optimised model by [`QuantizeI8`].
pub(crate) fn swap_in(model: &mut TypedModel) -> TractResult<()> {
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(q) = node
            .op_as::<ElementWiseOp>()
            .and_then(|ew| ew.0.downcast_ref::<QuantizeLinearI8>())
        else {
            continue;
        };
        if node.inputs.len() != 1
            || model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type()
        {
            continue;
        }
        let op = QuantizeI8 {
            scale: q.scale,
            zero_point: q.zero_point,
        };
        model.node_mut(id).op = Box::new(op);
    }
    Ok(())
}

/// 1.5 * 2^23: adding it to an f32 of magnitude <= 2^22 rounds it to an integer, half to even
/// (the FPU's rounding mode), as tract's `round_ties_to_even` does.
const ROUND: f32 = 12_582_912.0;

impl Op for QuantizeI8 {
    fn name(&self) -> StaticName {
        "QuantizeI8".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "scale: {} zero_point: {}",
            self.scale, self.zero_point
        )])
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for QuantizeI8 {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(x) = inputs.first() else {
            return Err(TractError::msg("QuantizeI8 needs one input"));
        };
        let mut out = Tensor::zero::<i8>(x.shape())?;
        let xs = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut view = out.try_as_plain_ram_mut()?;
        let ys = view.as_slice_mut::<i8>()?;
        let zp = self.zero_point as i32;
        for (x, y) in xs.iter().zip(ys.iter_mut()) {
            // Anything past +-1024 saturates to -128 or 127 either way (|zero_point| <= 128);
            // within it, v + ROUND holds round(v) in its low mantissa bits, read as an integer
            // (no float-to-int conversion, so the loop vectorises). NaN gives the zero point,
            // as in tract.
            let v = x * self.scale;
            let c = v.clamp(-1024.0, 1024.0);
            let q = (c + ROUND).to_bits() as i32 - ROUND.to_bits() as i32;
            let q = if v.is_nan() { 0 } else { q };
            *y = (q + zp).clamp(-128, 127) as i8;
        }
        Ok(tvec!(out.into_tvalue()))
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(self.eval(&EvalContext::out_of_plan(), inputs)?))
    }
}

impl TypedOp for QuantizeI8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(i8::fact(inputs[0].shape.clone())))
    }

    fn axes_mapping(
        &self,
        inputs: &[&TypedFact],
        outputs: &[&TypedFact],
    ) -> TractResult<AxesMapping> {
        AxesMapping::natural(inputs, outputs)
    }

    fn change_axes(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        _io: InOut,
        change: &AxisOp,
    ) -> TractResult<Option<AxisChangeConsequence>> {
        Ok(Some(AxisChangeConsequence::new(model, node, None, change)))
    }

    tract_onnx::tract_core::as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::quant::quantize_linear_f32_i8;

    /// Every value tract's own quantiser sees gives the same int8: ties at every half step,
    /// both signs, saturation, NaN, for several zero points. (Past 2^31 tract's integer sum
    /// wraps, so values that large are left out: activations are nowhere near them.)
    #[test]
    fn quantizes_exactly_as_tract_does() {
        let mut xs: Vec<f32> = (-600..=600).map(|k| k as f32 * 0.25).collect();
        xs.extend([
            0.0,
            -0.0,
            1e6,
            -1e6,
            f32::NAN,
            127.49999,
            127.5,
            -128.5,
            -128.50002,
            0.49999997,
            -0.49999997,
            2.5,
            -2.5,
        ]);
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            xs.push(f32::from_bits(seed) % 300.0);
        }
        for (scale, zp) in [
            (1.0f32, 0i8),
            (0.37, -5),
            (13.1, 127),
            (2.0, -128),
            (0.5, 3),
        ] {
            let op = QuantizeI8 {
                scale,
                zero_point: zp,
            };
            let input = Tensor::from_shape(&[xs.len()], &xs).unwrap();
            let out = op
                .eval_out_of_plan(tvec!(input.into_tvalue()))
                .unwrap()
                .unwrap();
            let got = out[0]
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<i8>()
                .unwrap()
                .to_vec();
            for (x, y) in xs.iter().zip(got) {
                assert_eq!(
                    y,
                    quantize_linear_f32_i8(*x, scale, zp as i32),
                    "{x} at {scale}, {zp}"
                );
            }
        }
    }
}
