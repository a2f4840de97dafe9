//! Choosing the similarity and scoring parameters on a validation split.
//!
//! The evaluation protocol's split is applied once to the data (its test part is never
//! looked at), then again to the training part: the model is fitted on what is left and
//! scored on the held-out part of the training data, the validation set. Every setting of a
//! small grid is tried; the one with the best validation NDCG@10 is chosen (ties: the first
//! tried, so the defaults win a tie). Settings that change the neighbours (weighting, IDF,
//! shrinkage) each cost one build, with the largest K of the grid; a smaller K takes the
//! first K of those lists, which is exactly its own answer, and the popularity blend only
//! rescores, so the rest of the grid costs a ranking pass each.

use serde::{Deserialize, Serialize};

use crate::build::{build_sampled, BuildError};
use crate::dataset::Dataset;
use crate::eval::{score_rankers, scores, split, Protocol, SplitReport};
use model::model::{BuildParams, Query, Scored};
use model::neighbours::Weighting;

/// The values tried for each parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub weighting: Vec<Weighting>,
    pub idf: Vec<f64>,
    pub shrink: Vec<f64>,
    pub neighbours: Vec<usize>,
    pub popularity_blend: Vec<f64>,
}

impl Default for Grid {
    fn default() -> Self {
        Grid {
            weighting: vec![Weighting::Raw, Weighting::Binary, Weighting::Log],
            idf: vec![0.0, 1.0],
            shrink: vec![0.0, 10.0],
            neighbours: vec![50, 100, 200],
            popularity_blend: vec![0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0],
        }
    }
}

impl Grid {
    /// A smaller grid for quick runs (and the test suite).
    pub fn small() -> Self {
        Grid {
            weighting: vec![Weighting::Raw, Weighting::Binary],
            idf: vec![0.0, 1.0],
            shrink: vec![0.0],
            neighbours: vec![50, 200],
            popularity_blend: vec![0.0, 0.1, 0.3, 0.6, 1.0],
        }
    }

    pub fn size(&self) -> usize {
        self.weighting.len()
            * self.idf.len()
            * self.shrink.len()
            * self.neighbours.len()
            * self.popularity_blend.len()
    }
}

/// One setting tried and its validation figures at 10.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    pub params: BuildParams,
    pub ndcg: f64,
    pub ndcg_stderr: f64,
    pub recall: f64,
    pub hit_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tuning {
    pub protocol_text: String,
    pub split: SplitReport,
    pub fit_interactions: usize,
    pub validation_users: usize,
    pub trials: Vec<Trial>,
    /// Index into `trials` of the chosen setting.
    pub best: usize,
}

impl Tuning {
    pub fn chosen(&self) -> &BuildParams {
        &self.trials[self.best].params
    }

    /// The trial with the defaults (the untuned model), when the grid holds it.
    pub fn untuned(&self) -> Option<&Trial> {
        self.trials.iter().find(|t| t.params.is_untuned())
    }
}

/// Try every setting of `grid` (other parameters from `base`) on a validation split carved
/// from the training part of `protocol`'s split; see the module documentation.
pub fn tune(
    data: &Dataset,
    base: &BuildParams,
    protocol: &Protocol,
    grid: &Grid,
    mut progress: impl FnMut(&Trial),
) -> Result<Tuning, BuildError> {
    let (train, _test, _) = split(data, protocol);
    let inner = Protocol { seed: protocol.seed.wrapping_add(1), ..protocol.clone() };
    let (fit, validation, report) = split(&train, &inner);
    let max_k = grid.neighbours.iter().copied().max().unwrap_or(base.neighbours);
    let mut trials = Vec::with_capacity(grid.size());
    let mut validation_users = 0;
    for &weighting in &grid.weighting {
        for &idf in &grid.idf {
            for &shrink in &grid.shrink {
                let p = BuildParams {
                    weighting,
                    idf,
                    shrink,
                    neighbours: max_k,
                    popularity_blend: 0.0,
                    ..base.clone()
                };
                let mut model = build_sampled(&fit, &p, 0)?.model;
                for &k in &grid.neighbours {
                    for &blend in &grid.popularity_blend {
                        model.params.popularity_blend = blend;
                        let m = &model;
                        let rank = |u: u32, q: &Query<'_>| -> Vec<Scored> {
                            let n: Vec<(u32, f32)> = m.neighbours(u).take(k).collect();
                            m.recommend_from(&n, m.user_items(u).0, q)
                        };
                        let scoring = score_rankers(m, &validation, &[10], &[&rank]);
                        validation_users = scoring.users;
                        let s = &scores(&["candidate"], &scoring, &[10])[0].at[0];
                        let trial = Trial {
                            params: BuildParams { neighbours: k, popularity_blend: blend, ..p.clone() },
                            ndcg: s.metrics.ndcg,
                            ndcg_stderr: s.stderr.ndcg,
                            recall: s.metrics.recall,
                            hit_rate: s.metrics.hit_rate,
                        };
                        progress(&trial);
                        trials.push(trial);
                    }
                }
            }
        }
    }
    let mut best = 0;
    for (n, t) in trials.iter().enumerate() {
        if t.ndcg > trials[best].ndcg {
            best = n;
        }
    }
    Ok(Tuning {
        protocol_text: inner.describe(&report),
        split: report,
        fit_interactions: fit.events.len(),
        validation_users,
        trials,
        best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, GenerateParams};

    #[test]
    fn tuning_tries_the_whole_grid_and_picks_the_best_validation_score() {
        let data = generate(&GenerateParams {
            users: 400,
            items: 150,
            events_per_user: 8.0,
            ..GenerateParams::default()
        });
        let grid = Grid {
            weighting: vec![Weighting::Raw, Weighting::Binary],
            idf: vec![0.0],
            shrink: vec![0.0, 5.0],
            neighbours: vec![10, 30],
            popularity_blend: vec![0.0, 1.0],
        };
        let mut seen = 0;
        let t = tune(&data, &BuildParams::default(), &Protocol::default(), &grid, |_| seen += 1).unwrap();
        assert_eq!((t.trials.len(), seen), (16, 16));
        assert!(t.validation_users > 50);
        let best = t.trials[t.best].ndcg;
        assert!(t.trials.iter().all(|x| x.ndcg <= best));
        assert!(best > 0.0);
        // The chosen parameters are a point of the grid.
        let c = t.chosen();
        assert!(
            grid.neighbours.contains(&c.neighbours) && grid.popularity_blend.contains(&c.popularity_blend)
        );
    }
}
