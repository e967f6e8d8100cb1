//! Per-operator profile of an ONNX network as facegate runs it in tract: time per op kind and
//! the slowest nodes of the optimised plan, to find where an embedder's time goes.
//!
//! `cargo run --release -p facegate --example profile_model -- models/sface_2021dec_f32.onnx`
//! (`--help` for the options; one thread unless `--threads N`).

use anyhow::Context;
use clap::Parser;
use facegate::vision::profile::profile_onnx;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Per-operator profile of an ONNX network in tract")]
struct Args {
    /// The ONNX file.
    model: PathBuf,
    /// Input shape, e.g. 1,3,112,112 (default: the file's own).
    #[arg(long, value_delimiter = ',')]
    shape: Option<Vec<usize>>,
    /// Timed runs.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Network threads (tract's pool).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How many of the slowest nodes to list.
    #[arg(long, default_value_t = 15)]
    top: usize,
    /// Also list every node of the optimised plan, in order.
    #[arg(long)]
    nodes: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    facegate::cores::use_threads(args.threads);
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let file = args.model.display().to_string();
    let p = profile_onnx(
        &bytes,
        &file,
        args.shape.as_deref(),
        args.warmup,
        args.runs.max(1),
    )?;
    let runs = p.runs as u32;
    let per_run = p.nodes_per_run();
    println!(
        "{file}: {} nodes, {} thread(s), {} runs: {:.2} ms a run (nodes {:.2} ms)",
        p.nodes.len(),
        args.threads,
        p.runs,
        ms(p.wall / runs),
        ms(per_run)
    );
    println!("\n| op | nodes | ms a run | share |\n|---|---|---|---|");
    for (op, count, t) in p.by_op() {
        println!(
            "| {op} | {count} | {:.3} | {:.1}% |",
            ms(t),
            100.0 * t.as_secs_f64() / per_run.as_secs_f64()
        );
    }
    let mut slow: Vec<_> = p.nodes.iter().collect();
    slow.sort_by_key(|n| std::cmp::Reverse(n.total));
    println!("\n| node | op | ms a run | output |\n|---|---|---|---|");
    for n in slow.iter().take(args.top) {
        println!(
            "| {} | {} | {:.3} | {} |",
            n.name,
            n.op,
            ms(n.total / runs),
            n.output
        );
    }
    if args.nodes {
        println!("\nplan order:");
        for n in &p.nodes {
            println!(
                "{:8.3} ms  {:<20} {}  [{}]  -> {}",
                ms(n.total / runs),
                n.op,
                n.name,
                n.info,
                n.output
            );
        }
    }
    Ok(())
}
