//! Unit tests of [`GalleryIndex`], run against both back ends wherever
//! they apply.

use ndarray::{array, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

const KINDS: [IndexKind; 2] = [IndexKind::Linfa, IndexKind::BruteForce];

fn index(embeddings: Array2<f32>, kind: IndexKind) -> GalleryIndex {
    GalleryIndex::new(embeddings, kind, Device::Cpu).expect("a valid gallery indexes")
}

fn random(n_rows: usize, dim: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn((n_rows, dim), |_| rng.gen_range(-1.0..1.0))
}

fn ids(neighbours: &[Neighbour]) -> Vec<usize> {
    neighbours.iter().map(|n| n.gallery_idx).collect()
}

/// Four points around the query (0, 0): two copies of the query, one at
/// distance 1 and one at distance 5 (a 3-4-5 triangle).
fn small_gallery() -> Array2<f32> {
    array![[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 0.0]]
}

#[test]
fn small_gallery_gives_hand_computed_neighbours() {
    for kind in KINDS {
        let found = index(small_gallery(), kind)
            .search(array![[0.0, 0.0]].view(), 3)
            .unwrap();
        assert_eq!(ids(&found[0]), vec![0, 3, 2], "{kind:?}");
        let distances: Vec<f32> = found[0].iter().map(|n| n.distance).collect();
        assert_eq!(distances, vec![0.0, 0.0, 1.0], "{kind:?}");
    }
}

#[test]
fn k_is_clipped_to_the_gallery_size() {
    for kind in KINDS {
        let found = index(small_gallery(), kind)
            .search(array![[3.0, 4.0]].view(), 10)
            .unwrap();
        assert_eq!(ids(&found[0]), vec![1, 2, 0, 3], "{kind:?}");
        assert!((found[0][2].distance - 5.0).abs() < 1e-5, "{kind:?}");
    }
}

/// Four entries at distance 1 from the origin and one at distance 2;
/// removing and adding shuffles the rows so that row order and id
/// order differ. The two nearest must be the two lowest live ids.
#[test]
fn ties_across_the_kth_place_go_to_the_lower_ids() {
    let gallery = array![[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [-1.0, 0.0], [0.0, -1.0]];
    for kind in KINDS {
        let mut index = index(gallery.clone(), kind);
        index.remove(0).unwrap();
        assert_eq!(index.add(&[1.0, 0.0]).unwrap(), 5);
        let found = index.search(array![[0.0, 0.0]].view(), 2).unwrap();
        assert_eq!(ids(&found[0]), vec![1, 3], "{kind:?}");
        let found = index.search(array![[0.0, 0.0]].view(), 4).unwrap();
        assert_eq!(ids(&found[0]), vec![1, 3, 4, 5], "{kind:?}");
    }
}

#[test]
fn linfa_and_brute_force_agree_on_random_data() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut gallery = random(600, 32, &mut rng);
    // Exact duplicates make ties at every rank they reach.
    for row in 0..50 {
        let copy = gallery.row(row).to_owned();
        gallery.row_mut(550 + row).assign(&copy);
    }
    let queries = random(40, 32, &mut rng);
    let linfa = index(gallery.clone(), IndexKind::Linfa)
        .search(queries.view(), 16)
        .unwrap();
    let brute = index(gallery, IndexKind::BruteForce)
        .search(queries.view(), 16)
        .unwrap();
    assert_same_neighbours(&linfa, &brute);
}

/// Same distances rank by rank (within 1e-4), and the same ids wherever
/// the distance is not shared with a neighbour of the other list.
fn assert_same_neighbours(a: &[Vec<Neighbour>], b: &[Vec<Neighbour>]) {
    assert_eq!(a.len(), b.len());
    for (query_idx, (a, b)) in a.iter().zip(b).enumerate() {
        assert_eq!(a.len(), b.len(), "query {query_idx}");
        for (x, y) in a.iter().zip(b) {
            let close = (x.distance - y.distance).abs() < 1e-4;
            assert!(close, "query {query_idx}: {x:?} vs {y:?}");
            let tied = a
                .iter()
                .chain(b)
                .any(|n| n.gallery_idx != x.gallery_idx && (n.distance - x.distance).abs() < 1e-4);
            assert!(
                tied || x.gallery_idx == y.gallery_idx,
                "query {query_idx}: {x:?} vs {y:?}"
            );
        }
    }
}

#[test]
fn brute_force_batches_give_the_same_answer() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let gallery = random(200, 8, &mut rng);
    let queries = random(25, 8, &mut rng);
    let whole = index(gallery.clone(), IndexKind::BruteForce);
    let mut batched = index(gallery, IndexKind::BruteForce);
    if let Backend::Device(device_rows) = &mut batched.backend {
        // 3 queries per batch: 9 batches, the last one short.
        device_rows.max_batch_cells = 3 * 200 + 7;
    }
    // The BLAS kernel may sum in another order for another batch shape,
    // so distances can move by a rounding step; the ids may not.
    let expected = whole.search(queries.view(), 5).unwrap();
    let found = batched.search(queries.view(), 5).unwrap();
    assert_eq!(found.len(), expected.len());
    for (found, expected) in found.iter().zip(&expected) {
        assert_eq!(ids(found), ids(expected));
        for (x, y) in found.iter().zip(expected) {
            assert!((x.distance - y.distance).abs() < 1e-5, "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn added_entries_are_found_and_ids_are_never_reused() {
    for kind in KINDS {
        let mut index = index(array![[10.0, 10.0]], kind);
        for step in 1..6 {
            let gallery_idx = index.add(&[step as f32, 0.0]).unwrap();
            assert_eq!(gallery_idx, step, "{kind:?}");
        }
        index.remove(5).unwrap();
        assert_eq!(index.add(&[0.5, 0.0]).unwrap(), 6, "{kind:?}");
        assert_eq!(index.len(), 6);
        let found = index.search(array![[0.0, 0.0]].view(), 3).unwrap();
        assert_eq!(ids(&found[0]), vec![6, 1, 2], "{kind:?}");
    }
}

#[test]
fn removal_keeps_the_other_ids_and_their_distances() {
    for kind in KINDS {
        let mut index = index(small_gallery(), kind);
        index.remove(0).unwrap();
        assert!(!index.contains(0) && index.contains(3));
        let found = index.search(array![[0.0, 0.0]].view(), 5).unwrap();
        assert_eq!(ids(&found[0]), vec![3, 2, 1], "{kind:?}");
        assert!((found[0][2].distance - 5.0).abs() < 1e-5, "{kind:?}");
    }
}

#[test]
fn removing_twice_or_an_unknown_id_fails() {
    let mut index = index(small_gallery(), IndexKind::Linfa);
    index.remove(1).unwrap();
    assert!(matches!(
        index.remove(1),
        Err(IndexError::AlreadyRemoved { gallery_idx: 1 })
    ));
    assert!(matches!(
        index.remove(9),
        Err(IndexError::UnknownEntry {
            gallery_idx: 9,
            n_slots: 4
        })
    ));
}

#[test]
fn an_emptied_gallery_refuses_to_search_until_refilled() {
    for kind in KINDS {
        let mut index = index(array![[1.0, 2.0]], kind);
        index.remove(0).unwrap();
        let query = array![[0.0, 0.0]];
        assert!(matches!(
            index.search(query.view(), 1),
            Err(IndexError::EmptyGallery)
        ));
        index.add(&[4.0, 6.0]).unwrap();
        assert_eq!(index.search(query.view(), 1).unwrap()[0][0].gallery_idx, 1);
    }
}

#[test]
fn a_gallery_built_empty_grows_on_the_device() {
    let mut index = index(Array2::zeros((0, 3)), IndexKind::BruteForce);
    for step in 0..9 {
        index.add(&[step as f32, 0.0, 0.0]).unwrap();
    }
    let found = index.search(array![[8.0, 0.0, 0.0]].view(), 2).unwrap();
    assert_eq!(ids(&found[0]), vec![8, 7]);
}

#[test]
fn wrong_dimensions_are_reported_with_both_sizes() {
    let mut index = index(small_gallery(), IndexKind::BruteForce);
    let err = index.search(array![[0.0, 0.0, 0.0]].view(), 1).unwrap_err();
    assert!(matches!(
        err,
        IndexError::DimensionMismatch {
            role: Role::Query,
            expected: 2,
            got: 3
        }
    ));
    assert_eq!(
        err.to_string(),
        "query embeddings have dimension 3, the gallery has dimension 2"
    );
    assert!(matches!(
        index.add(&[1.0]),
        Err(IndexError::DimensionMismatch {
            role: Role::Gallery,
            expected: 2,
            got: 1
        })
    ));
    let empty = GalleryIndex::new(Array2::zeros((3, 0)), IndexKind::Linfa, Device::Cpu);
    assert!(matches!(empty, Err(IndexError::ZeroDimension)));
}

#[test]
fn non_finite_values_are_located() {
    let gallery = array![[0.0, 1.0], [2.0, f32::NAN]];
    let built = GalleryIndex::new(gallery, IndexKind::Linfa, Device::Cpu);
    assert!(matches!(
        built,
        Err(IndexError::NonFinite {
            role: Role::Gallery,
            row: 1,
            col: 1
        })
    ));

    let mut index = index(small_gallery(), IndexKind::Linfa);
    let added = index.add(&[f32::INFINITY, 0.0]);
    assert!(matches!(
        added,
        Err(IndexError::NonFinite {
            role: Role::Gallery,
            row: 4,
            col: 0
        })
    ));
    let query = array![[0.0, 0.0], [0.0, 0.0], [f32::NEG_INFINITY, 0.0]];
    let err = index.search(query.view(), 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "query row 2 holds a non-finite value in column 0"
    );
}

#[test]
fn embeddings_too_long_for_f32_distances_are_refused() {
    let mut index = index(small_gallery(), IndexKind::Linfa);
    let added = index.add(&[1e19, 0.0]);
    assert!(matches!(
        added,
        Err(IndexError::NormTooLarge {
            role: Role::Gallery,
            row: 4,
            ..
        })
    ));
    assert_eq!(index.len(), 4);
}

#[test]
fn auto_picks_brute_force_off_the_cpu() {
    assert_eq!(
        IndexKind::Auto.resolve(Device::Cuda(0)),
        IndexKind::BruteForce
    );
    assert_eq!(IndexKind::Auto.resolve(Device::Cpu), AUTO_ON_CPU);
    assert_eq!(IndexKind::Linfa.resolve(Device::Cuda(0)), IndexKind::Linfa);
    let built = index(small_gallery(), IndexKind::Auto);
    assert_eq!(built.kind(), AUTO_ON_CPU);
}

#[test]
fn searches_from_many_threads_agree() {
    fn shareable<T: Send + Sync>() {}
    shareable::<GalleryIndex>();

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let queries = random(10, 16, &mut rng);
    for kind in KINDS {
        let index = index(random(300, 16, &mut rng), kind);
        let expected = index.search(queries.view(), 4).unwrap();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| index.search(queries.view(), 4)))
                .collect();
            for handle in handles {
                assert_eq!(handle.join().unwrap().unwrap(), expected, "{kind:?}");
            }
        });
    }
}
