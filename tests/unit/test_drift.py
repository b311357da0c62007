"""The drift tests on generated features: they flag a shifted batch and, on batches like the reference, keep
their false-alarm rate."""
import numpy as np

from tasks.measure import reference
from tasks.monitoring import drift


def features(rng, n, shift=0.0, d=16):
    return rng.normal(size=(n, d)) + shift


def ref(rng, n=200):
    f = features(rng, n)
    prob = 1 / (1 + np.exp(-f[:, 0]))
    return reference.build(f, prob, np.abs(f[:, 1]) / 3, threshold=0.5)


def test_mmd_flags_a_shifted_batch_and_not_a_like_one():
    rng = np.random.default_rng(0)
    base = features(rng, 200)
    _, p_like = drift.mmd(base, features(rng, 60), permutations=300)
    _, p_shifted = drift.mmd(base, features(rng, 60, shift=0.5), permutations=300)
    assert p_shifted < 0.01 < p_like


def test_permutation_p_values_keep_the_false_alarm_rate():
    rng = np.random.default_rng(1)
    base = features(rng, 120)
    p = np.array([drift.mmd(base, features(rng, 40), permutations=199, seed=i)[1] for i in range(60)])
    assert np.mean(p < 0.05) <= 0.15  # 5 % expected; 60 draws leave room for chance
    assert p.min() >= 1 / 200  # never below what 199 permutations can show


def test_whitening_finds_a_shift_along_a_direction_the_reference_barely_varies_in():
    rng = np.random.default_rng(5)
    scale = np.r_[np.full(2, 10.0), np.full(14, 0.3)]  # two dominant directions, as the class gives real features
    base = rng.normal(size=(300, 16)) * scale
    batch = rng.normal(size=(80, 16)) * scale + np.r_[np.zeros(2), np.full(14, 0.25)]
    assert drift.mmd(base, batch, components=16, permutations=300)[1] < 0.01
    assert drift.mmd(base, rng.normal(size=(80, 16)) * scale, components=16, permutations=300)[1] > 0.01


def test_compare_names_the_tests_that_fired():
    rng = np.random.default_rng(2)
    r = ref(rng)
    like = features(rng, 80)
    out = drift.compare(r, like, 1 / (1 + np.exp(-like[:, 0])), np.abs(like[:, 1]) / 3, 0.01, 8, 300, 500, 0)
    assert not out["drift"] and out["drifted"] == []
    shifted = features(rng, 80, shift=0.8)
    prob, ood = 1 / (1 + np.exp(-shifted[:, 0])), np.abs(shifted[:, 1]) / 3 + 1
    out = drift.compare(r, shifted, prob, ood, 0.01, 8, 300, 500, 0)
    assert out["drift"] and {"features", "scores", "ood"} == set(out["drifted"])
    assert out["pneumonia_rate"] > out["pneumonia_rate_reference"]


def test_a_large_batch_is_subsampled_for_the_feature_test():
    rng = np.random.default_rng(3)
    r = ref(rng)
    big = features(rng, 900)
    out = drift.compare(r, big, 1 / (1 + np.exp(-big[:, 0])), np.abs(big[:, 1]) / 3, 0.01, 8, 99, 300, 0)
    assert out["films"] == 900 and out["features"]["films_tested"] == 300


def test_the_reference_round_trips_without_pickle(tmp_path):
    rng = np.random.default_rng(4)
    r = ref(rng, 50)
    back = reference.load(reference.save(tmp_path / "m" / "reference.npz", r))
    assert back["threshold"] == 0.5 and all(np.array_equal(back[k], r[k]) for k in reference.KEYS)
    assert len(reference.sample(50, 20, 0)) == 20 and list(reference.sample(10, 20, 0)) == list(range(10))
