//! Grouping faces by who they look like: average-linkage clustering of embeddings, used by
//! `facegate cluster` (photos) and the web console's review of unknown faces.

use crate::vision::embed::Embedding;

/// Average-linkage agglomerative clustering: merge the two closest groups while their mean
/// pairwise distance is under `threshold`. Average linkage does not chain strangers together
/// through look-alikes the way single linkage does.
pub fn cluster_embeddings(
    e: &[Embedding],
    threshold: f32,
    distance: impl Fn(&Embedding, &Embedding) -> f32,
) -> Vec<Vec<usize>> {
    let n = e.len();
    let mut d = vec![vec![0f32; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let v = distance(&e[i], &e[j]);
            d[i][j] = v;
            d[j][i] = v;
        }
    }
    let mut groups: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    loop {
        let mut best = (f32::INFINITY, 0, 0);
        for a in 0..groups.len() {
            for b in a + 1..groups.len() {
                let sum: f32 = groups[a]
                    .iter()
                    .flat_map(|&i| groups[b].iter().map(move |&j| (i, j)))
                    .map(|(i, j)| d[i][j])
                    .sum();
                let avg = sum / (groups[a].len() * groups[b].len()) as f32;
                if avg < best.0 {
                    best = (avg, a, b);
                }
            }
        }
        if best.0 > threshold {
            break;
        }
        let merged = groups.remove(best.2);
        groups[best.1].extend(merged);
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_separate_groups_and_do_not_chain() {
        let pts = [0.0f32, 0.1, 0.2, 5.0, 5.1, 10.0];
        let e: Vec<Embedding> = pts.iter().map(|&x| Embedding(vec![x])).collect();
        let g = cluster_embeddings(&e, 0.6, |a, b| (a.0[0] - b.0[0]).abs());
        let mut sets: Vec<Vec<usize>> = g
            .into_iter()
            .map(|mut v| {
                v.sort();
                v
            })
            .collect();
        sets.sort();
        assert_eq!(sets, vec![vec![0, 1, 2], vec![3, 4], vec![5]]);
        // A chain of look-alikes 0.5 apart spans 2.0: average linkage stops before joining its ends.
        let chain: Vec<Embedding> = (0..5).map(|i| Embedding(vec![i as f32 * 0.5])).collect();
        let g = cluster_embeddings(&chain, 0.6, |a, b| (a.0[0] - b.0[0]).abs());
        assert!(g.len() > 1, "{g:?}");
    }
}
