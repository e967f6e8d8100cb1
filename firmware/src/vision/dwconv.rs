//! 3x3 stride-2 depthwise convolutions (NCHW or CHW, f32, padding 1) as a vectorisable op, swapped
//! into typed models before tract optimises them: tract 0.23.9 runs strided depthwise convs on
//! its scalar path (SFace: 4 of them, ~4 ms of its embedding in `profile_model`).

use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_hir::internal::{
    AxesMapping, EvalContext, EvalOp, Op, StaticName, TypedModelPatch, TypedOp,
};

/// `out[n, c, i, j] = bias[c] + sum over the 3x3 taps (a, b) inside the input of
/// w[c, a, b] * x[n, c, 2i + a - 1, 2j + b - 1]`, summed in tract's order (the bias, then the
/// taps row by row, a multiply then an add each), so the results are tract's to the bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stride2Depthwise {
    /// `[C, 9]` taps.
    kernel: Arc<Tensor>,
    /// `[C]` biases.
    bias: Arc<Tensor>,
}

/// Replaces every f32 NCHW 3x3 depthwise `Conv` with stride 2, padding 1 and constant kernel
/// and bias in `model` by [`Stride2Depthwise`].
pub(crate) fn swap_in(model: &mut TypedModel) -> TractResult<()> {
    let mut patches = Vec::new();
    for node in model.nodes() {
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        let ps = &conv.pool_spec;
        let c = ps.input_channels;
        let fits = conv.q_params.is_none()
            && matches!(ps.data_format, DataFormat::NCHW | DataFormat::CHW)
            && conv.kernel_fmt == KernelFormat::OIHW
            && conv.group == c
            && ps.output_channels == c
            && ps.kernel_shape[..] == [3, 3]
            && ps.strides.as_deref() == Some(&[2, 2][..])
            && ps.dilations.as_deref().is_none_or(|d| d == [1, 1])
            && matches!(&ps.padding, PaddingSpec::Explicit(b, a) if b[..] == [1, 1] && a[..] == [1, 1])
            && node.inputs.len() == 3;
        if !fits {
            continue;
        }
        let x = model.outlet_fact(node.inputs[0])?;
        let (Some(kernel), Some(bias)) = (
            model.outlet_fact(node.inputs[1])?.konst.clone(),
            model.outlet_fact(node.inputs[2])?.konst.clone(),
        ) else {
            continue;
        };
        let rank = if ps.data_format == DataFormat::NCHW {
            4
        } else {
            3
        };
        if x.datum_type != f32::datum_type()
            || x.rank() != rank
            || x.shape[rank - 2].to_i64().is_err()
            || x.shape[rank - 1].to_i64().is_err()
            || kernel.datum_type() != f32::datum_type()
            || kernel.shape() != [c, 1, 3, 3]
            || bias.datum_type() != f32::datum_type()
            || !(bias.len() == c || bias.len() == 1)
        {
            continue;
        }
        let bias = if bias.len() == c {
            bias.as_ref().clone().into_shape(&[c])?
        } else {
            let b = bias.try_as_plain_ram()?.as_slice::<f32>()?[0];
            Tensor::from_shape(&[c], &vec![b; c])?
        };
        let op = Stride2Depthwise {
            kernel: Arc::new(kernel.as_ref().clone().into_shape(&[c, 9])?),
            bias: Arc::new(bias),
        };
        patches.push(TypedModelPatch::replace_single_op(
            model,
            node,
            &[node.inputs[0]],
            op,
        )?);
    }
    for patch in patches {
        patch.apply(model)?;
    }
    if !model.nodes().is_empty() {
        model.compact()?;
    }
    Ok(())
}

impl Op for Stride2Depthwise {
    fn name(&self) -> StaticName {
        "Stride2Depthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} channels, 3x3, stride 2, pad 1",
            self.bias.len()
        )])
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

/// Output length of a stride-2, 3-tap, pad-1 axis of input length `n`.
fn out_len(n: usize) -> usize {
    n.div_ceil(2)
}

impl EvalOp for Stride2Depthwise {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Some(x) = inputs.first() else {
            return Err(TractError::msg("Stride2Depthwise needs one input"));
        };
        let (&[c, h, w], lead) = (
            &x.shape()[x.rank().max(3) - 3..],
            &x.shape()[..x.rank().max(3) - 3],
        ) else {
            return Err(TractError::msg(
                "Stride2Depthwise needs a CHW or NCHW input",
            ));
        };
        let (ho, wo) = (out_len(h), out_len(w));
        let mut shape: Vec<usize> = lead.to_vec();
        shape.extend([c, ho, wo]);
        let mut out = Tensor::zero::<f32>(&shape)?;
        let xs = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let taps = self.kernel.try_as_plain_ram()?.as_slice::<f32>()?;
        let bias = self.bias.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut view = out.try_as_plain_ram_mut()?;
        let ys = view.as_slice_mut::<f32>()?;
        // Each plane's even and odd columns apart, so every tap reads a contiguous run.
        let (we, wd) = (w.div_ceil(2), w / 2);
        let mut even = vec![0f32; h * we];
        let mut odd = vec![0f32; h * wd];
        for (plane, (xp, yp)) in xs
            .chunks_exact(h * w)
            .zip(ys.chunks_exact_mut(ho * wo))
            .enumerate()
        {
            let ch = plane % c;
            for r in 0..h {
                let row = &xp[r * w..(r + 1) * w];
                for (k, e) in even[r * we..(r + 1) * we].iter_mut().enumerate() {
                    *e = row[2 * k];
                }
                for (k, o) in odd[r * wd..(r + 1) * wd].iter_mut().enumerate() {
                    *o = row[2 * k + 1];
                }
            }
            let k = &taps[ch * 9..ch * 9 + 9];
            for (i, orow) in yp.chunks_exact_mut(wo).enumerate() {
                orow.fill(bias[ch]);
                for a in 0..3 {
                    // Input row 2i + a - 1; rows outside are padding, whose taps tract skips.
                    let Some(r) = (2 * i + a).checked_sub(1).filter(|&r| r < h) else {
                        continue;
                    };
                    let ev = &even[r * we..(r + 1) * we];
                    let od = &odd[r * wd..(r + 1) * wd];
                    // Column 2j - 1: odd column j - 1 (none for j = 0).
                    let (k0, k1, k2) = (k[a * 3], k[a * 3 + 1], k[a * 3 + 2]);
                    for (o, x) in orow.iter_mut().skip(1).zip(od) {
                        *o += k0 * x;
                    }
                    // Column 2j: even column j.
                    for (o, x) in orow.iter_mut().zip(ev) {
                        *o += k1 * x;
                    }
                    // Column 2j + 1: odd column j.
                    for (o, x) in orow.iter_mut().zip(od) {
                        *o += k2 * x;
                    }
                }
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(self.eval(&EvalContext::out_of_plan(), inputs)?))
    }
}

impl TypedOp for Stride2Depthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        let r = s.rank();
        if !(r == 3 || r == 4) {
            return Err(TractError::msg(
                "Stride2Depthwise needs a CHW or NCHW input",
            ));
        }
        let half = |d: &TDim| -> TractResult<TDim> { Ok(out_len(d.to_i64()? as usize).into()) };
        let mut dims: TVec<TDim> = s.iter().cloned().collect();
        dims[r - 2] = half(&s[r - 2])?;
        dims[r - 1] = half(&s[r - 1])?;
        Ok(tvec!(f32::fact(dims)))
    }

    fn axes_mapping(
        &self,
        inputs: &[&TypedFact],
        outputs: &[&TypedFact],
    ) -> TractResult<AxesMapping> {
        // Batch and channel pass through; the two spatial axes do not map one to one.
        AxesMapping::disconnected(inputs, outputs)
    }

    tract_onnx::tract_core::as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Odd and even sizes, with and without a batch axis: every output is the bias plus the
    /// taps inside the input, added in row order, the way tract's depthwise conv sums them.
    #[test]
    fn matches_the_direct_sum_at_every_size() {
        for (lead, c, h, w) in [(vec![], 3, 7, 5), (vec![1], 2, 8, 8), (vec![2], 1, 1, 2)] {
            let mut shape = lead.clone();
            shape.extend([c, h, w]);
            let len: usize = shape.iter().product();
            let xs: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let taps: Vec<f32> = (0..c * 9)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0)
                .collect();
            let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.3 - 0.1).collect();
            let op = Stride2Depthwise {
                kernel: Arc::new(Tensor::from_shape(&[c, 9], &taps).unwrap()),
                bias: Arc::new(Tensor::from_shape(&[c], &bias).unwrap()),
            };
            let x = Tensor::from_shape(&shape, &xs).unwrap();
            let out = op
                .eval_out_of_plan(tvec!(x.into_tvalue()))
                .unwrap()
                .unwrap();
            let (ho, wo) = (h.div_ceil(2), w.div_ceil(2));
            let mut want_shape = lead.clone();
            want_shape.extend([c, ho, wo]);
            assert_eq!(out[0].shape(), &want_shape[..]);
            let got = out[0]
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap()
                .to_vec();
            for plane in 0..len / (h * w) {
                let ch = plane % c;
                for i in 0..ho {
                    for j in 0..wo {
                        let mut acc = bias[ch];
                        for a in 0..3 {
                            for b in 0..3 {
                                let (r, col) = ((2 * i + a) as isize - 1, (2 * j + b) as isize - 1);
                                if r >= 0 && (r as usize) < h && col >= 0 && (col as usize) < w {
                                    let x = xs[plane * h * w + r as usize * w + col as usize];
                                    acc += taps[ch * 9 + a * 3 + b] * x;
                                }
                            }
                        }
                        assert_eq!(got[plane * ho * wo + i * wo + j], acc, "{shape:?} {i} {j}");
                    }
                }
            }
        }
    }
}
