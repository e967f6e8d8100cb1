//! Loading ONNX networks into tract plans once, at the shapes they will run at.

use crate::vision::models::{ModelError, ModelSet};
use prost::Message;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::{
    check_input_arity, check_output_arity, expand, AxisOp, Expansion, InferenceResult, Solver,
    StaticName, TensorProxy,
};
use tract_onnx::tract_hir::tract_core::ops::math::{add, max, min, mul};

/// An optimised, runnable tract plan.
pub(crate) type Plan = Arc<TypedRunnableModel>;

/// Reads model file `file` of `models` (checksum verified) into tract's inference model, with
/// as few copies of its weights alive at once as tract allows: the file's bytes go as soon as
/// the protobuf is decoded (a file read from disk is freed; the pages of one compiled into the
/// binary are handed back to the kernel), the protobuf once the model is built.
pub(crate) fn load(
    models: &ModelSet,
    file: &str,
    sha256: &str,
) -> Result<InferenceModel, ModelError> {
    let bytes = models.read(file, sha256)?;
    let proto = decode(&bytes, file)?;
    match bytes {
        Cow::Borrowed(compiled_in) => {
            crate::memory::release_static(compiled_in);
        }
        Cow::Owned(read) => drop(read),
    }
    build(&proto, file)
}

/// Parses an ONNX file into tract's inference model.
pub(crate) fn parse(bytes: &[u8], file: &str) -> Result<InferenceModel, ModelError> {
    build(&decode(bytes, file)?, file)
}

/// The ONNX protobuf, decoded straight from `bytes` (tract's own readers copy them first).
fn decode(bytes: &[u8], file: &str) -> Result<tract_onnx::pb::ModelProto, ModelError> {
    tract_onnx::pb::ModelProto::decode(bytes).map_err(|e| net_error(file, e))
}

fn build(proto: &tract_onnx::pb::ModelProto, file: &str) -> Result<InferenceModel, ModelError> {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register
        .insert("PRelu", |_, _| Ok((expand(Prelu), vec![])));
    onnx.model_for_proto_model(proto)
        .map_err(|e| net_error(file, e))
}

/// ONNX `PRelu` wired as one pass ([`super::prelu::ChannelPrelu`]) on x86 when its slope is a
/// constant per channel (every network here), else as `max(x, 0) + slope * min(x, 0)`.
///
/// tract 0.23 wires it as `select(x < 0, x * slope, x)`, and its select has no vectorised
/// kernel; these four operations all do (MTCNN's three networks run 15-45% faster, measured),
/// but take two passes, one slow (SFace: 26% of its time).
#[derive(Debug, Clone, Hash)]
struct Prelu;

impl Expansion for Prelu {
    fn name(&self) -> StaticName {
        "Prelu".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let x = inputs[0];
        // x86 only: there the one pass took SFace's PReLUs from 9.8 to 1.6 ms (profile_model),
        // but on aarch64 it made SFace's embedding 19-36% more instructions (QEMU counts, A72 and
        // A76, docs/performance.md "Where the embedder's time goes"): tract fuses the four ops
        // there.
        if cfg!(target_arch = "x86_64") {
            if let Some(op) = super::prelu::ChannelPrelu::for_inputs(
                model.outlet_fact(x)?,
                model.outlet_fact(inputs[1])?,
            ) {
                return model.wire_node(name, op, &[x]);
            }
        }
        let mut slope = inputs[1];
        let rank = model.outlet_fact(x)?.rank();
        while model.outlet_fact(slope)?.rank() < rank {
            let r = model.outlet_fact(slope)?.rank();
            slope = model.wire_node(format!("{name}.slope-axis-{r}"), AxisOp::Add(0), &[slope])?[0];
        }
        let zero = tensor0(0.0f32)
            .cast_to_dt(model.outlet_fact(x)?.datum_type)?
            .into_owned()
            .broadcast_into_rank(rank)?;
        let zero = model.add_const(format!("{name}.zero"), zero)?;
        let pos = model.wire_node(format!("{name}.pos"), max(), &[x, zero])?[0];
        let neg = model.wire_node(format!("{name}.neg"), min(), &[x, zero])?[0];
        let neg = model.wire_node(format!("{name}.scaled"), mul(), &[neg, slope])?[0];
        model.wire_node(name, add(), &[pos, neg])
    }
}

/// Positions of the named outputs among the model's outputs, in the order asked.
pub(crate) fn output_positions(
    model: &InferenceModel,
    names: &[&str],
    file: &str,
) -> Result<Vec<usize>, ModelError> {
    let outlets = model.output_outlets().map_err(|e| net_error(file, e))?;
    names
        .iter()
        .map(|name| {
            outlets
                .iter()
                .position(|o| model.outlet_label(*o) == Some(*name))
                .ok_or_else(|| ModelError::Network {
                    file: file.to_owned(),
                    message: format!("the network has no output named {name:?}"),
                })
        })
        .collect()
}

/// Makes the 2-class face probability `name` an output of raw logits when it is produced by a
/// `Softmax` over the channel axis: tract 0.23 runs that softmax ~10x slower than the whole of
/// P-Net's convolutions, and a 2-way softmax is one subtraction and one exponential.
/// Returns whether the output now carries logits.
pub(crate) fn bypass_softmax(
    model: &mut InferenceModel,
    name: &str,
    file: &str,
) -> Result<bool, ModelError> {
    let outlets = model
        .output_outlets()
        .map_err(|e| net_error(file, e))?
        .to_vec();
    let Some(pos) = outlets
        .iter()
        .position(|o| model.outlet_label(*o) == Some(name))
    else {
        return Ok(false);
    };
    let node = &model.nodes()[outlets[pos].node];
    if node.op.name() != "Softmax" || node.inputs.len() != 1 {
        return Ok(false);
    }
    let mut new = outlets.clone();
    new[pos] = node.inputs[0];
    model
        .select_output_outlets(&new)
        .map_err(|e| net_error(file, e))?;
    Ok(true)
}

/// Probability of class 1 from two logits (a 2-way softmax).
pub(crate) fn softmax2(l0: f32, l1: f32) -> f32 {
    1.0 / (1.0 + (l0 - l1).exp())
}

/// A network typed once with symbolic dimensions, optimised per concrete shape on first use.
/// The cache keeps the plans of the most recent shapes, so a camera at a fixed size never
/// re-optimises and a batch of photos of assorted sizes stays bounded in memory. A clone shares
/// the typed model and the plans (tract runs a plan from several threads at once).
#[derive(Clone)]
pub(crate) struct ShapedNet {
    file: String,
    /// `None` for a network at one fixed shape once planned: the plan is all it needs.
    typed: Option<Arc<TypedModel>>,
    symbols: Vec<Symbol>,
    plans: HashMap<Vec<i64>, (Plan, u64)>,
    capacity: usize,
    tick: u64,
}

impl ShapedNet {
    /// Types `model` with input shape `shape`, where names in `symbolic` become symbols.
    pub(crate) fn new(
        model: InferenceModel,
        shape: &[&str],
        capacity: usize,
        file: &str,
    ) -> Result<Self, ModelError> {
        let err = |e| net_error(file, e);
        let mut symbols = Vec::new();
        let dims: TVec<TDim> = shape
            .iter()
            .map(|d| match d.parse::<i64>() {
                Ok(n) => TDim::from(n),
                Err(_) => {
                    let s = model.symbols.sym(d);
                    symbols.push(s.clone());
                    TDim::from(s)
                }
            })
            .collect();
        let typed = model
            .with_input_fact(0, f32::fact(dims).into())
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .and_then(|mut m| super::dwconv::swap_in(&mut m).map(|_| m))
            .map_err(err)?;
        Ok(Self {
            file: file.to_owned(),
            typed: Some(Arc::new(typed)),
            symbols,
            plans: HashMap::new(),
            capacity: capacity.max(1),
            tick: 0,
        })
    }

    /// A network at one fixed input shape (no symbols in `shape`), optimised now. Only the
    /// plan is kept: the typed model it came from would be a second copy of the weights
    /// (tract packs them anew for its kernels).
    pub(crate) fn fixed(
        model: InferenceModel,
        shape: &[&str],
        file: &str,
    ) -> Result<Self, ModelError> {
        let mut net = Self::new(model, shape, 1, file)?;
        if net.symbols.is_empty() {
            if let Some(typed) = net.typed.take() {
                let typed = Arc::try_unwrap(typed).unwrap_or_else(|shared| (*shared).clone());
                let plan = optimise(typed).map_err(|e| net_error(file, e))?;
                net.plans.insert(Vec::new(), (plan, 0));
            }
        }
        Ok(net)
    }

    /// The plan for the given values of the symbols (in the order they were named); with no
    /// values, one plan that keeps the symbols (e.g. a batch size chosen at run time).
    pub(crate) fn plan(&mut self, values: &[i64]) -> Result<Plan, ModelError> {
        self.tick += 1;
        if let Some((plan, used)) = self.plans.get_mut(values) {
            *used = self.tick;
            return Ok(plan.clone());
        }
        let subs: HashMap<Symbol, TDim> = self
            .symbols
            .iter()
            .cloned()
            .zip(values.iter().map(|v| TDim::from(*v)))
            .collect();
        let Some(typed) = &self.typed else {
            // Only a fixed network drops its typed model, and its one plan is always cached.
            return Err(net_error(&self.file, "no plan for this input shape"));
        };
        let typed = if subs.is_empty() {
            Ok((**typed).clone())
        } else {
            typed.set_symbols(&subs)
        };
        let plan = typed
            .and_then(optimise)
            .map_err(|e| net_error(&self.file, e))?;
        if self.plans.len() >= self.capacity {
            if let Some(oldest) = self
                .plans
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            {
                self.plans.remove(&oldest);
            }
        }
        self.plans
            .insert(values.to_vec(), (plan.clone(), self.tick));
        Ok(plan)
    }
}

/// A typed model optimised for this CPU, with tract's slow int8 quantiser swapped for ours,
/// made runnable: the one way every plan here is made.
fn optimise(typed: TypedModel) -> TractResult<Plan> {
    let mut m = typed.into_optimized()?;
    super::quantize::swap_in(&mut m)?;
    m.into_runnable()
}

/// Runs `plan` on one f32 tensor of `shape` and returns its outputs.
pub(crate) fn run(
    plan: &Plan,
    shape: &[usize],
    data: &[f32],
    file: &str,
) -> Result<TVec<TValue>, ModelError> {
    let input = Tensor::from_shape(shape, data).map_err(|e| net_error(file, e))?;
    plan.run(tvec!(input.into()))
        .map_err(|e| net_error(file, e))
}

/// A plain f32 view of output `ix`.
pub(crate) fn view<'a>(
    outputs: &'a TVec<TValue>,
    ix: usize,
    file: &str,
) -> Result<tract_ndarray::ArrayViewD<'a, f32>, ModelError> {
    outputs
        .get(ix)
        .ok_or_else(|| ModelError::Network {
            file: file.to_owned(),
            message: format!("missing output {ix}"),
        })?
        .to_plain_array_view::<f32>()
        .map_err(|e| net_error(file, e))
}

pub(crate) fn net_error(file: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Network {
        file: file.to_owned(),
        message: format!("{e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::models::ModelSet;

    /// The PReLU rewrite changes speed, not results: R-Net and O-Net (5 PReLUs each, per-channel
    /// and per-unit slopes, some negative, some above 1) give what tract's own `PRelu` gives.
    #[test]
    fn prelu_rewrite_gives_the_same_outputs_as_tracts_prelu() {
        let models = ModelSet::builtin().unwrap();
        let d = &models.manifest.detector;
        for (f, size) in [(&d.rnet, 24), (&d.onet, 48)] {
            let bytes = models.read(&f.file, &f.sha256).unwrap();
            let ours = parse(&bytes, &f.file).unwrap();
            let stock = tract_onnx::onnx()
                .model_for_read(&mut std::io::Cursor::new(&bytes[..]))
                .unwrap();
            let run = |m: InferenceModel, input: Tensor| {
                m.with_input_fact(0, f32::fact([2, 3, size, size]).into())
                    .and_then(|m| m.into_optimized())
                    .and_then(|m| m.into_runnable())
                    .and_then(|p| p.run(tvec!(input.into())))
                    .unwrap()
            };
            let input: Tensor =
                tract_ndarray::Array4::from_shape_fn((2, 3, size, size), |(n, c, y, x)| {
                    ((n * 31 + c * 17 + y * 7 + x * 3) % 23) as f32 / 11.0 - 1.0
                })
                .into();
            let (a, b) = (run(ours, input.clone()), run(stock, input));
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                let x = x.to_plain_array_view::<f32>().unwrap();
                let y = y.to_plain_array_view::<f32>().unwrap();
                assert_eq!(x.shape(), y.shape());
                for (p, q) in x.iter().zip(y.iter()) {
                    assert!(
                        (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                        "{}: {p} vs {q}",
                        f.file
                    );
                }
            }
        }
    }
}
