import random

import numpy as np

from facekit.data.split import template_split


def test_matches_the_course_template_on_sorted_names():
    names = [f"{i}_0_0_2017{i:05d}.jpg.chip.jpg" for i in range(50)]
    expected = sorted(names)
    random.seed(0)
    random.shuffle(expected)  # what the template notebook does
    shuffled_input = names[::-1]
    tr, va = template_split(shuffled_input, 0.2, 0)
    assert sorted(shuffled_input[i] for i in tr) == sorted(expected[:40])
    assert sorted(shuffled_input[i] for i in va) == sorted(expected[40:])


def test_split_is_a_partition_and_seed_matters():
    names = [f"n{i}" for i in range(101)]
    tr, va = template_split(names)
    assert len(tr) == 80 and len(va) == 21
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).size == 101
    assert not np.array_equal(template_split(names, 0.2, 1)[1], va)
