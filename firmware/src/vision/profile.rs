//! Per-operator timing of a network as facegate's loader plans it (its PReLU rewrite, tract's
//! optimiser), to see where an embedder's time goes and what tract's optimiser left behind.

use super::net::{self, ShapedNet};
use crate::vision::models::ModelError;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};
use tract_onnx::tract_hir::infer::Factoid;

/// The time one node of the optimised plan took, summed over the timed runs.
#[derive(Debug, Clone)]
pub struct NodeTime {
    /// The node's name in the optimised model.
    pub name: String,
    /// The operator's kind (tract's name for it, e.g. `Conv`, `OptMatMul`).
    pub op: String,
    /// The operator with its parameters, as tract prints it.
    pub info: String,
    /// Its output shapes and types.
    pub output: String,
    /// Total time over the timed runs.
    pub total: Duration,
}

/// Per-node times of one network, in plan order.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Timed runs (after the warm-up runs).
    pub runs: usize,
    /// Wall time of the timed runs, including what lies between nodes.
    pub wall: Duration,
    /// One entry per node the plan evaluates.
    pub nodes: Vec<NodeTime>,
}

impl Profile {
    /// Mean time per run of every node kind, largest first, with the node count of each kind.
    pub fn by_op(&self) -> Vec<(String, usize, Duration)> {
        let mut kinds: HashMap<&str, (usize, Duration)> = HashMap::new();
        for n in &self.nodes {
            let e = kinds.entry(n.op.as_str()).or_default();
            e.0 += 1;
            e.1 += n.total;
        }
        let runs = self.runs.max(1) as u32;
        let mut v: Vec<_> = kinds
            .into_iter()
            .map(|(k, (count, total))| (k.to_owned(), count, total / runs))
            .collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        v
    }

    /// Mean time per run of the nodes, summed (the wall time less the plan's own overhead).
    pub fn nodes_per_run(&self) -> Duration {
        self.nodes.iter().map(|n| n.total).sum::<Duration>() / self.runs.max(1) as u32
    }
}

/// Loads the ONNX network `bytes` (named `file` in errors) at input `shape` (default: the
/// file's own, which must then be fixed), runs it `warmup` times untimed and `runs` times timed
/// on deterministic pseudo-random input in 0..255, and times each node of the optimised plan.
pub fn profile_onnx(
    bytes: &[u8],
    file: &str,
    shape: Option<&[usize]>,
    warmup: usize,
    runs: usize,
) -> Result<Profile, ModelError> {
    let err = |e: TractError| net::net_error(file, e);
    let model = net::parse(bytes, file)?;
    let shape: Vec<usize> = match shape {
        Some(s) => s.to_vec(),
        None => model
            .input_fact(0)
            .ok()
            .and_then(|f| f.shape.concretize())
            .and_then(|dims| {
                dims.iter()
                    .map(|d| d.to_i64().ok().and_then(|v| usize::try_from(v).ok()))
                    .collect()
            })
            .ok_or_else(|| ModelError::Network {
                file: file.to_owned(),
                message: "the input shape is not fixed in the file: give one".into(),
            })?,
    };
    let shape = &shape[..];
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims: Vec<&str> = dims.iter().map(|s| s.as_str()).collect();
    let plan = ShapedNet::new(model, &dims, 1, file)?.plan(&[])?;
    // Deterministic, image-like input: timing must not depend on a photo being at hand.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 256) as f32
        })
        .collect();
    let input: TValue = Tensor::from_shape(shape, &data).map_err(err)?.into();
    let model = plan.model();
    let mut totals = vec![Duration::ZERO; model.nodes().len()];
    let mut state = SimpleState::new(&plan).map_err(err)?;
    for _ in 0..warmup {
        state.run(tvec!(input.clone())).map_err(err)?;
    }
    let start = Instant::now();
    for _ in 0..runs {
        state
            .run_plan_with_eval(tvec!(input.clone()), |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let r = eval(ctx, op_state, node, inputs);
                totals[node.id] += t.elapsed();
                r
            })
            .map_err(err)?;
    }
    let wall = start.elapsed();
    let nodes = plan
        .order_without_consts()
        .iter()
        .map(|&id| {
            let node = model.node(id);
            let info = node.op().info().map(|i| i.join("; ")).unwrap_or_default();
            NodeTime {
                name: node.name.clone(),
                op: node.op().name().to_string(),
                info,
                output: node
                    .outputs
                    .iter()
                    .map(|o| format!("{:?}", o.fact))
                    .collect::<Vec<_>>()
                    .join(", "),
                total: totals[id],
            }
        })
        .collect();
    Ok(Profile { runs, wall, nodes })
}
