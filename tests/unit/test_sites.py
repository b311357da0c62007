"""Site onboarding's pure parts: the labels file, the query strategies, cross-fitting and the intervals."""
import numpy as np
import pandas as pd
import pytest

from tasks.imaging import films as film_folder
from tasks.measure import intervals
from tasks.measure.metrics import apply_temperature, operating_point
from tasks.sites import films, finetune, query
from tasks.sites.gate import decide, floors, paired
from tests.helpers import defaults, image_bytes

POINT = defaults("evaluate", threshold="target_sensitivity", target_sensitivity=0.95, calibrate="platt")


@pytest.fixture
def site(tmp_path):
    """A site folder of 8 films of 4 patients (Kaggle-style names), in two sub-folders."""
    folder = tmp_path / "inbox"
    names = ["a/person1_bacteria_1.jpeg", "a/person1_bacteria_2.jpeg", "a/person2_virus_3.jpeg",
             "b/IM-0001-0001.jpeg", "b/IM-0001-0002.jpeg", "b/IM-0002-0001.jpeg", "b/IM-0003-0001.jpeg",
             "b/film-x.jpeg"]
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(image_bytes(i))
    return folder


def write(tmp_path, rows, header="path,label"):
    path = tmp_path / "labels.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_good_labels_give_paths_labels_and_patients(site, tmp_path):
    labels = write(tmp_path, ["a/person1_bacteria_1.jpeg,PNEUMONIA", f"{site}/b/IM-0001-0001.jpeg,normal",
                              "b/film-x.jpeg,NORMAL"])
    frame = films.read_labels(labels, site)
    assert frame.path.tolist() == ["a/person1_bacteria_1.jpeg", "b/IM-0001-0001.jpeg", "b/film-x.jpeg"]
    assert frame.label.tolist() == [1, 0, 0]
    assert frame.patient_id.tolist() == ["person1", "IM-0001", "film-x"]


@pytest.mark.parametrize("rows, says", [
    (["a/missing.jpeg,NORMAL"], "row 1 (a/missing.jpeg): not an image file under"),
    (["a/person1_bacteria_1.jpeg,PNEUMONIA", "b/film-x.jpeg,maybe"], "row 2 (b/film-x.jpeg): label 'MAYBE'"),
    (["b/film-x.jpeg,NORMAL", "b/film-x.jpeg,NORMAL"], "row 2 (b/film-x.jpeg): the film is labelled twice (row 1)"),
    (["b/film-x.jpeg,NORMAL", ",NORMAL"], "row 2 (empty path)"),
])
def test_bad_labels_name_the_row_and_the_fix(site, tmp_path, rows, says):
    with pytest.raises(films.LabelsError) as err:
        films.read_labels(write(tmp_path, rows), site)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_same_image_under_two_names_is_refused(site, tmp_path):
    (site / "b" / "copy.jpeg").write_bytes((site / "b" / "film-x.jpeg").read_bytes())
    with pytest.raises(films.LabelsError, match=r"row 2 \(b/copy.jpeg\): the same image as row 1"):
        films.read_labels(write(tmp_path, ["b/film-x.jpeg,NORMAL", "b/copy.jpeg,PNEUMONIA"]), site)


def test_a_film_exported_twice_is_offered_once_and_a_twin_of_a_taken_film_never(site):
    (site / "b" / "copy.jpeg").write_bytes((site / "b" / "film-x.jpeg").read_bytes())
    (site / "b" / "IM-0003-0002.jpeg").write_bytes((site / "b" / "IM-0003-0001.jpeg").read_bytes())
    paths = film_folder.listing(site)
    offered = film_folder.distinct(site, paths)
    assert len(offered) == len(paths) - 2 and len({(site / p).read_bytes() for p in offered}) == len(offered)
    assert "b/copy.jpeg" in offered and "b/IM-0003-0001.jpeg" in offered  # the first of each pair, in path order
    kept = film_folder.distinct(site, paths, taken={"b/film-x.jpeg"})  # the labelled (kept-apart) twin stays
    assert "b/film-x.jpeg" in kept and "b/copy.jpeg" not in kept


def test_a_film_that_does_not_decode_is_refused(site, tmp_path):
    (site / "b" / "broken.jpeg").write_bytes(b"not a picture")
    with pytest.raises(films.LabelsError, match=r"row 2 \(b/broken.jpeg\): the file does not decode"):
        films.read_labels(write(tmp_path, ["b/film-x.jpeg,NORMAL", "b/broken.jpeg,PNEUMONIA"]), site)


def test_a_patient_measured_on_cannot_be_labelled(site, tmp_path):
    labels = write(tmp_path, ["b/IM-0002-0001.jpeg,NORMAL", "a/person1_bacteria_2.jpeg,PNEUMONIA"])
    with pytest.raises(films.LabelsError, match=r"row 2 .*patient person1 also has films the site is measured on"):
        films.read_labels(labels, site, held_out={"a/person1_bacteria_1.jpeg"})


def test_missing_column_and_missing_file(site, tmp_path):
    with pytest.raises(films.LabelsError, match="no `label` column"):
        films.read_labels(write(tmp_path, ["b/film-x.jpeg"], header="path"), site)
    with pytest.raises(films.LabelsError, match="does not exist"):
        films.read_labels(tmp_path / "nope.csv", site)


def clustered(n_clusters=5, per=20, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, d)) * 10
    labels = np.repeat(np.arange(n_clusters), per)
    return centres[labels] + rng.normal(size=(len(labels), d)), labels


@pytest.mark.parametrize("strategy", query.STRATEGIES)
def test_every_strategy_returns_the_budget_and_never_a_labelled_film(strategy):
    features, _ = clustered()
    rng = np.random.default_rng(1)
    prob, ood_score = rng.random(len(features)), rng.random(len(features)) * 3
    labelled = np.arange(0, 100, 7)
    idx, reasons = query.select(strategy, features, prob, ood_score, labelled, 12, seed=0)
    assert len(idx) == len(set(idx.tolist())) == len(reasons) == 12
    assert not set(idx.tolist()) & set(labelled.tolist())


def test_typiclust_covers_the_clusters_and_badge_prefers_the_uncertain():
    features, cluster = clustered()
    prob = np.full(len(features), 0.99)
    idx, _ = query.select("typiclust", features, prob, prob, [], 5, seed=0)
    assert sorted(cluster[idx].tolist()) == [0, 1, 2, 3, 4]  # one film per cluster
    prob[[3, 42, 77]] = 0.5  # the only unsure films
    idx, _ = query.select("badge", features, prob, prob, [], 3, seed=0)
    assert 3 in idx or 42 in idx or 77 in idx
    assert query.select("ood", features, prob, np.arange(100.0), [99], 2, seed=0)[0].tolist() == [98, 97]


def test_patient_folds_keep_a_patient_whole():
    patients = np.array(["p1", "p1", "p2", "p3", "p3", "p3", "p4", "p5"])
    folds = finetune.patient_folds(patients, 3, seed=0)
    for pid in set(patients):
        assert len(set(folds[patients == pid])) == 1
    assert set(folds.tolist()) == {0, 1, 2}


def test_cross_fitting_never_lets_a_film_decide_its_own_threshold():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 30)
    raw = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.15, len(y)), 0.01, 0.99)
    folds = np.arange(len(y)) % 3
    prob, threshold = finetune.nested(y, raw, folds, POINT)
    moved = raw.copy()
    moved[folds == 0] = rng.random((folds == 0).sum())  # fold 0's own scores change ...
    prob2, threshold2 = finetune.nested(y, moved, folds, POINT)
    assert np.array_equal(threshold[folds == 0], threshold2[folds == 0])  # ... its threshold does not
    assert not np.array_equal(threshold[folds == 1], threshold2[folds == 1])  # the others' do
    assert np.allclose(prob[folds == 1], prob2[folds == 1]) is False


def site_scores(rng, n: int, hard: bool):
    """(labels, raw scores): a query's films (`hard`: pneumonia scored as low as normal) or random ones."""
    y = rng.permutation(np.arange(n) % 2)
    sick = rng.uniform(0.2, 0.6, n) if hard else rng.uniform(0.6, 0.95, n)
    return y, np.where(y == 1, sick, rng.uniform(0.05, 0.5, n))


def test_the_served_point_comes_from_the_random_sample_and_none_of_its_films_sets_its_own_threshold():
    rng = np.random.default_rng(1)
    worklist, (y, raw) = site_scores(rng, 60, hard=True), site_scores(rng, 40, hard=False)
    patients = np.array([f"p{i}" for i in range(40)])
    op, fitted_on, prob, threshold = finetune.served_point(worklist, (y, raw), patients, 3, POINT, 0)
    from_worklist = operating_point(*worklist, POINT)
    assert fitted_on == "measurement sample"
    fresh_y, fresh_raw = site_scores(rng, 400, hard=False)  # the site's ordinary films

    def specificity(point):
        prob = apply_temperature(fresh_raw, point["temperature"], point["bias"])
        return ((prob < point["threshold"]) & (fresh_y == 0)).sum() / (fresh_y == 0).sum()
    assert specificity(op) > specificity(from_worklist) + 0.2  # the query's hard films set too low a threshold
    moved = raw.copy()
    moved[3] = 0.99 if y[3] == 0 else 0.01  # one patient's film changes its score ...
    _, _, _, threshold2 = finetune.served_point(worklist, (y, moved), patients, 3, POINT, 0)
    assert threshold2[3] == threshold[3] and not np.array_equal(threshold2, threshold)  # ... not its threshold

    few = np.array(["p0"] * 20 + ["p1"] * 20)  # one patient per class: no fold could be measured
    op, fitted_on, _, threshold = finetune.served_point(worklist, (np.repeat([0, 1], 20), raw), few, 3, POINT, 0)
    assert fitted_on == "worklist" and op == from_worklist and set(threshold) == {from_worklist["threshold"]}


def test_intervals_contain_the_estimate_and_widen_with_fewer_patients():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 100)
    prob = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, len(y)), 0, 1)
    many = intervals.with_intervals(y, prob, 0.5, np.arange(len(y)), n=300)
    few = intervals.with_intervals(y, prob, 0.5, np.arange(len(y)) // 20, n=300)  # 10 patients of 20 films
    for k in intervals.SHOWN:
        assert many[f"{k}_ci"][0] <= many[k] <= many[f"{k}_ci"][1]
    width = lambda m: m["accuracy_ci"][1] - m["accuracy_ci"][0]  # noqa: E731
    assert few["patients"] == 10 and width(few) > width(many)
    assert "| adapted | 200 |" in intervals.table({"adapted": many})


def test_the_site_gate_moves_only_on_a_win():
    assert decide(0.99, 0.97, "roc_auc", 0.0, "source")[0]
    assert not decide(0.97, 0.97, "roc_auc", 0.0, "source")[0]
    assert not decide(0.975, 0.97, "roc_auc", 0.01, "source")[0]
    assert "gain -0.0200" in decide(0.95, 0.97, "roc_auc", 0.0, "source")[1]


def evidence(noise: float, patients: int = 150, seed: int = 0):
    """Labelled films of a site (two per patient), the source model's scores and a candidate's: the candidate sees
    the films' truth through `noise` (the source through 1.0: less noise ranks better)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.permutation(np.arange(patients) % 2), 2)
    truth = y + rng.normal(0, 0.5, len(y))
    return pd.DataFrame({"patient_id": np.repeat(np.arange(patients), 2).astype(str), "label": y,
                         "source": truth + rng.normal(0, 1.0, len(y)),
                         "candidate": truth + rng.normal(0, noise, len(y))})


def test_the_site_gate_keeps_a_better_model_and_refuses_a_worse_one_on_all_the_evidence():
    kept, why = paired(evidence(0.2), 0.01, 300, 0)
    assert kept and "better beyond the interval" in why and "300 labelled films of 150 patients" in why
    refused, why = paired(evidence(3.0), 0.01, 300, 0)
    assert not refused and "worse than the source model beyond the interval" in why
    # a model no better or worse than the source's within the interval and the margin is kept: the site model
    # brings the site's own threshold (the refused seed-2 model of issue 40 was 4.5 points better elsewhere)
    same = evidence(1.0)
    same["candidate"] = same.source + 1e-9
    kept, why = paired(same, 0.01, 300, 0)
    assert kept and "not worse beyond the interval" in why
    worse = evidence(1.0)
    worse["candidate"] = worse.source + np.random.default_rng(1).normal(0, 0.8, len(worse))  # -0.019, not beyond
    kept, why = paired(worse, 0.01, 300, 0)
    assert not kept and "worse by more than sites.margin" in why, why


def test_balanced_draw_takes_both_classes_equally():
    labels = np.array([0] * 3 + [1] * 97)
    draw = finetune.balanced_draw(labels, 1000, np.random.default_rng(0))
    assert abs((labels[draw] == 0).mean() - 0.5) < 0.01
    assert len(pd.unique(draw[labels[draw] == 0])) == 3


def test_balanced_draw_mixes_the_classes_in_every_stretch():
    labels = np.array([0] * 50 + [1] * 50)
    draw = finetune.balanced_draw(labels, 400, np.random.default_rng(0)).reshape(20, 20)  # 20 batches of 20
    share = (labels[draw] == 1).mean(axis=1)
    assert share.min() > 0.15 and share.max() < 0.85  # no batch of one class (the draw is shuffled)


def test_the_site_gate_refuses_an_operating_point_below_the_floors():
    good = {"recall": 0.97, "specificity": 0.9}
    assert floors(good, 0.85, 0.6) is None
    assert "sensitivity 0.760 is below register.min_sensitivity 0.85" in floors({**good, "recall": 0.76}, 0.85, 0.6)
    assert "specificity 0.500" in floors({**good, "specificity": 0.5}, 0.85, 0.6)


def test_patient_folds_given_labels_put_both_classes_in_every_fold():
    patients = np.array([f"n{i}" for i in range(3)] + [f"s{i}" for i in range(9)])
    labels = np.array([0] * 3 + [1] * 9)
    for seed in range(20):  # dealt at random, 3 normal patients could all land in one of 2 folds
        folds = finetune.patient_folds(patients, 2, seed, labels)
        assert all({0, 1} <= set(labels[folds == k].tolist()) for k in (0, 1)), seed
    assert finetune.class_patients(np.array(["a", "a", "b", "c"]), np.array([0, 1, 0, 0])) == (2, 1)


def test_the_measurement_sample_takes_whole_patients_at_random_and_stays_put():
    from tasks.sites import films

    paths = [f"NORMAL/IM-{p:04d}-{k:04d}.jpeg" for p in range(30) for k in range(1 + p % 3)]
    sample = films.measurement_sample(paths, 12, seed=0)
    assert 12 <= len(sample) <= 14 and sample == films.measurement_sample(paths, 12, seed=0)
    chosen = set(films.patients(sample))
    assert sorted(p for p in paths if films.patients([p])[0] in chosen) == sample  # every film of a drawn patient
    assert films.measurement_sample(paths, 12, seed=1) != sample and films.measurement_sample(paths, 0, 0) == []
