"""Results by subgroup: pneumonia's kind from Kaggle file names, fairlearn's MetricFrame per group, intervals
over patient resamples, small groups and one-class metrics marked."""
import numpy as np

from tasks.measure.subgroups import MIN_PATIENTS, kind, markdown, table


def films(n_per_kind: int, seed: int = 0):
    """Normal, bacterial and viral films of one patient each; the model misses every third viral film."""
    rng = np.random.default_rng(seed)
    paths, y, prob, patients = [], [], [], []
    for k, (folder, label) in enumerate((("NORMAL/IM-{i:04d}-0001.jpeg", 0), ("PNEUMONIA/person{i}_bacteria_1.jpeg", 1),
                                        ("PNEUMONIA/person{i}_virus_2.jpeg", 1))):
        for i in range(n_per_kind):
            paths.append(folder.format(i=1000 * k + i))
            y.append(label)
            missed = "virus" in folder and i % 3 == 0
            prob.append(rng.uniform(0.0, 0.4) if (label == 0 or missed) else rng.uniform(0.6, 1.0))
            patients.append(f"p{k}-{i}")
    return paths, np.array(y), np.array(prob), patients


def test_kind_comes_from_the_file_name():
    assert kind("x/PNEUMONIA/person12_bacteria_48.jpeg", 1) == "bacterial"
    assert kind("x/PNEUMONIA/person1_virus_6.jpeg", 1) == "viral"
    assert kind("x/NORMAL/IM-0001-0001.jpeg", 0) == "normal"
    assert kind("x/PNEUMONIA/DEMO-0001-01.png", 1) is None


def test_each_kind_gets_its_sensitivity_with_an_interval_and_a_missed_kind_shows():
    paths, y, prob, patients = films(30)
    rows = {r["group"]: r for r in table(paths, y, prob, 0.5, patients, resamples=200)}
    assert list(rows) == ["normal", "bacterial", "viral"]
    viral = (np.array(["virus" in p for p in paths]))
    assert rows["viral"]["sensitivity"][0] == np.mean(prob[viral] >= 0.5) == 20 / 30
    assert rows["bacterial"]["sensitivity"][0] == 1.0
    value, low, high = rows["viral"]["sensitivity"]
    assert low < value < high and high - low > 0.1  # 30 patients: a real interval
    assert rows["normal"]["specificity"][0] == 1.0 and rows["normal"]["sensitivity"] is None  # one class
    assert rows["viral"]["specificity"] is None and rows["viral"]["roc_auc"][0] < rows["bacterial"]["roc_auc"][0]
    assert rows["viral"]["films"] == rows["viral"]["patients"] == 30
    text = markdown(list(rows.values()))
    assert "| viral | 30 | 30 | 0.667 (" in text and "one class" in text


def test_a_threshold_per_film_decides_each_film_as_the_site_loop_nests_them():
    paths, y, prob, patients = films(12)
    per_film = np.where(np.arange(len(y)) % 2, 0.5, 0.95)  # half the films at a stricter threshold
    rows = {r["group"]: r for r in table(paths, y, prob, per_film, patients, resamples=50)}
    bacterial = np.array(["bacteria" in p for p in paths])
    assert rows["bacterial"]["sensitivity"][0] == np.mean(prob[bacterial] >= per_film[bacterial])
    assert rows["bacterial"]["sensitivity"][0] < table(paths, y, prob, 0.5, patients, 50)[1]["sensitivity"][0]


def test_a_small_group_is_counted_without_an_interval_and_no_kind_means_no_table():
    paths, y, prob, patients = films(MIN_PATIENTS - 1)
    rows = table(paths, y, prob, 0.5, patients, resamples=100)
    assert rows and all(r["small"] for r in rows)
    assert all(r[k] is None or r[k][1] is None for r in rows for k in ("sensitivity", "specificity", "roc_auc"))
    assert "no interval" in markdown(rows)
    demo = [p.replace("_bacteria_", "-").replace("_virus_", "-") for p in paths]
    assert table(demo, y, prob, 0.5, patients, resamples=10) == []
    assert "No subgroup" in markdown([])
