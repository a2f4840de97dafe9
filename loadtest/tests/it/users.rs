//! User sampling: zipf is skewed and seeded; ids come from files and generators.

use std::collections::HashMap;

use loadtest::users::{Dist, Sampler, Source};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i:07}")).collect()
}

fn draws(s: &Sampler, seed: u64, n: usize) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| s.sample(&mut rng).to_string()).collect()
}

fn top_shares(draws: &[String]) -> Vec<f64> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for d in draws {
        *counts.entry(d).or_default() += 1;
    }
    let mut c: Vec<usize> = counts.into_values().collect();
    c.sort_unstable_by(|a, b| b.cmp(a));
    c.iter().map(|n| *n as f64 / draws.len() as f64).collect()
}

#[test]
fn zipf_is_skewed_towards_a_few_hot_users() {
    let zipf = Sampler::new(ids(1000), Dist::Zipf { s: 1.1 }, 7).unwrap();
    let d = draws(&zipf, 1, 20_000);
    let shares = top_shares(&d);
    assert!(shares[0] > 0.12, "hottest user {:.3}", shares[0]);
    assert!(shares[..10].iter().sum::<f64>() > 0.35, "top 10 {:?}", &shares[..10]);
    // The hottest drawn id is rank 0.
    let hottest = d.iter().filter(|x| *x == zipf.ranked(0)).count() as f64 / d.len() as f64;
    assert!((hottest - shares[0]).abs() < 1e-9);

    let uniform = Sampler::new(ids(1000), Dist::Uniform, 7).unwrap();
    let shares = top_shares(&draws(&uniform, 1, 20_000));
    assert!(shares[0] < 0.005, "uniform hottest {:.4}", shares[0]);
}

#[test]
fn sampling_is_seeded() {
    let a = Sampler::new(ids(1000), Dist::Zipf { s: 1.1 }, 7).unwrap();
    let b = Sampler::new(ids(1000), Dist::Zipf { s: 1.1 }, 7).unwrap();
    assert_eq!(draws(&a, 3, 500), draws(&b, 3, 500));
    assert_ne!(draws(&a, 3, 500), draws(&a, 4, 500), "another draw seed, another sequence");
    let c = Sampler::new(ids(1000), Dist::Zipf { s: 1.1 }, 8).unwrap();
    assert_ne!(
        (0..20).map(|r| a.ranked(r)).collect::<Vec<_>>(),
        (0..20).map(|r| c.ranked(r)).collect::<Vec<_>>()
    );
    assert!(Sampler::new(ids(3), Dist::Zipf { s: 0.0 }, 1).is_err());
}

#[test]
fn ids_come_from_files_and_generators() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.txt");
    std::fs::write(&file, "# ids\nalice\n\n bob \n").unwrap();
    assert_eq!(Source::File(file).load().unwrap(), ["alice", "bob"]);
    let generated = Source::Generated { prefix: "u".into(), count: 124, width: 7 }.load().unwrap();
    assert_eq!(generated.len(), 124);
    assert_eq!(generated[123], "u0000123");
    assert!(Source::File(dir.path().join("missing")).load().is_err());
    assert!(Source::Model(dir.path().to_path_buf()).load().is_err());
}

#[test]
fn ids_come_from_a_models_users() {
    use model_sync::generate::{generate, GenerateParams};
    let data = generate(&GenerateParams { users: 60, items: 40, categories: 3, ..GenerateParams::default() });
    let built = model_sync::build::build(&data, &Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("model.bin")).unwrap();
    model::blob::encode(&built.model, file).unwrap();

    let users = Source::Model(dir.path().to_path_buf()).load().unwrap();
    assert_eq!(users, built.model.users);
    assert_eq!(users.len(), 60);
    assert!(loadtest::users::model_in(dir.path()).is_some());
}
