//! Built models through the model crate: the `model.bin` round trip, payloads of older
//! formats, and the popularity blend. Here rather than in `model` because they build their
//! models from generated data (`model_sync::build`, `model_sync::generate`).

use model::blob::{decode, encode_to_vec, DecodeError};
use model::manifest::FORMAT_VERSION;
use model::model::{BuildParams, Model, Query};
use model_sync::build::build;
use model_sync::generate::{generate, GenerateParams};

/// The end marker of every `model.bin` (see `model::blob`).
const END: &[u8; 8] = b"GEOREND\0";

fn model() -> Model {
    let data = generate(&GenerateParams {
        users: 200,
        items: 60,
        events_per_user: 6.0,
        ..GenerateParams::default()
    });
    let p = BuildParams { neighbours: 5, ..BuildParams::default() };
    build(&data, &p).expect("builds").model
}

#[test]
fn a_model_round_trips_and_searches_the_same() {
    let m = model();
    let bytes = encode_to_vec(&m);
    let back = decode(&bytes[..]).expect("decodes");
    assert_eq!(back, m);
    assert_eq!(encode_to_vec(&back), bytes);
    for u in 0..m.users.len() as u32 {
        let v = m.user_vector(u);
        assert_eq!(back.knn(&v, 7, Some(u)), m.knn(&v, 7, Some(u)));
    }
}

/// A format 2 payload: today's sections, the graph section (levels, entry, layers) before
/// the end marker, format number 2, and the parameters as format 2 wrote them.
fn format_2(m: &Model) -> Vec<u8> {
    let bytes = encode_to_vec(m);
    let mut old = Vec::new();
    old.extend_from_slice(&bytes[..8]);
    old.extend_from_slice(&2u32.to_le_bytes());
    let params = br#"{"neighbours":5,"hnsw_m":4,"hnsw_ef_construction":16,"hnsw_ef_search":8,"popularity_half_life_days":14.0,"binary":false,"seed":42}"#;
    let old_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
    old.extend_from_slice(&(params.len() as u64).to_le_bytes());
    old.extend_from_slice(params);
    old.extend_from_slice(&bytes[20 + old_len..bytes.len() - END.len()]);
    // Two users at level 1, the rest at 0: layer 0 links by user, layer 1 by member.
    let n = m.users.len();
    let mut levels = vec![0u8; n];
    levels[0] = 1;
    levels[1] = 1;
    old.extend_from_slice(&(n as u64).to_le_bytes());
    old.extend_from_slice(&levels);
    old.extend_from_slice(&0u32.to_le_bytes());
    let layer = |w: &mut Vec<u8>, members: usize| {
        w.extend_from_slice(&(members as u64 + 1).to_le_bytes());
        for j in 0..=members {
            w.extend_from_slice(&(j as u64).to_le_bytes());
        }
        w.extend_from_slice(&(members as u64).to_le_bytes());
        for j in 0..members {
            w.extend_from_slice(&(((j + 1) % members) as u32).to_le_bytes());
        }
    };
    layer(&mut old, n);
    layer(&mut old, 2);
    old.extend_from_slice(END);
    old
}

#[test]
fn format_2_payloads_still_decode_without_their_graph() {
    let m = model();
    let old = format_2(&m);
    let back = decode(&old[..]).expect("a format 2 payload decodes");
    assert_eq!(back.params, BuildParams { neighbours: 5, ..BuildParams::default() });
    assert_eq!(back.neighbour_ids, m.neighbour_ids);
    assert_eq!(back.matrix, m.matrix);
    // Cut inside the graph section: refused.
    for cut in [old.len() - END.len() - 3, old.len() - 40, old.len() - END.len() - 4 * m.users.len()] {
        assert!(decode(&old[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn version_1_blobs_are_refused() {
    let mut bytes = encode_to_vec(&model());
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        decode(&bytes[..]),
        Err(DecodeError::UnsupportedFormat { found: 1, supported: FORMAT_VERSION })
    ));
}

fn blended(blend: f64) -> Model {
    let data = generate(&GenerateParams {
        users: 300,
        items: 80,
        events_per_user: 6.0,
        ..GenerateParams::default()
    });
    build(&data, &BuildParams { neighbours: 10, popularity_blend: blend, ..BuildParams::default() })
        .expect("builds")
        .model
}

#[test]
fn the_popularity_blend_runs_from_neighbours_only_to_popularity_only() {
    let (plain, half, full) = (blended(0.0), blended(0.5), blended(1.0));
    let q = Query { count: 10, exclude: &[], categories: None };
    let mut differ = 0;
    for u in (0..plain.users.len() as u32).step_by(7) {
        let seen = plain.user_items(u).0;
        let pop: Vec<u32> = plain.popular(seen, &q).iter().map(|s| s.item).collect();
        let knn: Vec<u32> = plain.recommend(u, &q).iter().map(|s| s.item).collect();
        let all_pop: Vec<u32> = full.recommend(u, &q).iter().map(|s| s.item).collect();
        if knn.is_empty() {
            // No neighbour has anything new: nothing to blend, the caller serves popularity.
            assert!(all_pop.is_empty());
            continue;
        }
        assert_eq!(all_pop, pop, "user {u}: blend 1 is popularity");
        let mixed = half.recommend(u, &q);
        assert_eq!(mixed.len(), 10);
        assert!(mixed.iter().all(|s| seen.binary_search(&s.item).is_err() && s.score <= 1.0 + 1e-6));
        differ += usize::from(mixed.iter().map(|s| s.item).collect::<Vec<_>>() != knn);
    }
    assert!(differ > 0, "a half blend changes some answers");
}
